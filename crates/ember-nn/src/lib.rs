//! Transformer building blocks for ember, one concept per module.
//!
//! Read them in this order: [`embedding`], [`linear`], [`rope`], [`attention`], [`gelu`],
//! [`mlp`], [`layer_norm`], [`block`]; [`position`] names the ways positions enter attention
//! (RoPE, [`alibi`], none). Each file holds a `Config` (validated in `init`), the `Module`, its
//! `forward` with the tensor shapes spelled out, and tests with known values.
//!
//! Dimension names used in every shape comment:
//!
//! | name      | meaning                                                  |
//! |-----------|----------------------------------------------------------|
//! | `batch`   | sequences processed together                             |
//! | `seq`     | positions in the current input (≤ `max_seq`)            |
//! | `past`    | positions already held in a KV cache                     |
//! | `max_seq` | the context length the model is built for (block size)   |
//! | `d_model` | width of the residual stream                             |
//! | `n_heads` | attention (query) heads                                  |
//! | `n_kv_heads` | key/value heads (grouped-query attention)             |
//! | `d_head`  | width of one head, `d_model / n_heads`                   |
//! | `d_ff`    | width of the feed-forward hidden layer, `4 · d_model`    |
//! | `vocab`   | number of token ids                                      |
//!
//! This crate knows nothing of tokenizers, data, training or the command line, and it never
//! names a backend: every tensor lives on the [`Device`](burn::tensor::Device) it was given.

pub mod alibi;
pub mod attention;
pub mod block;
pub mod embedding;
pub mod gelu;
pub mod init;
pub mod inspect;
pub mod layer_norm;
pub mod linear;
pub mod mlp;
pub mod position;
pub mod rope;

#[cfg(test)]
pub(crate) mod test_util;

pub use attention::{
    AttentionCache, AttentionKind, AttentionMask, AttentionTables, AttentionTablesConfig, CausalSelfAttention,
    CausalSelfAttentionConfig, KvCache, LinearState,
};
pub use block::{Block, BlockConfig};
pub use embedding::{TokenEmbedding, TokenEmbeddingConfig};
pub use gelu::Gelu;
pub use init::InitRng;
pub use layer_norm::{LayerNorm, LayerNormConfig};
pub use linear::Linear;
pub use mlp::{Mlp, MlpConfig};
pub use position::Position;
pub use rope::{RotaryEncoding, RotaryEncodingConfig};

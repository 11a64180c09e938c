//! Hugging Face interop: a model as a `GPTNeoXForCausalLM` directory that `transformers` loads
//! with no custom code, and such a directory as ember's model.
//!
//! ember's architecture is GPT-NeoX's with `use_parallel_residual = false`,
//! `rotary_pct = 1.0`, `hidden_act = "gelu"` and tied embeddings; the `[model]` keys
//! `parallel_residual`, `rotary_pct`, `tie_embeddings` and `d_ff` cover the others (Pythia).
//! Parameter names and layouts map one to one, except that GPT-NeoX groups the rows of the
//! fused q/k/v projection per head (`[q₀ k₀ v₀ | q₁ k₁ v₁ | …]`) where ember keeps
//! `[q | k | v]`, and that its linear weights are `[out, in]` (Burn's are `[in, out]`):
//!
//! | ember | GPT-NeoX |
//! |---|---|
//! | `wte.weight` | `gpt_neox.embed_in.weight` |
//! | `blocks.N.ln1.*`, `blocks.N.ln2.*` | `gpt_neox.layers.N.input_layernorm.*`, `….post_attention_layernorm.*` |
//! | `blocks.N.attn.qkv.*` | `gpt_neox.layers.N.attention.query_key_value.*`, rows regrouped |
//! | `blocks.N.attn.proj.*` | `gpt_neox.layers.N.attention.dense.*` |
//! | `blocks.N.mlp.fc.*`, `blocks.N.mlp.proj.*` | `….mlp.dense_h_to_4h.*`, `….mlp.dense_4h_to_h.*` |
//! | `ln_f.*` | `gpt_neox.final_layer_norm.*` |
//! | `lm_head.weight` (untied) | `embed_out.weight` (`lm_head.weight` in some checkpoints) |
//!
//! [`config`] maps `config.json` to `[model]` and back, [`weights`] the parameters' names and
//! layouts, [`dir`] reads and writes a whole model directory.

pub mod config;
pub mod dir;
pub mod weights;

pub use config::{ARCHITECTURE, check_exportable, config_from_hf, hf_config};
pub use dir::{Card, HfModel, read_dir, write_dir};
pub use weights::{from_hf_weights, to_hf_weights};

//! Sliding-window attention in time and memory proportional to `seq · window`.
//!
//! Full attention compares every query with every key, `seq²` scores, even when a window
//! hides all but `window` of each row. Here the positions are cut into chunks of `window`
//! queries; every key a query of chunk `c` may see lies in chunk `c` or chunk `c − 1`, so each
//! chunk attends over a band of `2·window` keys:
//!
//! ```text
//! keys of chunk c  = [k_{c−1} | k_c]                         [2·window, d_head]
//! y_c              = softmax(q_c keysᵀ / √d_head + band) [v_{c−1} | v_c]
//! ```
//!
//! The `band` bias hides, in each band, the keys outside the window (and, in the first chunk,
//! the previous chunk, which does not exist). The weights are those of the full masked
//! softmax; only the scores no query could use are never computed.

use burn::nn::Dropout;
use burn::tensor::{Device, Tensor};

use super::mask::AttentionMask;
use super::sdpa::softmax_weights;
use crate::alibi;

/// The band's bias for chunks of `window` queries against their own and the previous chunk's
/// keys: the first chunk's (which has no previous chunk) and every other chunk's.
///
/// # Shapes
/// - returns `[2, window, 2·window]`
pub fn band(window: usize, device: &Device) -> Tensor<3> {
    let w = window;
    // Query i of chunk c sits at position c·w + i, key j of the band at (c − 1)·w + j; a window
    // depends only on the distance, so every chunk has the pattern of the queries w..2w against
    // the keys 0..2w. The first chunk's previous chunk is padding, hidden from every query.
    let later = AttentionMask::SlidingWindow { window }.bias_block(w..2 * w, 0..2 * w, device); // [w, 2w]
    let hidden = Tensor::full([w, w], f32::NEG_INFINITY, device);
    let first = Tensor::cat(vec![hidden, later.clone().narrow(1, w, w)], 1);
    Tensor::stack(vec![first, later], 0) // [2, w, 2w]
}

/// Attends each query to the `window` positions up to itself.
///
/// `band` is `[2, window, 2·window]`, the first chunk's bias and every later chunk's
/// ([`AttentionTables::band`](super::AttentionTables::band)); `alibi` the ALiBi slopes if any.
///
/// # Shapes
/// - q, k, v: `[batch, n_heads, seq, d_head]` → `[batch, n_heads, seq, d_head]`
pub fn attention(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    band: &Tensor<3>,
    alibi_slopes: Option<&Tensor<1>>,
    dropout: &Dropout,
) -> Tensor<4> {
    let [batch, heads, seq, d] = q.dims();
    let w = band.dims()[1];
    let chunks = seq.div_ceil(w);
    // Padded positions come after every real one: the causal part of the band hides them.
    let in_chunks = |t: Tensor<4>| pad(t, chunks * w).reshape([batch, heads, chunks, w, d]);
    let (q, k, v) = (in_chunks(q), in_chunks(k), in_chunks(v)); // [batch, heads, chunks, w, d]
    let with_previous = |t: Tensor<5>| {
        let none = Tensor::zeros([batch, heads, 1, w, d], (&t.device(), t.dtype()));
        let previous = match chunks {
            1 => none,
            _ => Tensor::cat(vec![none, t.clone().narrow(2, 0, chunks - 1)], 2),
        };
        Tensor::cat(vec![previous, t], 3) // [batch, heads, chunks, 2w, d]
    };
    let (keys, values) = (with_previous(k), with_previous(v));

    let scores = q.matmul(keys.swap_dims(3, 4)); // [batch, heads, chunks, w, 2w]
    let bias = chunk_bias(band, chunks); // [chunks, w, 2w]
    let bias = match alibi_slopes {
        // The distance of query i to key j of a band is w + i − j in every chunk.
        Some(slopes) => bias.unsqueeze_dim::<4>(0) + alibi::bias(slopes, w..2 * w, 0..2 * w).unsqueeze_dim(1),
        None => bias.unsqueeze_dim::<4>(0), // [1 | heads, chunks, w, 2w]
    };
    // Fold the chunks into the rows to reuse the softmax of full attention.
    let bias_heads = bias.dims()[0];
    let weights = softmax_weights(
        scores.reshape([batch, heads, chunks * w, 2 * w]),
        1.0 / (d as f64).sqrt(),
        bias.reshape([bias_heads, chunks * w, 2 * w]),
    );
    let weights = dropout.forward(weights).reshape([batch, heads, chunks, w, 2 * w]);
    let y = weights.matmul(values); // [batch, heads, chunks, w, d]
    y.reshape([batch, heads, chunks * w, d]).narrow(2, 0, seq)
}

/// The band bias of each of `chunks` chunks: the first chunk's, then the later chunks'.
///
/// # Shapes
/// - band: `[2, w, 2w]` → `[chunks, w, 2w]`
fn chunk_bias(band: &Tensor<3>, chunks: usize) -> Tensor<3> {
    let first = band.clone().narrow(0, 0, 1);
    if chunks == 1 {
        return first;
    }
    let later = band.clone().narrow(0, 1, 1).repeat_dim(0, chunks - 1);
    Tensor::cat(vec![first, later], 0)
}

/// `t` with zero rows appended along the positions axis up to `len`.
fn pad(t: Tensor<4>, len: usize) -> Tensor<4> {
    let [batch, heads, seq, d] = t.dims();
    if seq == len {
        return t;
    }
    let zeros = Tensor::zeros([batch, heads, len - seq, d], (&t.device(), t.dtype()));
    Tensor::cat(vec![t, zeros], 2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attention::sdpa::scaled_dot_product_attention;
    use crate::attention::{AttentionMask, AttentionTablesConfig};
    use crate::position::Position;
    use crate::test_util::{assert_close, device, values};
    use burn::nn::DropoutConfig;
    use burn::tensor::TensorData;

    fn random(seq: usize, seed: u64) -> Tensor<4> {
        let v = crate::init::normal_vec(&mut crate::init::seeded(seed), 2 * 3 * seq * 4, 1.0);
        Tensor::from_data(TensorData::new(v, [2, 3, seq, 4]), &device())
    }

    #[test]
    fn the_band_gives_the_full_masked_softmax() {
        let dropout = DropoutConfig::new(0.0).init();
        for (seq, window, position) in [
            (20, 4, Position::Rope),
            (23, 5, Position::Rope),
            (9, 3, Position::Alibi),
            (6, 6, Position::Rope),
        ] {
            let tables = AttentionTablesConfig::new(32, 3, 4)
                .with_window(Some(window))
                .with_position(position)
                .init(&device());
            let (q, k, v) = (random(seq, 1), random(seq, 2), random(seq, 3));
            let mask = AttentionMask::SlidingWindow { window };
            let full =
                scaled_dot_product_attention(q.clone(), k.clone(), v.clone(), tables.bias(mask, 0, seq, 0), &dropout);
            let banded = attention(q, k, v, tables.band.as_ref().unwrap(), tables.alibi.as_ref(), &dropout);
            assert_close(&values(&banded), &values(&full), 1e-5);
        }
    }
}

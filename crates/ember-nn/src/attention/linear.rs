//! Causal linear attention (Katharopoulos et al., 2020, "Transformers are RNNs").
//!
//! Softmax attention weighs key `s` for query `t` by `exp(q_t·k_s)`, which cannot be split
//! into a part of the query times a part of the key, so every pair must be compared: O(n²).
//! Linear attention replaces `exp(q·k)` by `φ(q)·φ(k)` with a positive feature map,
//! `φ(x) = elu(x) + 1`, and then the sum over keys factors:
//!
//! ```text
//! y_t = Σ_{s≤t} φ(q_t)·φ(k_s) v_s  /  Σ_{s≤t} φ(q_t)·φ(k_s)
//!     = φ(q_t)ᵀ S_t / φ(q_t)ᵀ z_t,     S_t = Σ_{s≤t} φ(k_s) v_sᵀ  [d, d],   z_t = Σ_{s≤t} φ(k_s)  [d]
//! ```
//!
//! `S` and `z` are running sums: time and memory grow linearly with the length, and generation
//! keeps these two sums, a constant-size state, instead of a KV cache. What it gives up is the
//! softmax's sharpness: a weight can no longer be made arbitrarily larger than its neighbours.
//!
//! The sums run chunk by chunk (`CHUNK` positions): within a chunk the pairs are compared
//! directly (a small causal `[CHUNK, CHUNK]` product), across chunks through the sums of the
//! chunks before. Same numbers as a position-by-position recurrence, but in a few large
//! products.

use burn::tensor::{Device, Tensor, TensorData};

/// Positions per chunk of the running sums.
pub const CHUNK: usize = 64;

/// Added to the denominator, which is positive but may be tiny.
pub const EPS: f64 = 1e-6;

/// The running sums of the positions seen so far, for generation.
#[derive(Debug, Clone, Default)]
pub struct LinearState {
    /// `S = Σ φ(k_s) v_sᵀ`, `[batch, n_heads, d_head, d_head]`; `None` before the first step.
    kv: Option<Tensor<4>>,
    /// `z = Σ φ(k_s)`, `[batch, n_heads, 1, d_head]`.
    z: Option<Tensor<4>>,
    /// Positions seen.
    len: usize,
}

impl LinearState {
    /// Positions seen.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no position is seen yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The feature map `φ(x) = elu(x) + 1`: `x + 1` for `x > 0`, `exp(x)` below; positive.
///
/// Written as `max(x, 0) + exp(min(x, 0))`, which is the same function, so that no
/// exponential of a large input overflows (even in a branch that is not taken).
pub fn feature(x: Tensor<4>) -> Tensor<4> {
    x.clone().clamp_min(0.0) + x.clamp_max(0.0).exp()
}

/// Causal linear attention of each query over the keys up to its own position, continuing
/// from `state` (the sums of earlier positions) when given, which is then updated.
///
/// # Shapes
/// - q, k, v: `[batch, n_heads, seq, d_head]` → `[batch, n_heads, seq, d_head]`
pub fn attention(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, state: Option<&mut LinearState>) -> Tensor<4> {
    let [batch, heads, seq, d] = q.dims();
    let device = q.device();
    let chunks = seq.div_ceil(CHUNK);
    let padded = chunks * CHUNK;
    // The features, in chunks; padding after the features are taken, so padded keys add
    // nothing to the sums (and padded queries are dropped at the end).
    let in_chunks = |t: Tensor<4>| pad(t, padded).reshape([batch, heads, chunks, CHUNK, d]);
    let (fq, fk, v) = (in_chunks(feature(q)), in_chunks(feature(k)), in_chunks(v)); // [batch, heads, chunks, CHUNK, d]

    // Within each chunk: compare the pairs directly, each query with the keys up to itself.
    let pair = fq.clone().matmul(fk.clone().swap_dims(3, 4)) * causal_ones(&device).unsqueeze::<5>(); // [batch, heads, chunks, CHUNK, CHUNK]
    let num = pair.clone().matmul(v.clone()); // [batch, heads, chunks, CHUNK, d]
    let den = pair.sum_dim(4); // [batch, heads, chunks, CHUNK, 1]

    // Across chunks: each chunk's sums, and the sums of all the chunks before it.
    let chunk_kv = fk.clone().swap_dims(3, 4).matmul(v); // Σ φ(k) vᵀ per chunk: [batch, heads, chunks, d, d]
    let chunk_z = fk.sum_dim(3); // Σ φ(k) per chunk: [batch, heads, chunks, 1, d]
    let (kv_before, z_before) = (exclusive_cumsum(chunk_kv.clone()), exclusive_cumsum(chunk_z.clone()));
    let (kv_before, z_before) = match &state {
        Some(LinearState {
            kv: Some(kv),
            z: Some(z),
            ..
        }) => (
            kv_before + kv.clone().unsqueeze_dim(2),
            z_before + z.clone().unsqueeze_dim(2),
        ),
        _ => (kv_before, z_before),
    };
    let num = num + fq.clone().matmul(kv_before.clone()); // [batch, heads, chunks, CHUNK, d]
    let den = den + fq.matmul(z_before.clone().swap_dims(3, 4)); // [batch, heads, chunks, CHUNK, 1]
    let y = num / den.add_scalar(EPS);

    if let Some(state) = state {
        // The sums through the last chunk: the sums before it plus its own.
        let last = |before: Tensor<5>, own: Tensor<5>| (before + own).narrow(2, chunks - 1, 1).squeeze_dim::<4>(2);
        state.kv = Some(last(kv_before, chunk_kv));
        state.z = Some(last(z_before, chunk_z));
        state.len += seq;
    }
    y.reshape([batch, heads, padded, d]).narrow(2, 0, seq)
}

/// The attention weights linear attention gives implicitly, `φ(q_t)·φ(k_s) / Σ_{s'≤t} φ(q_t)·φ(k_s')`
/// for `s ≤ t` (0 after `t`), for showing them: this compares every pair, O(n²), which
/// [`attention`] never does.
///
/// # Shapes
/// - q, k: `[batch, n_heads, seq, d_head]` → `[batch, n_heads, seq, seq]`
pub fn weights(q: Tensor<4>, k: Tensor<4>) -> Tensor<4> {
    let [_, _, seq, _] = q.dims();
    let mask = lower_ones(seq, &q.device()).unsqueeze::<4>(); // [1, 1, seq, seq]
    let pair = feature(q).matmul(feature(k).swap_dims(2, 3)) * mask; // [batch, heads, seq, seq]
    let den = pair.clone().sum_dim(3).add_scalar(EPS);
    pair / den
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

/// Along the chunks axis, the sum of the chunks strictly before each one.
fn exclusive_cumsum(t: Tensor<5>) -> Tensor<5> {
    let [batch, heads, chunks, a, b] = t.dims();
    let zeros = Tensor::zeros([batch, heads, 1, a, b], (&t.device(), t.dtype()));
    if chunks == 1 {
        return zeros;
    }
    Tensor::cat(vec![zeros, t.cumsum(2).narrow(2, 0, chunks - 1)], 2)
}

/// `[CHUNK, CHUNK]` ones on and below the diagonal, zeros above.
fn causal_ones(device: &Device) -> Tensor<2> {
    lower_ones(CHUNK, device)
}

fn lower_ones(n: usize, device: &Device) -> Tensor<2> {
    let values: Vec<f32> = (0..n * n).map(|i| if i % n <= i / n { 1.0 } else { 0.0 }).collect();
    Tensor::from_data(TensorData::new(values, [n, n]), device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{assert_close, device, values};
    use burn::tensor::Distribution;

    fn random(seq: usize, seed: u64) -> Tensor<4> {
        let v = crate::init::normal_vec(&mut crate::init::seeded(seed), 2 * 3 * seq * 4, 1.0);
        Tensor::from_data(TensorData::new(v, [2, 3, seq, 4]), &device())
    }

    /// The recurrence, one position at a time, on the host.
    fn recurrence(q: &Tensor<4>, k: &Tensor<4>, v: &Tensor<4>) -> Vec<f32> {
        let [batch, heads, seq, d] = q.dims();
        let (fq, fk, v) = (values(&feature(q.clone())), values(&feature(k.clone())), values(v));
        let mut out = vec![0.0f32; batch * heads * seq * d];
        for bh in 0..batch * heads {
            let mut s = vec![0.0f64; d * d];
            let mut z = vec![0.0f64; d];
            for t in 0..seq {
                let row = (bh * seq + t) * d;
                for i in 0..d {
                    z[i] += fk[row + i] as f64;
                    for j in 0..d {
                        s[i * d + j] += fk[row + i] as f64 * v[row + j] as f64;
                    }
                }
                let den: f64 = (0..d).map(|i| fq[row + i] as f64 * z[i]).sum::<f64>() + EPS;
                for j in 0..d {
                    let num: f64 = (0..d).map(|i| fq[row + i] as f64 * s[i * d + j]).sum();
                    out[row + j] = (num / den) as f32;
                }
            }
        }
        out
    }

    #[test]
    fn feature_map_is_elu_plus_one() {
        let x = Tensor::<4>::from_data([[[[-1.0, 0.0, 2.0, 200.0]]]], &device());
        assert_close(&values(&feature(x)), &[(-1f32).exp(), 1.0, 3.0, 201.0], 1e-6);
    }

    #[test]
    fn one_query_over_two_keys_by_hand() {
        // d = 1: φ(q) = 2, φ(k) = [1, 3] (k = 0 and 2), v = [10, 20].
        // position 0: 2·1·10 / (2·1) = 10; position 1: (2·1·10 + 2·3·20) / (2·1 + 2·3) = 17.5.
        let t = |v: [f32; 2]| Tensor::<4>::from_data(TensorData::new(v.to_vec(), [1, 1, 2, 1]), &device());
        let y = attention(t([1.0, 1.0]), t([0.0, 2.0]), t([10.0, 20.0]), None);
        assert_close(&values(&y), &[10.0, 17.5], 1e-4);
    }

    #[test]
    fn chunked_sums_equal_the_recurrence_across_chunks() {
        // 150 positions: two full chunks and a padded third.
        let (q, k, v) = (random(150, 1), random(150, 2), random(150, 3));
        let y = attention(q.clone(), k.clone(), v.clone(), None);
        assert_close(&values(&y), &recurrence(&q, &k, &v), 1e-4);
    }

    #[test]
    fn a_state_carried_across_steps_equals_one_pass() {
        let (q, k, v) = (random(80, 4), random(80, 5), random(80, 6));
        let whole = values(&attention(q.clone(), k.clone(), v.clone(), None));
        let mut state = LinearState::default();
        let mut stepped = Vec::new();
        for (start, len) in [(0, 70), (70, 1), (71, 9)] {
            let part = |t: &Tensor<4>| t.clone().narrow(2, start, len);
            stepped.push(attention(part(&q), part(&k), part(&v), Some(&mut state)));
        }
        assert_eq!(state.len(), 80);
        assert_close(&values(&Tensor::cat(stepped, 2)), &whole, 1e-4);
    }

    #[test]
    fn implied_weights_are_causal_rows_that_sum_to_one_and_reproduce_the_output() {
        let (q, k, v) = (random(7, 7), random(7, 8), random(7, 9));
        let w = weights(q.clone(), k.clone());
        let wv = values(&w);
        for row in wv.chunks(7).enumerate() {
            let (t, r) = (row.0 % 7, row.1);
            assert!((r.iter().sum::<f32>() - 1.0).abs() < 1e-5);
            assert!(r[t + 1..].iter().all(|&x| x == 0.0), "row {t} attends to the future");
        }
        let y = attention(q, k, v.clone(), None);
        assert_close(&values(&w.matmul(v)), &values(&y), 1e-4);
    }

    #[test]
    fn gradients_flow_to_queries_keys_and_values() {
        let device = device().autodiff();
        let r = || Tensor::<4>::random([1, 2, 70, 4], Distribution::Normal(0.0, 1.0), &device).require_grad();
        let (q, k, v) = (r(), r(), r());
        let grads = attention(q.clone(), k.clone(), v.clone(), None).sum().backward();
        for t in [&q, &k, &v] {
            let g = values(&t.grad(&grads).expect("gradient"));
            assert!(g.iter().all(|x| x.is_finite()) && g.iter().any(|&x| x != 0.0));
        }
    }
}

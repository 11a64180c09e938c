//! ALiBi, attention with linear biases (Press, Smith & Lewis, 2022): positions enter attention
//! not through the queries and keys but as a penalty on each score, proportional to how far
//! back the key lies:
//!
//! ```text
//! score(q_i, k_j) = q_i·k_j / √d_head − m_h · (i − j)        for j ≤ i
//! ```
//!
//! Each head `h` has its own slope `m_h`, a geometric sequence, so some heads look far back and
//! others only at the last few tokens. There is nothing to learn and nothing to rotate.

use burn::tensor::{Device, Int, Tensor, TensorData};

/// The slopes of `n_heads` heads: for a power of two `n`, `2^(−8·h/n)` for `h = 1..=n`; for
/// other counts, those of the power of two below, then every other slope of the power above
/// (the paper's construction).
pub fn slopes(n_heads: usize) -> Vec<f64> {
    fn power_of_two(n: usize) -> Vec<f64> {
        let start = 2f64.powf(-8.0 / n as f64);
        (1..=n).map(|h| start.powi(h as i32)).collect()
    }
    if n_heads.is_power_of_two() {
        return power_of_two(n_heads);
    }
    let below = 1 << n_heads.ilog2();
    let mut out = power_of_two(below);
    out.extend(slopes(2 * below).into_iter().step_by(2).take(n_heads - below));
    out
}

/// The slopes as a tensor, `[n_heads]`.
pub fn slope_tensor(n_heads: usize, device: &Device) -> Tensor<1> {
    let values: Vec<f32> = slopes(n_heads).into_iter().map(|m| m as f32).collect();
    Tensor::from_data(TensorData::new(values, [n_heads]), device)
}

/// The per-head penalties `−m_h · (i − j)` for query positions `queries` and key positions
/// `keys` (a key after its query gets a positive value here; the causal mask hides it).
///
/// # Shapes
/// - slopes: `[n_heads]` → `[n_heads, seq, keys]`
pub fn bias(slopes: &Tensor<1>, queries: std::ops::Range<usize>, keys: std::ops::Range<usize>) -> Tensor<3> {
    let device = slopes.device();
    let [n_heads] = slopes.dims();
    let (seq, n_keys) = (queries.len(), keys.len());
    let position = |r: std::ops::Range<usize>| Tensor::<1, Int>::arange(r.start as i64..r.end as i64, &device).float();
    let i = position(queries).reshape([1, seq, 1]);
    let j = position(keys).reshape([1, 1, n_keys]);
    let distance = i - j; // [1, seq, keys]
    distance * slopes.clone().neg().reshape([n_heads, 1, 1])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{assert_close, device, values};

    #[test]
    fn slopes_follow_the_paper() {
        // 8 heads: 1/2, 1/4, …, 1/256.
        let s = slopes(8);
        for (h, m) in s.iter().enumerate() {
            assert!((m - 0.5f64.powi(h as i32 + 1)).abs() < 1e-12, "head {h}: {m}");
        }
        // 6 heads: the 4-head slopes 2^-2, 2^-4, 2^-6, 2^-8, then the first two of every other
        // 8-head slope, 2^-1 and 2^-3.
        let s = slopes(6);
        let expected = [0.25, 0.0625, 0.015625, 0.00390625, 0.5, 0.125];
        for (m, e) in s.iter().zip(expected) {
            assert!((m - e).abs() < 1e-12, "{s:?}");
        }
    }

    #[test]
    fn bias_is_minus_slope_times_distance() {
        let slopes = Tensor::<1>::from_data([0.5, 0.25], &device());
        // queries at positions 2..4, keys 0..4
        let b = bias(&slopes, 2..4, 0..4);
        assert_eq!(b.dims(), [2, 2, 4]);
        #[rustfmt::skip]
        let expected = [
            -1.0, -0.5, 0.0, 0.5,    -1.5, -1.0, -0.5, 0.0,     // head 0, m = 1/2
            -0.5, -0.25, 0.0, 0.25,  -0.75, -0.5, -0.25, 0.0,   // head 1, m = 1/4
        ];
        assert_close(&values(&b), &expected, 1e-7);
    }
}

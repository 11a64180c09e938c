//! One row times a matrix plus a bias, `x · W + b` for `x` `[1, k]`: each linear layer of a
//! generation step with the KV cache, where only the newest position is computed.
//!
//! Such a product does two floating-point operations per weight it reads, so its time is the
//! time to stream `W` from memory: the shakespeare-char model's weights are 42 MB, more than
//! this machine's 32 MB L3 cache, so every step reads them all from memory. One core reads
//! about 31 GB/s here and two about 57 (a throwaway C loop summing a 42 MB buffer). gemm's
//! matrix-vector path runs on one thread (28 GB/s over the model's 24 matrices). This kernel
//! cuts the rows of `W` into parts that the pool's threads read at once: 37–48 GB/s with two
//! threads, and sampling with the KV cache about 1.3× as fast (README, Performance).
//!
//! Splitting the columns instead, each thread reading its range of every row, was slower even
//! on one thread, probably because a range of each row is not one stream for the hardware
//! prefetcher to follow; each part here reads its rows front to back.

use rayon::prelude::*;

use super::math::madd;

/// Weights per part (256 KB) at least: a smaller product is not worth sharing out.
const WEIGHTS_PER_PART: usize = 1 << 16;

/// Parts at most. Fixed, not the number of threads, so that the sums do not depend on it.
const MAX_PARTS: usize = 8;

/// `out = x · W + bias`, where `W` is `[x.len(), out.len()]` with rows `w_rs` values apart and
/// consecutive columns (`w[i * w_rs + j]` is `W[i, j]`).
///
/// The rows are cut into parts of consecutive rows, run on the pool's threads. Each part adds
/// each of its rows, times its `x[i]`, to the part's sums in order. `out[j]` is then `bias[j] + (s₀[j] + s₁[j] + …)`, the
/// parts' sums added in order. How many parts depends on the size of `W` alone, so the result
/// is the same on any number of threads.
pub fn row_times_matrix(out: &mut [f32], x: &[f32], w: &[f32], w_rs: usize, bias: &[f32]) {
    let (k, n) = (x.len(), out.len());
    assert_eq!(bias.len(), n, "one bias per output");
    assert!(
        k == 0 || (k - 1) * w_rs + n <= w.len(),
        "the weights hold k rows of n columns"
    );
    let parts = (k * n / WEIGHTS_PER_PART).clamp(1, MAX_PARTS.min(k.max(1)));
    let rows = k.div_ceil(parts); // rows per part
    if parts == 1 {
        out.fill(0.0);
        add_rows(out, x, w, w_rs);
    } else {
        let mut sums = vec![0.0f32; parts * n];
        sums.par_chunks_mut(n).enumerate().for_each(|(p, sums)| {
            let first = p * rows;
            if first < k {
                let x = &x[first..(first + rows).min(k)];
                add_rows(sums, x, &w[first * w_rs..], w_rs);
            } // else: an empty last part (rows rounded up), its sums zero
        });
        out.copy_from_slice(&sums[..n]);
        for part in sums[n..].chunks(n) {
            add_to(out, part);
        }
    }
    add_to_bias(out, bias);
}

vectorized! {
    /// `sums[j] += Σ_i x[i]·w[i·w_rs + j]`, adding one row at a time, in order.
    fn add_rows(sums: &mut [f32], x: &[f32], w: &[f32], w_rs: usize) {
        let n = sums.len();
        for (i, &xi) in x.iter().enumerate() {
            for (s, &wij) in sums.iter_mut().zip(&w[i * w_rs..i * w_rs + n]) {
                *s = madd::<FMA>(xi, wij, *s);
            }
        }
    }
}

vectorized! {
    /// `sums += part`.
    fn add_to(sums: &mut [f32], part: &[f32]) {
        for (s, &p) in sums.iter_mut().zip(part) {
            *s += p;
        }
    }
}

vectorized! {
    /// `out = bias + out`.
    fn add_to_bias(out: &mut [f32], bias: &[f32]) {
        for (o, &b) in out.iter_mut().zip(bias) {
            *o = b + *o;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| ((i as u32).wrapping_mul(2_654_435_761) ^ seed) % 1000)
            .map(|v| v as f32 / 500.0 - 1.0)
            .collect()
    }

    /// `(k, n, extra)`: widths below and past a vector, one part and several (up to the
    /// eight of 1536 × 384; 9 rows in eight parts of two leave three parts empty), rows of
    /// `n + extra` values (a narrowed matrix).
    const SHAPES: [(usize, usize, usize); 8] = [
        (9, 60_000, 0),
        (1, 1, 0),
        (3, 63, 0),
        (5, 64, 2),
        (7, 65, 0),
        (384, 1152, 0),
        (40, 2000, 7),
        (1536, 384, 0),
    ];

    fn product(k: usize, n: usize, extra: usize) -> (Vec<f32>, Vec<f32>) {
        let w_rs = n + extra;
        let (x, w, bias) = (values(k, 1), values(k * w_rs, 2), values(n, 3));
        let mut out = vec![f32::NAN; n];
        row_times_matrix(&mut out, &x, &w, w_rs, &bias);
        let exact = (0..n)
            .map(|j| bias[j] as f64 + (0..k).map(|i| x[i] as f64 * w[i * w_rs + j] as f64).sum::<f64>())
            .map(|v| v as f32)
            .collect();
        (out, exact)
    }

    #[test]
    fn a_small_product_by_hand() {
        // x = [1, 2], W = [[1, 2, 0], [0, -1, 3]], b = [0.5, 0, -1] → [1.5, 0, 5]
        let mut out = [0.0; 3];
        row_times_matrix(
            &mut out,
            &[1.0, 2.0],
            &[1.0, 2.0, 0.0, 0.0, -1.0, 3.0],
            3,
            &[0.5, 0.0, -1.0],
        );
        assert_eq!(out, [1.5, 0.0, 5.0]);
    }

    #[test]
    fn every_shape_matches_the_exact_sums() {
        for (k, n, extra) in SHAPES {
            let (out, exact) = product(k, n, extra);
            for (j, (a, e)) in out.iter().zip(&exact).enumerate() {
                // f32 sums of up to 1536 terms of size ≤ 1 against the exact ones.
                assert!(
                    (a - e).abs() <= 1e-5 * (k as f32).max(1.0),
                    "k {k}, n {n}, column {j}: {a} vs {e}"
                );
            }
        }
    }

    #[test]
    fn the_sums_do_not_depend_on_the_number_of_threads() {
        let on = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| SHAPES.map(|(k, n, extra)| product(k, n, extra).0))
        };
        let one = on(1);
        assert_eq!(on(2), one);
        assert_eq!(on(3), one);
    }
}

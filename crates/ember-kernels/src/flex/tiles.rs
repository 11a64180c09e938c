//! The six matrix products inside one attention head, computed in register tiles of 4 output
//! rows × 16 columns (eight 8-wide accumulators), with the extent of each tile taken from the
//! mask:
//!
//! ```text
//! product          output rows   columns   depth      what the mask lets a tile skip
//! S  = Q Kᵀ        queries       keys      d          key columns no row of the tile sees
//! O  = P V         queries       d         keys       keys past the rows' last visible one
//! ∂P = ∂O Vᵀ       queries       keys      d          as S
//! ∂Q = ∂S K        queries       d         keys       as O
//! ∂V = Pᵀ ∂O       keys          d         queries    queries before the first that sees
//! ∂K = ∂Sᵀ Q       keys          d         queries      one of the tile's keys
//! ```
//!
//! Under a causal mask a head's products then cost about 56% of the full ones at a context of
//! 64 and close to half at 256 (75% at 16, where the key tiles are as wide as the context),
//! where skipping per block of 64 query rows saves nothing at a context of 64. `gemm` is built for larger matrices: per call it chooses blocking, may allocate and
//! packs its operands, which on a 64 × 64 × 32 product is a good part of the work.
//!
//! The right operand is read in panels of 16 columns. One whose columns are adjacent and whose
//! width is a multiple of 16 is read in place; any other (`Kᵀ` and `Vᵀ`, read column-wise from
//! `K` and `V`, or a ragged width) is first packed ([`pack`]) into panels `[rows, 16]`, each
//! contiguous, the last padded with zeros. The left operand is read one element at a time,
//! through any strides.

use super::mat::Mat;
use super::math::madd;

/// Output rows per register tile.
pub(super) const TILE_ROWS: usize = 4;
const TR: usize = TILE_ROWS;
/// Output columns per register tile: two 8-wide vectors.
pub(super) const TILE_COLS: usize = 16;
const TC: usize = TILE_COLS;

/// Which part of a product the mask leaves non-zero, from the key extents of the query rows
/// (`extents[r]`: query row `r` sees keys `0..extents[r]`; its probabilities and their
/// gradients past that are exactly zero).
#[derive(Clone, Copy)]
pub(super) enum Span<'a> {
    /// Output rows are query rows and columns are keys (`S`, `∂P`): a row tile computes the
    /// columns up to its rows' largest extent, in whole column tiles; the columns after are
    /// left unwritten. The softmax reads a row up to its extent rounded up to a multiple of 8,
    /// which lies inside the written tiles.
    Keys(&'a [usize]),
    /// Output rows are query rows and the depth runs over keys (`O`, `∂Q`): up to the rows'
    /// largest extent.
    KeyDepth(&'a [usize]),
    /// Output rows are keys and the depth runs over query rows (`∂V`, `∂K`): from the first
    /// query row that sees one of the tile's keys.
    QueryDepth(&'a [usize]),
}

/// A right operand as the tiles read it: panels of `TC` columns, `panel` values apart, with
/// rows `row` values apart inside a panel.
#[derive(Clone, Copy)]
pub(super) struct Panels {
    ptr: *const f32,
    panel: usize,
    row: usize,
}

impl Panels {
    /// The operand from column `col` on, a multiple of the panel width.
    pub(super) fn cols_from(self, col: usize) -> Self {
        debug_assert!(col.is_multiple_of(TC), "columns start on a panel");
        // Wrapping arithmetic: safe to compute; [`product`]'s callers read inside the matrix.
        Self {
            ptr: self.ptr.wrapping_add(col / TC * self.panel),
            ..self
        }
    }

    /// The operand from row `row` on.
    pub(super) fn rows_from(self, row: usize) -> Self {
        // Wrapping arithmetic, as in `cols_from`.
        Self {
            ptr: self.ptr.wrapping_add(row * self.row),
            ..self
        }
    }
}

/// `m` (`[rows, cols]`, any strides) as a right operand: itself when its columns are adjacent
/// and its rows whole panels, else packed into `buf`, each panel `[rows, TC]` contiguous and
/// the last one padded with zeros.
pub(super) fn pack(m: Mat, (rows, cols): (usize, usize), buf: &mut Vec<f32>) -> Panels {
    if m.cs == 1 && m.rs >= 0 && cols.is_multiple_of(TC) {
        return Panels {
            ptr: m.row_ptr(0),
            panel: TC,
            row: m.rs as usize,
        };
    }
    // Every value is written below (the padding too), so the buffer is only resized.
    buf.resize(cols.div_ceil(TC) * rows * TC, 0.0);
    for c0 in (0..cols).step_by(TC) {
        let width = TC.min(cols - c0);
        let panel = &mut buf[c0 * rows..][..rows * TC];
        for (r, out) in panel.chunks_exact_mut(TC).enumerate() {
            let row = m.row_ptr(r);
            for (c, o) in out.iter_mut().enumerate() {
                // SAFETY: the caller's matrix holds `[rows, cols]` values (c < width).
                *o = if c < width {
                    unsafe { *row.offset((c0 + c) as isize * m.cs) }
                } else {
                    0.0
                };
            }
        }
    }
    Panels {
        ptr: buf.as_ptr(),
        panel: rows * TC,
        row: TC,
    }
}

/// `dst ← lhs · rhs`, or `dst ← dst + lhs · rhs` with `accumulate`, for `lhs` `[m, k]` (any
/// strides), `rhs` `[k, n]` (packed) and `dst` `[m, n]` with rows `dst_rs` apart and unit column
/// stride, over the part `span` says the mask leaves non-zero. Without `accumulate`, the
/// output columns a [`Span::Keys`] tile skips are not written.
///
/// # Safety
/// `lhs` must address `[m, k]` readable values, `rhs` (from [`pack`]) at least `k` rows of `n`
/// columns rounded up to whole panels, `dst` `[m, n]` writable values that no other thread
/// touches.
pub(super) unsafe fn product(
    (m, n, k): (usize, usize, usize),
    (dst, dst_rs): (*mut f32, usize),
    accumulate: bool,
    lhs: Mat,
    rhs: Panels,
    span: Span,
) {
    for i0 in (0..m).step_by(TR) {
        let rows = TR.min(m - i0);
        let largest = |extents: &[usize]| extents[i0..i0 + rows].iter().copied().max().unwrap_or(0);
        let (cols, depth) = match span {
            Span::Keys(extents) => (largest(extents).next_multiple_of(TC).min(n), (0, k)),
            Span::KeyDepth(extents) => (n, (0, largest(extents).min(k))),
            Span::QueryDepth(extents) => {
                // Keys i0.. are seen from the first query row whose extent passes i0.
                let first = extents[..k].iter().position(|&e| e > i0).unwrap_or(k);
                (n, (first, k))
            }
        };
        // Rows past the end of a ragged last tile repeat its last row: computed, not stored.
        let a: [*const f32; TR] = std::array::from_fn(|r| lhs.row_ptr(i0 + r.min(rows - 1)));
        // SAFETY: as the caller promises; the tile's rows and columns lie inside `dst`.
        let dst = unsafe { dst.add(i0 * dst_rs) };
        row_tiles(dst, dst_rs, accumulate, (a, lhs.cs, rows), rhs, depth, cols);
    }
}

vectorized! {
    #[allow(clippy::not_unsafe_ptr_arg_deref)] // private; `product` checks what it passes
    /// One row tile of [`product`]: output columns `0..cols` in tiles of `TC`, summing over
    /// `depth.0..depth.1`. `a` holds the tile's `TR` rows of the left operand (column stride
    /// `a_cs`), of which the first `rows` are stored; `b` the packed right operand (panels
    /// `b_stride` values apart).
    fn row_tiles(
        dst: *mut f32,
        dst_rs: usize,
        accumulate: bool,
        lhs: ([*const f32; TR], isize, usize),
        rhs: Panels,
        depth: (usize, usize),
        cols: usize
    ) {
        let (a, a_cs, rows) = lhs;
        for j0 in (0..cols).step_by(TC) {
            // SAFETY: the panel holding columns j0..j0 + TC.
            let panel = unsafe { rhs.ptr.add(j0 / TC * rhs.panel) };
            // Fixed-size loops, which LLVM keeps in eight vector registers.
            let mut acc = [[0.0f32; TC]; TR];
            for kk in depth.0..depth.1 {
                // SAFETY: row kk of the panel holds TC values.
                let bv: [f32; TC] = unsafe { std::ptr::read(panel.add(kk * rhs.row) as *const [f32; TC]) };
                for r in 0..TR {
                    // SAFETY: row r of the left operand holds column kk.
                    let av = unsafe { *a[r].offset(kk as isize * a_cs) };
                    for j in 0..TC {
                        acc[r][j] = madd::<FMA>(av, bv[j], acc[r][j]);
                    }
                }
            }
            let width = TC.min(cols - j0);
            for (r, acc) in acc.iter().enumerate().take(rows) {
                // SAFETY: row r of the tile holds columns j0..j0 + width and is this thread's.
                let out = unsafe { dst.add(r * dst_rs + j0) };
                if width == TC && !accumulate {
                    // A whole tile row: two vector stores (a slice copy would call `memcpy`).
                    // SAFETY: as above, with width = TC.
                    unsafe { (out as *mut [f32; TC]).write_unaligned(*acc) };
                    continue;
                }
                if accumulate {
                    // SAFETY: as above; accumulated outputs hold values already.
                    let out = unsafe { std::slice::from_raw_parts_mut(out, width) };
                    for (o, &s) in out.iter_mut().zip(acc) {
                        *o += s;
                    }
                } else {
                    // SAFETY: as above (the output may not hold values yet: written, not read).
                    unsafe { std::ptr::copy_nonoverlapping(acc.as_ptr(), out, width) };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic values in [-1, 1).
    fn values(n: usize, seed: usize) -> Vec<f32> {
        (0..n)
            .map(|i| ((i * 7919 + seed * 104_729) % 2000) as f32 / 1000.0 - 1.0)
            .collect()
    }

    /// `lhs · rhs` by the definition, in f64.
    fn naive(lhs: &[f32], rhs: &[f32], (m, n, k): (usize, usize, usize)) -> Vec<f64> {
        let mut out = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k).map(|kk| lhs[i * k + kk] as f64 * rhs[kk * n + j] as f64).sum();
            }
        }
        out
    }

    /// Runs [`product`] on `lhs` given transposed in memory (column stride ≠ 1) and `rhs` in
    /// place (a width of whole panels) or packed, its rows inside wider ones (NaN between, which
    /// nothing may read), over `dst` starting at `init`.
    fn run(
        lhs: &[f32],
        rhs: &[f32],
        (m, n, k): (usize, usize, usize),
        init: &[f32],
        accumulate: bool,
        span: Span,
    ) -> Vec<f32> {
        let lhs_t: Vec<f32> = (0..k * m).map(|i| lhs[(i % m) * k + i / m]).collect();
        let a = Mat::of(lhs_t.as_ptr(), 1, m as isize);
        let wide = n + 5;
        let rhs: Vec<f32> = (0..k * wide)
            .map(|i| {
                if i % wide < n {
                    rhs[i / wide * n + i % wide]
                } else {
                    f32::NAN
                }
            })
            .collect();
        let mut buf = Vec::new();
        let b = pack(Mat::of(rhs.as_ptr(), wide as isize, 1), (k, n), &mut buf);
        let mut dst = init.to_vec();
        // SAFETY: the operands hold [m, k], [k, n] and [m, n] values.
        unsafe { product((m, n, k), (dst.as_mut_ptr(), n), accumulate, a, b, span) };
        dst
    }

    fn assert_near(what: &str, got: f32, want: f64) {
        assert!((got as f64 - want).abs() < 1e-4, "{what}: {got} vs {want}");
    }

    #[test]
    fn products_match_the_definition_over_the_span_the_mask_leaves() {
        // Ragged row tiles and column panels; extents neither sorted nor full (a window and a
        // few hidden rows), and a full width of 32 read in place.
        for &(m, n, k) in &[(11, 37, 9), (6, 32, 13), (1, 5, 1), (17, 16, 40)] {
            let (lhs, rhs) = (values(m * k, m), values(k * n, n));
            let init = values(m * n, 7);
            let full = naive(&lhs, &rhs, (m, n, k));

            // Keys: rows are queries, columns keys; row i needs columns < extent[i].
            let extents: Vec<usize> = (0..m).map(|i| (i * 5 + 3) % n + 1).collect();
            for accumulate in [false, true] {
                // Without accumulate, start from NaN: the softmax reads each row up to its
                // extent rounded up to a multiple of 8, so those columns must all be written.
                let init = if accumulate {
                    init.clone()
                } else {
                    vec![f32::NAN; m * n]
                };
                let got = run(&lhs, &rhs, (m, n, k), &init, accumulate, Span::Keys(&extents));
                for i in 0..m {
                    for j in 0..extents[i].next_multiple_of(8).min(n) {
                        let base = if accumulate { init[i * n + j] as f64 } else { 0.0 };
                        assert_near(
                            &format!("keys {m}x{n}x{k} ({i},{j})"),
                            got[i * n + j],
                            base + full[i * n + j],
                        );
                    }
                }
            }

            // KeyDepth: the depth runs over keys; row i's terms past extent[i] are zero.
            let extents: Vec<usize> = (0..m).map(|i| (i * 3 + 1) % k + 1).collect();
            let mut masked = lhs.clone();
            for i in 0..m {
                masked[i * k + extents[i]..(i + 1) * k].fill(0.0);
            }
            let want = naive(&masked, &rhs, (m, n, k));
            let got = run(&masked, &rhs, (m, n, k), &init, false, Span::KeyDepth(&extents));
            for (idx, (&g, &w)) in got.iter().zip(&want).enumerate() {
                assert_near(&format!("key depth {m}x{n}x{k} [{idx}]"), g, w);
            }

            // QueryDepth: rows are keys, the depth runs over queries; query r sees keys
            // < extent[r], so the left operand (Pᵀ) is zero where row ≥ extent[column].
            let extents: Vec<usize> = (0..k).map(|r| (r * 7 + 2) % m + 1).collect();
            let mut masked = lhs.clone();
            for i in 0..m {
                for (r, &e) in extents.iter().enumerate() {
                    if i >= e {
                        masked[i * k + r] = 0.0;
                    }
                }
            }
            let want = naive(&masked, &rhs, (m, n, k));
            let got = run(&masked, &rhs, (m, n, k), &init, true, Span::QueryDepth(&extents));
            for (idx, (&g, &w)) in got.iter().zip(&want).enumerate() {
                assert_near(&format!("query depth {m}x{n}x{k} [{idx}]"), g, init[idx] as f64 + w);
            }
        }
    }

    #[test]
    fn empty_operands_compute_nothing_and_an_empty_depth_writes_zeros() {
        let mut buf = vec![1.0; 3];
        let values = [1.0f32; 16];
        // No rows to pack (no queries), then a product with an empty depth.
        let none = pack(Mat::of(values.as_ptr(), 16, 1).transposed(), (0, 16), &mut buf);
        let mut dst = [f32::NAN; 16];
        let lhs = Mat::of(values.as_ptr(), 1, 1);
        // SAFETY: one output row of 16 columns; the depth is empty, so nothing else is read.
        unsafe {
            product(
                (1, 16, 0),
                (dst.as_mut_ptr(), 16),
                false,
                lhs,
                none,
                Span::KeyDepth(&[0]),
            )
        };
        assert_eq!(dst, [0.0; 16]);
        // No output rows: nothing is written.
        // SAFETY: no rows.
        unsafe { product((0, 16, 0), (dst.as_mut_ptr(), 16), false, lhs, none, Span::Keys(&[])) };
    }
}

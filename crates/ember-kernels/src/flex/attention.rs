//! Scaled dot-product attention, one (batch, head) pair per task, in blocks of query rows:
//!
//! ```text
//! forward                              backward (from ∂O and the saved P)
//! S = Q Kᵀ · scale + bias              ∂V = Pᵀ ∂O
//! P = softmax(S)        row-wise       ∂P = ∂O Vᵀ
//! O = P V                              ∂S = scale · P ⊙ (∂P − Σ_row ∂P ⊙ P)
//!                                      ∂Q = ∂S K,   ∂K = ∂Sᵀ Q
//! ```
//!
//! Two savings over the composition of separate operations:
//! - the products skip what the mask leaves zero: a block of query rows multiplies only
//!   against the keys from the first one any of its rows may see (a sliding window hides the
//!   others) to the last, and inside a block each register tile of 4 rows stops at its own
//!   rows' last key (`tiles.rs`). Under a causal mask a head's products cost about 56% of the
//!   full ones at a context of 64, close to half at 256; under a window of `w` they grow as
//!   `seq · w` instead of `seq²`;
//! - the score and probability blocks of one head stay in cache between the three products,
//!   and the score matrix `S`, `∂P` and `∂S` are never stored whole.
//!
//! `O`, `∂Q`, `∂K` and `∂V` are laid out `[batch, seq, heads, d_head]` in memory (views of
//! `[batch, heads, seq, d_head]`), so that merging the heads afterwards costs no copy.

use burn_flex::{FlexTensor, Layout};
use burn_std::{Bytes, Shape};
use rayon::prelude::*;

use super::mat::Mat;
use super::matmul::batch_starts;
use super::softmax::{softmax_backward_rows, softmax_rows};
use super::tiles::{Span, TILE_COLS, TILE_ROWS, pack, product};
use super::{Fresh, contiguous_values};

/// Query rows per block.
pub(super) const ROWS: usize = 64;

/// A rank-4 operand `[batch, heads, seq, d]` read in place through its strides.
struct Operand<'a> {
    data: &'a [f32],
    /// Storage offset of each (batch, head) matrix.
    starts: Vec<isize>,
    /// Stride between rows (sequence positions) and between columns.
    rs: isize,
    cs: isize,
}

impl<'a> Operand<'a> {
    fn new(t: &'a FlexTensor) -> Self {
        let strides = t.layout().strides();
        Self {
            data: t.storage(),
            starts: batch_starts(t, 4),
            rs: strides[2],
            cs: strides[3],
        }
    }

    /// The matrix of pair `pair`.
    fn mat(&self, pair: usize) -> Mat {
        // SAFETY: the start comes from the tensor's own layout, inside its storage.
        Mat::of(
            unsafe { self.data.as_ptr().offset(self.starts[pair]) },
            self.rs,
            self.cs,
        )
    }
}

/// A raw pointer that tasks share, each writing its own disjoint part.
#[derive(Clone, Copy)]
pub(super) struct SharedMut(pub(super) *mut f32);
// SAFETY: every task writes a region no other task touches (see the callers).
unsafe impl Send for SharedMut {}
unsafe impl Sync for SharedMut {}

impl SharedMut {
    /// The pointer `offset` values on (wrapping arithmetic: safe to compute; writing through
    /// it is the caller's unsafe act, inside the buffer).
    pub(super) fn at(self, offset: usize) -> *mut f32 {
        self.0.wrapping_add(offset)
    }
}

/// Below this many multiply-adds per call, the (batch, head) pairs run on the calling thread:
/// handing them to other threads would cost more than they do (one generated token).
const PARALLEL_THRESHOLD: usize = 1 << 16;

/// The (batch, head) pairs as a parallel iterator, kept on one thread when the work is small.
pub(super) fn pairs(
    batch: usize,
    heads: usize,
    tq: usize,
    tk: usize,
    d: usize,
) -> rayon::iter::MinLen<rayon::range::Iter<usize>> {
    let n = batch * heads;
    let small = n * tq * tk * d < PARALLEL_THRESHOLD;
    (0..n).into_par_iter().with_min_len(if small { n.max(1) } else { 1 })
}

/// For each query row, one past the last key its bias row allows (bias finite).
pub(super) fn key_extents(bias: &[f32], q: usize, k: usize) -> Vec<usize> {
    (0..q)
        .map(|r| {
            let row = &bias[r * k..][..k];
            let extent = row.iter().rposition(|b| b.is_finite()).map_or(0, |i| i + 1);
            assert!(extent > 0, "attention mask row {r} allows no key");
            extent
        })
        .collect()
}

/// For each query row, the first key its bias row allows (bias finite); rows that allow none
/// are caught by [`key_extents`].
pub(super) fn key_starts(bias: &[f32], q: usize, k: usize) -> Vec<usize> {
    (0..q)
        .map(|r| bias[r * k..][..k].iter().position(|b| b.is_finite()).unwrap_or(0))
        .collect()
}

/// A block of query rows and the keys they need.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Block {
    /// First query row.
    pub(super) r0: usize,
    /// Query rows.
    pub(super) rows: usize,
    /// The first key any of the rows sees, rounded down to a whole column tile: the block's
    /// products start there (0 without a sliding window).
    pub(super) lo: usize,
    /// One past the last key any of the rows sees.
    pub(super) n: usize,
}

/// Blocks of `ROWS` query rows with the keys each needs, from every row's first key
/// (`starts`) and one past its last (`extents`).
pub(super) fn blocks(starts: &[usize], extents: &[usize]) -> Vec<Block> {
    extents
        .chunks(ROWS)
        .zip(starts.chunks(ROWS))
        .enumerate()
        .map(|(i, (e, s))| {
            let first = *s.iter().min().expect("non-empty block");
            Block {
                r0: i * ROWS,
                rows: e.len(),
                lo: first / TILE_COLS * TILE_COLS,
                n: *e.iter().max().expect("non-empty block"),
            }
        })
        .collect()
}

/// The block's rows' extents counted from its first key `lo`.
fn relative(extents: &[usize], block: Block) -> [usize; ROWS] {
    let mut out = [0; ROWS];
    for (o, &e) in out.iter_mut().zip(&extents[block.r0..block.r0 + block.rows]) {
        *o = e - block.lo;
    }
    out
}

/// The shape and memory order of a `[batch, heads, seq, d]` result stored as
/// `[batch, seq, heads, d]`.
fn heads_last_layout(batch: usize, heads: usize, seq: usize, d: usize) -> Layout {
    let strides = vec![(seq * heads * d) as isize, d as isize, (heads * d) as isize, 1];
    Layout::new(Shape::from(vec![batch, heads, seq, d]), strides, 0)
}

pub(super) fn tensor(values: Vec<f32>, layout: Layout) -> FlexTensor {
    FlexTensor::new(Bytes::from_elems(values), layout, burn::tensor::DType::F32)
}

/// Sizes shared by every head of one call.
#[derive(Clone, Copy)]
pub(super) struct Dims {
    /// Width of queries and keys, of values.
    pub(super) d: usize,
    pub(super) dv: usize,
    /// Number of keys.
    pub(super) tk: usize,
    pub(super) scale: f32,
}

/// The forward pass of one head: `O = softmax(Q Kᵀ · scale + bias) V`, the probabilities
/// written to `p` (`[q, tk]`, row-major; when `keep` is false `p` is scratch space of
/// ROWS × tk values reused by each block). `copies` is scratch space for `Kᵀ` and `V` packed
/// as right operands.
///
/// # Safety
/// Every matrix must hold the rows and columns the blocks address; `o` (row stride `o_rs`)
/// must be writable and touched by no other thread.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn head_forward(
    (q, k, v): (Mat, Mat, Mat),
    dims: Dims,
    (blocks, extents): (&[Block], &[usize]),
    bias: &[f32],
    p: *mut f32,
    keep: bool,
    (o, o_rs): (*mut f32, usize),
    copies: &mut [Vec<f32>; 2],
) {
    if extents.len() < TILE_ROWS {
        let Some(&block) = blocks.first() else {
            return; // no queries
        };
        // SAFETY: the caller's promises, which are few_queries_forward's.
        return unsafe { few_queries_forward((q, k, v), dims, (block, extents), bias, p, keep, (o, o_rs)) };
    }
    let Dims { d, dv, tk, scale } = dims;
    let [kt, v_packed] = copies;
    let kt = pack(k.transposed(), (d, tk), kt);
    let v = pack(v, (tk, dv), v_packed);
    for &block in blocks {
        let Block { r0, rows, lo, n } = block;
        let p = if keep { p.wrapping_add(r0 * tk) } else { p }; // the block's rows
        let rel = relative(extents, block);
        let rel = &rel[..rows];
        // SAFETY: as the caller promises; `p` holds `rows` rows of `tk` values, and the block's
        // keys lo..n lie inside every operand.
        unsafe {
            if keep {
                // Kept probabilities start at 0: the keys before the block's first and after
                // its last are not computed, and a tile leaves the columns past its rows'
                // extents unwritten (the softmax sets those to 0 too). Written while the rows
                // are in cache, and before the slice below reads them.
                std::ptr::write_bytes(p, 0, rows * tk);
            }
            // S = Q Kᵀ  [rows, n − lo], from key lo: rows tk apart from p + lo
            let p_lo = p.add(lo);
            product(
                (rows, n - lo, d),
                (p_lo, tk),
                false,
                q.rows_from(r0),
                kt.cols_from(lo),
                Span::Keys(rel),
            );
            let p_rows = std::slice::from_raw_parts_mut(p_lo, rows * tk - lo);
            softmax_rows(p_rows, &bias[r0 * tk + lo..(r0 + rows) * tk], tk, rel, n - lo, scale);
            // O = P V  [rows, dv], over keys lo..n
            let pm = Mat::of(p_lo, tk as isize, 1);
            product(
                (rows, dv, n - lo),
                (o.add(r0 * o_rs), o_rs),
                false,
                pm,
                v.rows_from(lo),
                Span::KeyDepth(rel),
            );
        }
    }
}

/// `dst ← lhs · rhs` through `gemm` on one thread; every operand is given by a pointer and
/// its (row, column) strides.
///
/// # Safety
/// `lhs` must address `[m, k]` readable values, `rhs` `[k, n]`, and `dst` `[m, n]` writable
/// values no other thread touches (written, not read).
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_product(
    (m, n, k): (usize, usize, usize),
    dst: *mut f32,
    dst_rs: isize,
    lhs: *const f32,
    (lhs_rs, lhs_cs): (isize, isize),
    rhs: *const f32,
    (rhs_rs, rhs_cs): (isize, isize),
) {
    // SAFETY: forwarded from the caller: every pointer and stride addresses its operand.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            dst_rs,
            false,
            lhs,
            lhs_cs,
            lhs_rs,
            rhs,
            rhs_cs,
            rhs_rs,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// [`head_forward`] for fewer query rows than a register tile holds (sampling with the KV
/// cache: one new query against every cached key), in one block: `gemm`'s matrix-vector path
/// reads `K` and `V` in place, where the tiles would first copy `Kᵀ` and compute rows that do
/// not exist.
///
/// # Safety
/// As for [`head_forward`].
#[allow(clippy::too_many_arguments)]
unsafe fn few_queries_forward(
    (q, k, v): (Mat, Mat, Mat),
    dims: Dims,
    (block, extents): (Block, &[usize]),
    bias: &[f32],
    p: *mut f32,
    keep: bool,
    (o, o_rs): (*mut f32, usize),
) {
    let Dims { d, dv, tk, scale } = dims;
    let Block { rows, lo, n, .. } = block;
    let rel = relative(extents, block);
    let rel = &rel[..rows];
    // SAFETY: as the caller promises; `p` holds `rows` rows of `tk` values, and keys lo..n lie
    // inside `k` and `v`.
    unsafe {
        if keep {
            // As in `head_forward`: kept probabilities start at 0.
            std::ptr::write_bytes(p, 0, rows * tk);
        }
        // S = Q Kᵀ  [rows, n − lo], from key lo
        let p_lo = p.add(lo);
        let k_lo = k.row_ptr(lo);
        gemm_product(
            (rows, n - lo, d),
            p_lo,
            tk as isize,
            q.ptr,
            (q.rs, q.cs),
            k_lo,
            (k.cs, k.rs),
        );
        let p_rows = std::slice::from_raw_parts_mut(p_lo, rows * tk - lo);
        softmax_rows(p_rows, &bias[lo..rows * tk], tk, rel, n - lo, scale);
        // O = P V  [rows, dv], over keys lo..n
        gemm_product(
            (rows, dv, n - lo),
            o,
            o_rs as isize,
            p_lo,
            (tk as isize, 1),
            v.row_ptr(lo),
            (v.rs, v.cs),
        );
    }
}

/// The backward pass of one head from its probabilities `p` (`[q, tk]`) and `∂O` (`g`):
/// writes `∂Q` (every row) and adds `∂K`, `∂V` onto `dk`, `dv`, which the caller zeroes.
/// `blocks` and `extents` are the forward pass's; `ds` is scratch space of ROWS × tk values,
/// `copies` scratch space for `Vᵀ`, `K`, `Q` and `∂O` packed as right operands.
///
/// # Safety
/// As for [`head_forward`]; `dq`, `dk` and `dv` (row strides given) must be writable and
/// touched by no other thread.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn head_backward(
    (q, k, v, g): (Mat, Mat, Mat, Mat),
    dims: Dims,
    (blocks, extents): (&[Block], &[usize]),
    p: &[f32],
    ds: *mut f32,
    (dq, dq_rs): (*mut f32, usize),
    (dk, dk_rs): (*mut f32, usize),
    (dv, dv_rs): (*mut f32, usize),
    copies: &mut [Vec<f32>; 4],
) {
    let Dims {
        d,
        dv: width_v,
        tk,
        scale,
    } = dims;
    let tq = extents.len();
    let [vt_packed, k_packed, q_packed, g_packed] = copies;
    let vt = pack(v.transposed(), (width_v, tk), vt_packed);
    let k = pack(k, (tk, d), k_packed);
    let q_rhs = pack(q, (tq, d), q_packed);
    let g_rhs = pack(g, (tq, width_v), g_packed);
    for &block in blocks {
        let Block { r0, rows, lo, n } = block;
        // The block's keys are lo..n: w of them, counted from lo below.
        let w = n - lo;
        let p = &p[r0 * tk + lo..][..rows * tk - lo];
        let rel = relative(extents, block);
        let rel = &rel[..rows];
        let (pt, ds_t) = (Mat::of(p.as_ptr(), 1, tk as isize), Mat::of(ds, 1, w as isize));
        // SAFETY: as the caller promises; `ds` holds ROWS × tk ≥ rows × w values, and keys
        // lo..n lie inside every operand.
        unsafe {
            // ∂V[lo..n] += Pᵀ ∂O  [w, dv]
            product(
                (w, width_v, rows),
                (dv.add(lo * dv_rs), dv_rs),
                true,
                pt,
                g_rhs.rows_from(r0),
                Span::QueryDepth(rel),
            );
            // ∂P = ∂O Vᵀ  [rows, w]
            product(
                (rows, w, width_v),
                (ds, w),
                false,
                g.rows_from(r0),
                vt.cols_from(lo),
                Span::Keys(rel),
            );
            let ds_rows = std::slice::from_raw_parts_mut(ds, rows * w);
            softmax_backward_rows(ds_rows, p, w, tk, rel, scale);
            // ∂Q = ∂S K  [rows, d]
            let dsm = Mat::of(ds, w as isize, 1);
            product(
                (rows, d, w),
                (dq.add(r0 * dq_rs), dq_rs),
                false,
                dsm,
                k.rows_from(lo),
                Span::KeyDepth(rel),
            );
            // ∂K[lo..n] += ∂Sᵀ Q  [w, d]
            product(
                (w, d, rows),
                (dk.add(lo * dk_rs), dk_rs),
                true,
                ds_t,
                q_rhs.rows_from(r0),
                Span::QueryDepth(rel),
            );
        }
    }
}

/// `softmax(q kᵀ · scale + bias) v`; with `keep_probs`, also the probabilities
/// `[batch, heads, q, k]` that the backward pass needs.
pub fn forward(
    q: FlexTensor,
    k: FlexTensor,
    v: FlexTensor,
    bias: FlexTensor,
    scale: f32,
    keep_probs: bool,
) -> (FlexTensor, Option<FlexTensor>) {
    let qs = q.layout().shape().clone();
    let (batch, heads, tq, d) = (qs[0], qs[1], qs[2], qs[3]);
    let (tk, dv) = (k.layout().shape()[2], v.layout().shape()[3]);
    let bias = contiguous_values(&bias);
    assert_eq!(bias.len(), tq * tk, "the mask bias must be [q, k]");
    let extents = key_extents(&bias, tq, tk);
    let blocks = blocks(&key_starts(&bias, tq, tk), &extents);
    let dims = Dims { d, dv, tk, scale };
    let (q, k, v) = (Operand::new(&q), Operand::new(&k), Operand::new(&v));

    let mut out = Fresh::new(batch * tq * heads * dv);
    let mut probs = Fresh::new(if keep_probs { batch * heads * tq * tk } else { 0 });
    let (out_ptr, probs_ptr) = (SharedMut(out.as_mut_ptr()), SharedMut(probs.as_mut_ptr()));
    pairs(batch, heads, tq, tk, d).for_each_init(
        || {
            let scratch = if keep_probs { Vec::new() } else { vec![0.0; ROWS * tk] };
            (scratch, [Vec::new(), Vec::new()])
        },
        |(scratch, copies), pair| {
            let (b, h) = (pair / heads, pair % heads);
            let p = if keep_probs {
                probs_ptr.at(pair * tq * tk)
            } else {
                scratch.as_mut_ptr()
            };
            let o = out_ptr.at(b * tq * heads * dv + h * dv);
            // SAFETY: pair `pair` alone writes its rows of `out` and `probs`; the scratch
            // buffer is this task's own; the operands hold tq queries and tk keys.
            unsafe {
                head_forward(
                    (q.mat(pair), k.mat(pair), v.mat(pair)),
                    dims,
                    (&blocks, &extents),
                    &bias,
                    p,
                    keep_probs,
                    (o, heads * dv),
                    copies,
                )
            };
        },
    );
    // SAFETY: the blocks cover every query row of every pair, and head_forward writes each
    // block's output rows (its d-wide slice of them) and, kept, all of its probability rows.
    let (out, probs) = unsafe { (out.assume_init(), probs.assume_init()) };
    let out = tensor(out, heads_last_layout(batch, heads, tq, dv));
    let probs = keep_probs.then(|| tensor(probs, Layout::contiguous(Shape::from(vec![batch, heads, tq, tk]))));
    (out, probs)
}

/// `(∂Q, ∂K, ∂V)` from the inputs, the mask bias, the saved probabilities and `∂O`.
pub fn backward(
    q: FlexTensor,
    k: FlexTensor,
    v: FlexTensor,
    bias: FlexTensor,
    probs: FlexTensor,
    grad: FlexTensor,
    scale: f32,
) -> (FlexTensor, FlexTensor, FlexTensor) {
    let qs = q.layout().shape().clone();
    let (batch, heads, tq, d) = (qs[0], qs[1], qs[2], qs[3]);
    let (tk, dv) = (k.layout().shape()[2], v.layout().shape()[3]);
    let bias = contiguous_values(&bias);
    let extents = key_extents(&bias, tq, tk);
    let blocks = blocks(&key_starts(&bias, tq, tk), &extents);
    let dims = Dims { d, dv, tk, scale };
    let probs = contiguous_values(&probs);
    assert_eq!(
        probs.len(),
        batch * heads * tq * tk,
        "probabilities [batch, heads, q, k]"
    );
    let (q, k, v, g) = (
        Operand::new(&q),
        Operand::new(&k),
        Operand::new(&v),
        Operand::new(&grad),
    );

    let mut dq = Fresh::new(batch * tq * heads * d);
    let mut dk = vec![0.0f32; batch * tk * heads * d];
    let mut dv_ = vec![0.0f32; batch * tk * heads * dv];
    let (dq_ptr, dk_ptr, dv_ptr) = (
        SharedMut(dq.as_mut_ptr()),
        SharedMut(dk.as_mut_ptr()),
        SharedMut(dv_.as_mut_ptr()),
    );
    pairs(batch, heads, tq, tk, d).for_each_init(
        || (vec![0.0; ROWS * tk], [Vec::new(), Vec::new(), Vec::new(), Vec::new()]),
        |(scratch, copies), pair| {
            let (b, h) = (pair / heads, pair % heads);
            let p = &probs[pair * tq * tk..][..tq * tk];
            // SAFETY: pair `pair` alone writes its d-wide slice of each row of ∂Q, ∂K and ∂V
            // (zeroed above); the scratch buffer is this task's own.
            unsafe {
                head_backward(
                    (q.mat(pair), k.mat(pair), v.mat(pair), g.mat(pair)),
                    dims,
                    (&blocks, &extents),
                    p,
                    scratch.as_mut_ptr(),
                    (dq_ptr.at(b * tq * heads * d + h * d), heads * d),
                    (dk_ptr.at(b * tk * heads * d + h * d), heads * d),
                    (dv_ptr.at(b * tk * heads * dv + h * dv), heads * dv),
                    copies,
                )
            };
        },
    );
    // SAFETY: the blocks cover every query row of every pair, and head_backward writes each
    // block's rows of ∂Q (its d-wide slice of them).
    let dq = unsafe { dq.assume_init() };
    (
        tensor(dq, heads_last_layout(batch, heads, tq, d)),
        tensor(dk, heads_last_layout(batch, heads, tk, d)),
        tensor(dv_, heads_last_layout(batch, heads, tk, dv)),
    )
}

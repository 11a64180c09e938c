//! Matrix product through the `gemm` crate (as Burn's flex backend does), writing straight
//! into a fresh output buffer. Strided inputs (transposed or narrowed views) are read in place.

use std::mem::MaybeUninit;

use burn_flex::FlexTensor;
use burn_std::Shape;
use rayon::prelude::*;

use super::{Fresh, contiguous_values, from_vec, gemv, write_all};

/// Below this many multiply-adds a product runs on one thread.
const PARALLEL_THRESHOLD: usize = 1 << 18;

/// `[..., m, k] · [..., k, n] → [..., m, n]` with equal batch axes.
pub fn matmul(lhs: FlexTensor, rhs: FlexTensor) -> FlexTensor {
    let (ls, rs) = (lhs.layout().shape().clone(), rhs.layout().shape().clone());
    let rank = ls.num_dims();
    assert!(rank >= 2 && rs.num_dims() == rank, "matmul needs equal ranks ≥ 2");
    assert_eq!(ls[..rank - 2], rs[..rank - 2], "batch axes must be equal");
    let (m, k, n) = (ls[rank - 2], ls[rank - 1], rs[rank - 1]);
    assert_eq!(rs[rank - 2], k, "inner dimensions differ");
    let batch: usize = ls[..rank - 2].iter().product();

    let lhs_starts = batch_starts(&lhs, rank);
    let rhs_starts = batch_starts(&rhs, rank);
    let (l_rs, l_cs) = (lhs.layout().strides()[rank - 2], lhs.layout().strides()[rank - 1]);
    let (r_rs, r_cs) = (rhs.layout().strides()[rank - 2], rhs.layout().strides()[rank - 1]);
    let lhs_data: &[f32] = lhs.storage();
    let rhs_data: &[f32] = rhs.storage();

    let mut out = Fresh::new(batch * m * n);
    let one = |b: usize, dst: &mut [MaybeUninit<f32>], parallelism: gemm::Parallelism| {
        // SAFETY: the offsets and strides come from the tensors' own layouts, so every element
        // read lies inside their storage; `dst` holds exactly m·n values, which gemm writes
        // row-major without reading them (read_dst false).
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                dst.as_mut_ptr().cast::<f32>(),
                1,
                n as isize,
                false,
                lhs_data.as_ptr().offset(lhs_starts[b]),
                l_cs,
                l_rs,
                rhs_data.as_ptr().offset(rhs_starts[b]),
                r_cs,
                r_rs,
                0.0,
                1.0,
                false,
                false,
                false,
                parallelism,
            );
        }
    };
    let work = m * n * k;
    if m * n == 0 {
        // nothing to compute
    } else if k == 0 {
        out.slots().fill(MaybeUninit::new(0.0));
    } else if batch == 1 || work >= PARALLEL_THRESHOLD {
        let parallelism = if work >= PARALLEL_THRESHOLD {
            gemm::Parallelism::Rayon(0)
        } else {
            gemm::Parallelism::None
        };
        for (b, dst) in out.slots().chunks_mut(m * n).enumerate() {
            one(b, dst, parallelism);
        }
    } else if batch * work < PARALLEL_THRESHOLD {
        for (b, dst) in out.slots().chunks_mut(m * n).enumerate() {
            one(b, dst, gemm::Parallelism::None); // too little work to share
        }
    } else {
        out.slots()
            .par_chunks_mut(m * n)
            .enumerate()
            .for_each(|(b, dst)| one(b, dst, gemm::Parallelism::None));
    }
    let mut dims = ls[..rank - 2].to_vec();
    dims.extend([m, n]);
    // SAFETY: gemm wrote each of the batch's m·n blocks (or the zeros did, for k = 0); with
    // m·n = 0 there is nothing to write.
    from_vec(unsafe { out.assume_init() }, Shape::from(dims))
}

/// `x · w + b` for `x` `[rows, k]`, `w` `[k, n]`, `b` `[n]`: the output starts as copies of
/// `b` and the product accumulates onto it, so the bias costs no pass of its own.
pub fn linear(x: FlexTensor, w: FlexTensor, b: FlexTensor) -> FlexTensor {
    let (xs, ws) = (x.layout().shape().clone(), w.layout().shape().clone());
    assert!(
        xs.num_dims() == 2 && ws.num_dims() == 2,
        "linear takes a 2-D input and weight"
    );
    let (m, k, n) = (xs[0], xs[1], ws[1]);
    assert_eq!(ws[0], k, "inner dimensions differ");
    let bias = contiguous_values(&b);
    assert_eq!(bias.len(), n, "the bias must have one value per output");
    let (w_rs, w_cs) = (w.layout().strides()[0], w.layout().strides()[1]);
    if m == 1 && k > 0 && n > 0 && w_cs == 1 && w_rs >= n as isize {
        // One row (a generation step with the KV cache): a matrix-vector product, which every
        // thread helps read from memory (see `gemv`).
        let x_row = contiguous_values(&x);
        let w_data: &[f32] = w.storage();
        let mut out = vec![0.0; n]; // one row: zeroing it costs nothing worth saving
        gemv::row_times_matrix(
            &mut out,
            &x_row,
            &w_data[w.layout().start_offset()..],
            w_rs as usize,
            &bias,
        );
        return from_vec(out, Shape::from(vec![1, n]));
    }
    let mut out = Fresh::new(m * n);
    if n > 0 {
        for row in out.slots().chunks_mut(n) {
            write_all(row, &bias);
        }
    }
    // SAFETY: every row now holds the bias.
    let mut out = unsafe { out.assume_init() };
    if m * n > 0 && k > 0 {
        let (x_rs, x_cs) = (x.layout().strides()[0], x.layout().strides()[1]);
        let x_data: &[f32] = x.storage();
        let w_data: &[f32] = w.storage();
        let parallelism = if m * n * k >= PARALLEL_THRESHOLD {
            gemm::Parallelism::Rayon(0)
        } else {
            gemm::Parallelism::None
        };
        // SAFETY: offsets and strides come from the tensors' own layouts; `out` holds m·n
        // values, row-major, all initialised (the bias) before gemm reads them.
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                out.as_mut_ptr(),
                1,
                n as isize,
                true,
                x_data.as_ptr().add(x.layout().start_offset()),
                x_cs,
                x_rs,
                w_data.as_ptr().add(w.layout().start_offset()),
                w_cs,
                w_rs,
                1.0,
                1.0,
                false,
                false,
                false,
                parallelism,
            );
        }
    }
    from_vec(out, Shape::from(vec![m, n]))
}

vectorized! {
    /// `Σ_rows g` for a row-major `[rows, n]` matrix (the gradient of a broadcast bias).
    fn column_sums(sums: &mut [f32], g: &[f32]) {
        let n = sums.len();
        for row in g.chunks(n) {
            for (s, &v) in sums.iter_mut().zip(row) {
                *s += v;
            }
        }
    }
}

/// `[rows, n] → [n]`: the sum of the rows.
pub fn sum_rows(g: FlexTensor) -> FlexTensor {
    let shape = g.layout().shape().clone();
    assert_eq!(shape.num_dims(), 2, "sum_rows takes a matrix");
    let values = contiguous_values(&g);
    let mut sums = vec![0.0f32; shape[1]];
    if shape[1] > 0 {
        column_sums(&mut sums, &values);
    }
    from_vec(sums, Shape::from(vec![shape[1]]))
}

/// The storage offset of each batch matrix, in row-major order of the batch axes.
pub(super) fn batch_starts(t: &FlexTensor, rank: usize) -> Vec<isize> {
    let layout = t.layout();
    let shape = layout.shape();
    let strides = layout.strides();
    let mut starts = vec![layout.start_offset() as isize];
    for axis in 0..rank - 2 {
        let mut next = Vec::with_capacity(starts.len() * shape[axis]);
        for &s in &starts {
            for i in 0..shape[axis] {
                next.push(s + i as isize * strides[axis]);
            }
        }
        starts = next;
    }
    starts
}

//! Self-attention straight from the fused q/k/v projection, as one operation:
//!
//! ```text
//! q, k, v = split(qkv)                per head, read in place
//! q, k    = rope(q), rope(k)          rotate-half, into per-task scratch
//! y_h     = attention(q, k, v)        the per-head kernel of `attention.rs`
//! y       = concat_h(y_h)             written in place: [batch, seq, d_model]
//! ```
//!
//! and its backward pass, which writes `∂qkv` once. Against the composition of Burn
//! operations this removes the head split and merge copies, the RoPE passes and their
//! backward, and the three zero-filled gradients that splitting `qkv` costs under autodiff.

use std::borrow::Cow;

use burn_flex::{FlexTensor, Layout};
use burn_std::Shape;

use super::attention::{
    Dims, ROWS, SharedMut, blocks, head_backward, head_forward, key_extents, key_starts, pairs, tensor,
};
use super::mat::Mat;
use rayon::prelude::*;

use super::{Fresh, contiguous_values, from_vec};

/// The operands every self-attention pass reads, checked and as contiguous values.
struct Operands<'a> {
    batch: usize,
    /// `3·d_model`, the stride between positions of `qkv`.
    width: usize,
    dm: usize,
    /// Width of a head.
    d: usize,
    x: Cow<'a, [f32]>,
    cos: Cow<'a, [f32]>,
    sin: Cow<'a, [f32]>,
    bias: Cow<'a, [f32]>,
}

impl<'a> Operands<'a> {
    /// `qkv` `[batch, seq, 3·d_model]`, the RoPE tables `[seq, d_head]` and the mask bias
    /// `[seq, keys]`.
    fn read(
        qkv: &'a FlexTensor,
        (cos, sin): (&'a FlexTensor, &'a FlexTensor),
        bias: &'a FlexTensor,
        heads: usize,
        keys: usize,
    ) -> Self {
        let shape = qkv.layout().shape();
        let (batch, t, width) = (shape[0], shape[1], shape[2]);
        let dm = width / 3;
        let d = dm / heads;
        assert!(
            width == 3 * dm && dm == heads * d && d.is_multiple_of(2),
            "qkv must be [batch, seq, 3·heads·d], d even"
        );
        let (cos, sin, bias) = (contiguous_values(cos), contiguous_values(sin), contiguous_values(bias));
        assert!(
            cos.len() == t * d && sin.len() == t * d,
            "RoPE tables must be [seq, d_head]"
        );
        assert_eq!(bias.len(), t * keys, "the mask bias must be [seq, keys]");
        Self {
            batch,
            width,
            dm,
            d,
            x: contiguous_values(qkv),
            cos,
            sin,
            bias,
        }
    }
}

/// Self-attention straight from the fused projection: `qkv` is `[batch, seq, 3·d_model]`
/// (`[q | k | v]`, head `h` owning columns `h·d..(h+1)·d` of each), RoPE (rotate-half, tables
/// `cos`, `sin` `[seq, d]`) is applied to the queries and keys of each head on the fly, and the
/// result is `[batch, seq, d_model]` with the heads side by side. With `keep_probs`, also the
/// probabilities `[batch, heads, seq, seq]`.
#[allow(clippy::too_many_arguments)]
pub fn self_forward(
    qkv: FlexTensor,
    cos: FlexTensor,
    sin: FlexTensor,
    bias: FlexTensor,
    heads: usize,
    scale: f32,
    keep_probs: bool,
) -> (FlexTensor, Option<FlexTensor>) {
    let t = qkv.layout().shape()[1];
    let Operands {
        batch,
        width,
        dm,
        d,
        x,
        cos,
        sin,
        bias,
        ..
    } = Operands::read(&qkv, (&cos, &sin), &bias, heads, t);
    let extents = key_extents(&bias, t, t);
    let blocks = blocks(&key_starts(&bias, t, t), &extents);
    let dims = Dims { d, dv: d, tk: t, scale };

    let mut out = Fresh::new(batch * t * dm);
    let mut probs = Fresh::new(if keep_probs { batch * heads * t * t } else { 0 });
    let (out_ptr, probs_ptr) = (SharedMut(out.as_mut_ptr()), SharedMut(probs.as_mut_ptr()));
    pairs(batch, heads, t, t, d).for_each_init(
        || {
            (
                vec![0.0; t * d],
                vec![0.0; t * d],
                if keep_probs { Vec::new() } else { vec![0.0; ROWS * t] },
                [Vec::new(), Vec::new()],
            )
        },
        |(q_rot, k_rot, scratch, copies), pair| {
            let (b, h) = (pair / heads, pair % heads);
            let base = b * t * width;
            rope_rows(q_rot, &x[base + h * d..], width, &cos, &sin, d);
            rope_rows(k_rot, &x[base + dm + h * d..], width, &cos, &sin, d);
            let v = Mat::of(x[base + 2 * dm + h * d..].as_ptr(), width as isize, 1);
            let p = if keep_probs {
                probs_ptr.at(pair * t * t)
            } else {
                scratch.as_mut_ptr()
            };
            let o = out_ptr.at(b * t * dm + h * d);
            let (q, k) = (
                Mat::of(q_rot.as_ptr(), d as isize, 1),
                Mat::of(k_rot.as_ptr(), d as isize, 1),
            );
            // SAFETY: pair `pair` alone writes its d-wide slice of each output row and its
            // probabilities; the scratch buffers are this task's own.
            unsafe {
                head_forward(
                    (q, k, v),
                    dims,
                    (&blocks, &extents),
                    &bias,
                    p,
                    keep_probs,
                    (o, dm),
                    copies,
                )
            };
        },
    );
    // SAFETY: the blocks cover every query row of every pair, and head_forward writes each
    // block's output rows (its d-wide slice of them) and, kept, all of its probability rows.
    let (out, probs) = unsafe { (out.assume_init(), probs.assume_init()) };
    let out = from_vec(out, Shape::from(vec![batch, t, dm]));
    let probs = keep_probs.then(|| tensor(probs, Layout::contiguous(Shape::from(vec![batch, heads, t, t]))));
    (out, probs)
}

/// [`self_forward`] for `s` new positions after `past` cached ones (generation): each head's
/// new keys (rotated) and values are written into the cache buffers (`[batch, heads, capacity,
/// d]`, positions `past..past + s`; in place when nothing else holds them, else into a copy),
/// and its new queries attend to positions `0..past + s`. `cos` and `sin` are the tables of the
/// new positions, `bias` is `[s, past + s]`. Returns the output `[batch, s, d_model]` and the
/// two buffers.
#[allow(clippy::too_many_arguments)]
pub fn cached_forward(
    qkv: FlexTensor,
    cos: FlexTensor,
    sin: FlexTensor,
    (keys, values): (FlexTensor, FlexTensor),
    bias: FlexTensor,
    past: usize,
    heads: usize,
    scale: f32,
) -> (FlexTensor, FlexTensor, FlexTensor) {
    let s = qkv.layout().shape()[1];
    let tk = past + s;
    let Operands {
        batch,
        width,
        dm,
        d,
        x,
        cos,
        sin,
        bias,
        ..
    } = Operands::read(&qkv, (&cos, &sin), &bias, heads, tk);
    let capacity = keys.layout().shape()[2];
    for buffer in [&keys, &values] {
        assert_eq!(
            buffer.layout().shape().to_vec(),
            [batch, heads, capacity, d],
            "the cache buffers must be [batch, heads, capacity, d_head]"
        );
    }
    assert!(
        tk <= capacity,
        "the cache buffers have room for {capacity} positions, not {tk}"
    );
    let extents = key_extents(&bias, s, tk);
    let blocks = blocks(&key_starts(&bias, s, tk), &extents);
    let dims = Dims { d, dv: d, tk, scale };
    let dense = |t: FlexTensor| {
        if t.is_contiguous() && t.layout().start_offset() == 0 {
            t
        } else {
            t.to_contiguous()
        }
    };
    let (mut keys, mut values) = (dense(keys), dense(values));
    // Copied here if something else holds them (copy on write), so the writes below touch
    // this operation's buffers only.
    let k_ptr = SharedMut(keys.storage_mut::<f32>().as_mut_ptr());
    let v_ptr = SharedMut(values.storage_mut::<f32>().as_mut_ptr());

    let mut out = Fresh::new(batch * s * dm);
    let out_ptr = SharedMut(out.as_mut_ptr());
    pairs(batch, heads, s, tk, d).for_each_init(
        || (vec![0.0; s * d], vec![0.0; ROWS * tk], [Vec::new(), Vec::new()]),
        |(q_rot, scratch, copies), pair| {
            let (b, h) = (pair / heads, pair % heads);
            let base = b * s * width;
            let head = pair * capacity * d; // where head (b, h) starts in the buffers
            // SAFETY: pair `pair` alone writes positions past..past + s of its head's
            // buffers, and reads only its head's positions 0..past + s.
            let (k_new, v_new) = unsafe {
                (
                    std::slice::from_raw_parts_mut(k_ptr.at(head + past * d), s * d),
                    std::slice::from_raw_parts_mut(v_ptr.at(head + past * d), s * d),
                )
            };
            rope_rows(k_new, &x[base + dm + h * d..], width, &cos, &sin, d);
            for (r, v_row) in v_new.chunks_mut(d).enumerate() {
                v_row.copy_from_slice(&x[base + 2 * dm + h * d + r * width..][..d]);
            }
            rope_rows(q_rot, &x[base + h * d..], width, &cos, &sin, d);
            let q = Mat::of(q_rot.as_ptr(), d as isize, 1);
            let (k, v) = (
                Mat::of(k_ptr.at(head), d as isize, 1),
                Mat::of(v_ptr.at(head), d as isize, 1),
            );
            let o = out_ptr.at(b * s * dm + h * d);
            // SAFETY: as above; pair `pair` alone writes its d-wide slice of each output row;
            // the scratch buffers are this task's own.
            unsafe {
                head_forward(
                    (q, k, v),
                    dims,
                    (&blocks, &extents),
                    &bias,
                    scratch.as_mut_ptr(),
                    false,
                    (o, dm),
                    copies,
                )
            };
        },
    );
    // SAFETY: as in `self_forward`, every output row is written.
    let out = unsafe { out.assume_init() };
    (from_vec(out, Shape::from(vec![batch, s, dm])), keys, values)
}

/// `∂L/∂qkv` of [`self_forward`] from its inputs, its probabilities and `∂L/∂out`.
#[allow(clippy::too_many_arguments)]
pub fn self_backward(
    qkv: FlexTensor,
    cos: FlexTensor,
    sin: FlexTensor,
    bias: FlexTensor,
    probs: FlexTensor,
    grad: FlexTensor,
    heads: usize,
    scale: f32,
) -> FlexTensor {
    let t = qkv.layout().shape()[1];
    let Operands {
        batch,
        width,
        dm,
        d,
        x,
        cos,
        sin,
        bias,
        ..
    } = Operands::read(&qkv, (&cos, &sin), &bias, heads, t);
    let g = contiguous_values(&grad);
    let probs = contiguous_values(&probs);
    assert_eq!(
        probs.len(),
        batch * heads * t * t,
        "probabilities [batch, heads, seq, seq]"
    );
    assert_eq!(g.len(), batch * t * dm, "gradient [batch, seq, d_model]");
    let extents = key_extents(&bias, t, t);
    let blocks = blocks(&key_starts(&bias, t, t), &extents);
    let dims = Dims { d, dv: d, tk: t, scale };

    // ∂V accumulates, so the buffer starts at zero; the ∂Q and ∂K columns are overwritten.
    let mut dx = vec![0.0f32; batch * t * width];
    let dx_ptr = SharedMut(dx.as_mut_ptr());
    pairs(batch, heads, t, t, d).for_each_init(
        || {
            (
                [
                    vec![0.0; t * d],
                    vec![0.0; t * d],
                    vec![0.0; t * d],
                    vec![0.0; t * d],
                    vec![0.0; ROWS * t],
                ],
                [Vec::new(), Vec::new(), Vec::new(), Vec::new()],
            )
        },
        |([q_rot, k_rot, dq_rot, dk_rot, ds], copies), pair| {
            let (b, h) = (pair / heads, pair % heads);
            let base = b * t * width;
            rope_rows(q_rot, &x[base + h * d..], width, &cos, &sin, d);
            rope_rows(k_rot, &x[base + dm + h * d..], width, &cos, &sin, d);
            dk_rot.fill(0.0);
            let v = Mat::of(x[base + 2 * dm + h * d..].as_ptr(), width as isize, 1);
            let gm = Mat::of(g[b * t * dm + h * d..].as_ptr(), dm as isize, 1);
            let (q, k) = (
                Mat::of(q_rot.as_ptr(), d as isize, 1),
                Mat::of(k_rot.as_ptr(), d as isize, 1),
            );
            // SAFETY: pair `pair` alone writes its d-wide slices of the rows of ∂qkv (its q, k
            // and v columns); the scratch buffers are this task's own.
            unsafe {
                head_backward(
                    (q, k, v, gm),
                    dims,
                    (&blocks, &extents),
                    &probs[pair * t * t..][..t * t],
                    ds.as_mut_ptr(),
                    (dq_rot.as_mut_ptr(), d),
                    (dk_rot.as_mut_ptr(), d),
                    (dx_ptr.at(base + 2 * dm + h * d), width),
                    copies,
                );
                // Back through the rotations: ∂x = Rᵀ ∂x_rot.
                rope_rows_transposed(dx_ptr.at(base + h * d), width, dq_rot, &cos, &sin, d);
                rope_rows_transposed(dx_ptr.at(base + dm + h * d), width, dk_rot, &cos, &sin, d);
            }
        },
    );
    from_vec(dx, qkv.layout().shape().clone())
}

vectorized! {
    /// `y = x ⊙ cos + rotate_half(x) ⊙ sin` for each of the rows of `y` (`[rows, d]`), the rows
    /// of `x` `x_rs` apart; `rotate_half([x₁, x₂]) = [−x₂, x₁]`.
    fn rope_rows(y: &mut [f32], x: &[f32], x_rs: usize, cos: &[f32], sin: &[f32], d: usize) {
        let half = d / 2;
        for (r, y) in y.chunks_mut(d).enumerate() {
            // Halves as slices of exactly `half` values: the loop then needs no bounds checks.
            let x = &x[r * x_rs..][..d];
            let (x1, x2) = (&x[..half], &x[half..][..half]);
            let (c, s) = (&cos[r * d..][..d], &sin[r * d..][..d]);
            let (c1, c2, s1, s2) = (&c[..half], &c[half..][..half], &s[..half], &s[half..][..half]);
            let (y1, y2) = y.split_at_mut(half);
            let (y1, y2) = (&mut y1[..half], &mut y2[..half]);
            for i in 0..half {
                y1[i] = x1[i] * c1[i] - x2[i] * s1[i];
                y2[i] = x2[i] * c2[i] + x1[i] * s2[i];
            }
        }
    }
}

vectorized! {
    #[allow(clippy::not_unsafe_ptr_arg_deref)] // private; callers own the rows they pass
    /// The transpose of [`rope_rows`]: `dx = g ⊙ cos + rotate_halfᵀ(g ⊙ sin)`, with
    /// `rotate_halfᵀ([z₁, z₂]) = [z₂, −z₁]`; `g` is `[rows, d]`, the rows of `dx` are `dx_rs`
    /// apart.
    fn rope_rows_transposed(dx: *mut f32, dx_rs: usize, g: &[f32], cos: &[f32], sin: &[f32], d: usize) {
        let half = d / 2;
        for (r, g) in g.chunks(d).enumerate() {
            // SAFETY: the caller's row r lies inside its buffer and belongs to this thread.
            let dx = unsafe { std::slice::from_raw_parts_mut(dx.add(r * dx_rs), d) };
            let (g1, g2) = (&g[..half], &g[half..][..half]);
            let (c, s) = (&cos[r * d..][..d], &sin[r * d..][..d]);
            let (c1, c2, s1, s2) = (&c[..half], &c[half..][..half], &s[..half], &s[half..][..half]);
            let (dx1, dx2) = dx.split_at_mut(half);
            let (dx1, dx2) = (&mut dx1[..half], &mut dx2[..half]);
            for i in 0..half {
                dx1[i] = g1[i] * c1[i] + g2[i] * s2[i];
                dx2[i] = g2[i] * c2[i] - g1[i] * s1[i];
            }
        }
    }
}

//! Every fused kernel against the plain Burn composition it replaces: values and gradients.

use burn::tensor::{Device, Tensor};

fn device() -> Device {
    Device::flex().autodiff()
}

/// N(0, 1)-like values from a seeded host generator (not the backend's shared one, which
/// tests running in parallel would disturb).
fn random<const D: usize>(shape: [usize; D], seed: u64) -> Tensor<D> {
    let n: usize = shape.iter().product();
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let values: Vec<f32> = (0..n)
        .map(|_| {
            // Sum of four uniforms, centred and scaled: close enough to a normal for tests.
            (0..4)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x >> 40) as f32 / (1u64 << 24) as f32
                })
                .sum::<f32>()
                .mul_add(1.732, -3.464)
        })
        .collect();
    Tensor::from_data(burn::tensor::TensorData::new(values, shape), &device())
}

fn values<const D: usize>(t: &Tensor<D>) -> Vec<f32> {
    t.clone().inner().into_data().try_to_vec::<f32>().unwrap()
}

fn assert_close(what: &str, a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    let worst = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs() / (1.0 + y.abs()))
        .fold(0.0f32, f32::max);
    assert!(worst <= tol, "{what}: worst relative difference {worst:e} > {tol:e}");
}

/// Runs `f` on fresh copies of `inputs` tracking gradients; returns the output values and the
/// gradient of Σ out ⊙ w for a fixed random `w`, for every input.
fn run<const D: usize, const O: usize>(
    inputs: &[Tensor<D>],
    f: impl Fn(Vec<Tensor<D>>) -> Tensor<O>,
) -> (Vec<f32>, Vec<Vec<f32>>) {
    let xs: Vec<Tensor<D>> = inputs.iter().map(|t| t.clone().detach().require_grad()).collect();
    let out = f(xs.clone());
    let w = random(out.dims(), 99);
    let grads = (out.clone() * w).sum().backward();
    (
        values(&out),
        xs.iter().map(|x| values(&x.grad(&grads).expect("gradient"))).collect(),
    )
}

fn compare<const D: usize, const O: usize>(
    what: &str,
    inputs: &[Tensor<D>],
    fused: impl Fn(Vec<Tensor<D>>) -> Tensor<O>,
    reference: impl Fn(Vec<Tensor<D>>) -> Tensor<O>,
    tol: f32,
) {
    let (a, ga) = run(inputs, fused);
    let (b, gb) = run(inputs, reference);
    assert_close(&format!("{what} values"), &a, &b, tol);
    for (i, (x, y)) in ga.iter().zip(&gb).enumerate() {
        assert_close(&format!("{what} gradient of input {i}"), x, y, tol);
    }
}

#[test]
fn matmul_matches_burn_for_plain_batched_and_transposed_operands() {
    assert!(ember_kernels::fused(&random([2, 2], 0)));
    let (a, b) = (random([37, 19], 1), random([19, 23], 2));
    compare(
        "2-D matmul",
        &[a, b],
        |v| ember_kernels::matmul(v[0].clone(), v[1].clone()),
        |v| v[0].clone().matmul(v[1].clone()),
        1e-5,
    );
    let (a, b) = (random([2, 3, 17, 8], 3), random([2, 3, 17, 8], 4));
    // q · kᵀ as attention computes it: the right operand is a transposed view.
    compare(
        "batched matmul with a transposed operand",
        &[a, b],
        |v| ember_kernels::matmul(v[0].clone(), v[1].clone().swap_dims(2, 3)),
        |v| v[0].clone().matmul(v[1].clone().swap_dims(2, 3)),
        1e-5,
    );
    let (a, b) = (random([3, 300, 64], 5), random([3, 64, 200], 6));
    compare(
        "large batched matmul",
        &[a, b],
        |v| ember_kernels::matmul(v[0].clone(), v[1].clone()),
        |v| v[0].clone().matmul(v[1].clone()),
        1e-5,
    );
}

#[test]
fn gelu_matches_the_erf_formula() {
    let x = random([7, 129], 7).mul_scalar(3.0);
    compare(
        "GELU",
        &[x],
        |v| ember_kernels::gelu(v[0].clone()),
        |v| {
            let x = v[0].clone();
            x.clone()
                * x.div_scalar(std::f64::consts::SQRT_2)
                    .erf()
                    .add_scalar(1.0)
                    .mul_scalar(0.5)
        },
        2e-6,
    );
    // far tails: exactly 0 and x
    let x = Tensor::<1>::from_data([-30.0f32, -10.0, 10.0, 30.0], &device());
    assert_eq!(values(&ember_kernels::gelu(x)), vec![-0.0, -0.0, 10.0, 30.0]);
}

#[test]
fn layer_norm_matches_the_composition() {
    let x = random([5, 9, 48], 8).mul_scalar(2.0).add_scalar(0.5);
    let w = random([48], 9);
    let b = random([48], 10);
    let (a, ga) = run(&[x.clone()], |v| {
        ember_kernels::layer_norm(v[0].clone(), w.clone(), b.clone(), 1e-5)
    });
    let (r, gr) = run(&[x.clone()], |v| {
        reference_layer_norm(v[0].clone(), w.clone(), b.clone())
    });
    assert_close("LayerNorm values", &a, &r, 2e-6);
    assert_close("LayerNorm ∂x", &ga[0], &gr[0], 2e-5);
    // Gradients of the gain and the shift.
    let grads_of = |fused: bool| {
        let (w, b) = (w.clone().detach().require_grad(), b.clone().detach().require_grad());
        let out = if fused {
            ember_kernels::layer_norm(x.clone(), w.clone(), b.clone(), 1e-5)
        } else {
            reference_layer_norm(x.clone(), w.clone(), b.clone())
        };
        let g = (out.clone() * random(out.dims(), 99)).sum().backward();
        (values(&w.grad(&g).unwrap()), values(&b.grad(&g).unwrap()))
    };
    let ((fw, fb), (rw, rb)) = (grads_of(true), grads_of(false));
    assert_close("LayerNorm ∂weight", &fw, &rw, 2e-5);
    assert_close("LayerNorm ∂bias", &fb, &rb, 2e-5);
}

fn reference_layer_norm(x: Tensor<3>, w: Tensor<1>, b: Tensor<1>) -> Tensor<3> {
    let (var, mean) = x.clone().var_mean_bias(2);
    (x - mean).div(var.add_scalar(1e-5).sqrt()) * w.unsqueeze() + b.unsqueeze()
}

#[test]
fn other_devices_are_not_claimed() {
    #[allow(deprecated)]
    let nd = Device::ndarray();
    assert!(!ember_kernels::fused(&Tensor::<1>::zeros([2], &nd)));
    let half = Tensor::<1>::zeros([2], &Device::flex()).cast(burn::tensor::FloatDType::F16);
    assert!(!ember_kernels::fused(&half));
}

#[test]
fn masked_scaled_softmax_matches_the_composition() {
    let scores = random([2, 3, 9, 9], 11).mul_scalar(4.0);
    // a causal mask: 0 on and below the diagonal, −∞ above
    let mut bias = vec![0.0f32; 81];
    for q in 0..9 {
        for k in q + 1..9 {
            bias[q * 9 + k] = f32::NEG_INFINITY;
        }
    }
    let bias = Tensor::<2>::from_data(burn::tensor::TensorData::new(bias, [9, 9]), &device());
    let scale = 0.25;
    compare(
        "masked softmax",
        &[scores],
        |v| ember_kernels::softmax(v[0].clone(), bias.clone(), scale),
        |v| burn::tensor::activation::softmax(v[0].clone().mul_scalar(scale) + bias.clone().unsqueeze::<4>(), 3),
        2e-6,
    );
}

#[test]
fn cross_entropy_matches_log_softmax_and_gather() {
    let logits = random([37, 65], 12).mul_scalar(3.0);
    let ids: Vec<i64> = (0..37).map(|i| (i * 7 % 65) as i64).collect();
    let targets = Tensor::<1, burn::tensor::Int>::from_data(burn::tensor::TensorData::new(ids, [37]), &device());
    compare(
        "cross-entropy",
        &[logits],
        |v| ember_kernels::cross_entropy(v[0].clone(), targets.clone()),
        |v| {
            let lp = burn::tensor::activation::log_softmax(v[0].clone(), 1);
            lp.gather(1, targets.clone().reshape([37, 1])).mean().neg()
        },
        2e-6,
    );
}

#[test]
fn adamw_update_matches_the_formula_in_place_or_not() {
    let n = 100_003; // not a multiple of any vector width or chunk
    let r = |s: f32| random([n], (s * 1000.0) as u64).inner().mul_scalar(s);
    let (theta, g, m, v) = (r(1.0), r(0.1), r(0.01), r(0.001).abs());
    let (m_before, v_before) = (values(&m), values(&v));
    let (lr, b1, b2, eps, wd, t, clip) = (3e-3f64, 0.9f64, 0.95f64, 1e-8f64, 0.1f64, 7, 0.25f64);
    let (bias1, bias2) = (1.0 - b1.powi(t), 1.0 - b2.powi(t));
    let c = [lr, b1, b2, eps, 1.0 - lr * wd, bias1, bias2.sqrt(), clip].map(|x| x as f32);
    // Shared moments (clones held here): the kernel must copy them, not write through.
    let (t2, m2, v2) = ember_kernels::adamw(theta.clone(), g.clone(), m.clone(), v.clone(), c);
    assert_eq!(values(&m), m_before, "a shared first moment was written through");
    assert_eq!(values(&v), v_before, "a shared second moment was written through");
    // Moments held by nobody else: updated in place, with the same result.
    let fresh = |x: &Tensor<1>| Tensor::<1>::from_data(x.to_data(), &x.device());
    let (t3, m3, v3) = ember_kernels::adamw(theta.clone(), g.clone(), fresh(&m), fresh(&v), c);
    assert_eq!(values(&t3), values(&t2));
    assert_eq!(values(&m3), values(&m2));
    assert_eq!(values(&v3), values(&v2));

    let g = g.mul_scalar(clip);
    let m_ref = m.mul_scalar(b1) + g.clone().mul_scalar(1.0 - b1);
    let v_ref = v.mul_scalar(b2) + g.square().mul_scalar(1.0 - b2);
    let denom = v_ref.clone().sqrt().div_scalar(bias2.sqrt()).add_scalar(eps);
    let t_ref = theta.mul_scalar(1.0 - lr * wd) - m_ref.clone().div(denom).mul_scalar(lr / bias1);
    assert_close("m", &values(&m2), &values(&m_ref), 1e-6);
    assert_close("v", &values(&v2), &values(&v_ref), 1e-6);
    assert_close("θ", &values(&t2), &values(&t_ref), 1e-6);
}

#[test]
fn sum_of_squares_matches_an_f64_sum() {
    for n in [1, 7, 64, 1000, 100_003] {
        let x = random([n], n as u64).inner();
        let expected: f64 = values(&x).iter().map(|&v| v as f64 * v as f64).sum();
        let got = ember_kernels::sum_squares(x.clone()).into_scalar::<f32>() as f64;
        assert!(
            (got - expected).abs() <= 1e-6 * expected,
            "n = {n}: {got} vs {expected}"
        );
        // The reference composition, for the other devices, agrees.
        let plain = x.square().sum().into_scalar::<f32>() as f64;
        assert!(
            (plain - expected).abs() <= 1e-4 * expected,
            "n = {n}: reference {plain}"
        );
    }
}

#[test]
fn add_sum_squares_gives_the_sum_and_the_square_sum_of_sum_squares() {
    for n in [1, 7, 64, 1000, 100_003] {
        let a = random([n], n as u64).inner();
        let b = random([n], n as u64 + 1).inner();
        let expected: Vec<f32> = values(&a).iter().zip(values(&b)).map(|(x, y)| x + y).collect();
        // `a` shared: the sum goes to a new buffer and `a` keeps its values.
        let kept = a.clone();
        let (sum, squares) = ember_kernels::add_sum_squares(a, b.clone());
        assert_eq!(values(&sum), expected, "n = {n}");
        assert_ne!(values(&kept), expected, "n = {n}: the shared input was overwritten");
        let fresh = ember_kernels::sum_squares(sum.clone()).into_scalar::<f32>();
        assert_eq!(squares.into_scalar::<f32>(), fresh, "n = {n}");
        // `a` ours alone: the same results, written over its buffer.
        let (sum, squares) = ember_kernels::add_sum_squares(kept, b);
        assert_eq!(values(&sum), expected, "n = {n}, in place");
        assert_eq!(squares.into_scalar::<f32>(), fresh, "n = {n}, in place");
    }
}

/// `[q, k]` bias: query `i` (at absolute position `past + i`) sees keys `past + i − window < j
/// ≤ past + i` (`window = usize::MAX`: causal).
fn mask_bias(q: usize, k: usize, window: usize) -> Tensor<2> {
    let past = k - q;
    let bias: Vec<f32> = (0..q * k)
        .map(|n| {
            let (i, j) = (n / k + past, n % k);
            if j <= i && i - j < window {
                0.0
            } else {
                f32::NEG_INFINITY
            }
        })
        .collect();
    Tensor::from_data(burn::tensor::TensorData::new(bias, [q, k]), &device())
}

fn reference_attention(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, bias: Tensor<2>, scale: f64) -> Tensor<4> {
    let scores = q.matmul(k.swap_dims(2, 3)).mul_scalar(scale) + bias.unsqueeze::<4>();
    burn::tensor::activation::softmax(scores, 3).matmul(v)
}

#[test]
fn attention_matches_the_composition_for_causal_windowed_and_cached_masks() {
    // (batch, heads, queries, keys, d_head, window): several query blocks with a ragged last
    // one; a head width of two and a half register tiles; fewer queries than a register tile
    // against a longer cache; sliding windows (blocks past the first then start at a later
    // key), also for two queries against a cache; a few new queries against a longer cache; a
    // single query.
    for (case, &(b, h, tq, tk, d, window)) in [
        (2, 3, 150, 150, 16, usize::MAX),
        (1, 2, 37, 37, 40, usize::MAX),
        (1, 2, 3, 20, 8, usize::MAX),
        (1, 2, 70, 70, 8, 9),
        (1, 2, 200, 200, 16, 20),
        (1, 2, 2, 100, 8, 10),
        (2, 2, 5, 40, 8, usize::MAX),
        (1, 1, 1, 12, 4, usize::MAX),
    ]
    .iter()
    .enumerate()
    {
        let seed = 20 + 3 * case as u64;
        let inputs = [
            random([b, h, tq, d], seed),
            random([b, h, tk, d], seed + 1),
            random([b, h, tk, d], seed + 2),
        ];
        let bias = mask_bias(tq, tk, window);
        let scale = 1.0 / (d as f64).sqrt();
        compare(
            &format!("attention case {case}"),
            &inputs,
            |x| ember_kernels::attention(x[0].clone(), x[1].clone(), x[2].clone(), bias.clone(), scale),
            |x| reference_attention(x[0].clone(), x[1].clone(), x[2].clone(), bias.clone(), scale),
            2e-5,
        );
    }
}

#[test]
fn attention_reads_strided_heads_and_runs_without_autodiff() {
    // Heads split from a [batch, seq, heads·d] projection, as the model does: strided views.
    let (b, h, t, d) = (2, 4, 33, 8);
    let x = random([b, t, 3 * h * d], 40);
    let split = |x: Tensor<3>| {
        let [q, k, v]: [Tensor<3>; 3] = x.chunk(3, 2).try_into().unwrap();
        let heads = |t_: Tensor<3>| t_.reshape([b, t, h, d]).swap_dims(1, 2);
        (heads(q), heads(k), heads(v))
    };
    let bias = mask_bias(t, t, usize::MAX);
    compare(
        "attention on strided heads",
        &[x.clone()],
        |x| {
            let (q, k, v) = split(x[0].clone());
            ember_kernels::attention(q, k, v, bias.clone(), 0.3)
                .swap_dims(1, 2)
                .reshape([b, t, h * d])
        },
        |x| {
            let (q, k, v) = split(x[0].clone());
            reference_attention(q, k, v, bias.clone(), 0.3)
                .swap_dims(1, 2)
                .reshape([b, t, h * d])
        },
        2e-5,
    );
    // Inference (no autodiff): the path that keeps no probabilities, for every query and for
    // one or three new queries against the cached keys, as sampling with the KV cache runs
    // (fewer rows than a register tile: the gemm path).
    let (q, k, v) = split(x.inner());
    assert!(!q.device().is_autodiff() && ember_kernels::fused(&q));
    let plain = |t: Tensor<4>| t.into_data().try_to_vec::<f32>().unwrap();
    for new in [t, 1, 3] {
        let q = q.clone().narrow(2, t - new, new);
        let bias = mask_bias(new, t, usize::MAX).inner();
        let fused = plain(ember_kernels::attention(
            q.clone(),
            k.clone(),
            v.clone(),
            bias.clone(),
            0.3,
        ));
        let reference = plain(reference_attention(q, k.clone(), v.clone(), bias, 0.3));
        assert_close(
            &format!("attention without autodiff, {new} queries"),
            &fused,
            &reference,
            2e-5,
        );
    }
}

#[test]
fn linear_matches_matmul_plus_bias_with_every_gradient() {
    // One row (a cached generation step) takes the matrix-vector kernel, in one part or in
    // several; the last case reads a narrowed weight, its rows longer than its width.
    let cases = [
        (37, 19, 23, 0),
        (768, 128, 384, 0),
        (3, 1, 5, 0),
        (1, 7, 5, 0),
        (1, 384, 1152, 0),
        (1, 300, 500, 3),
    ];
    for (case, &(rows, k, n, extra)) in cases.iter().enumerate() {
        let seed = 50 + 3 * case as u64;
        let w = random([k, n + extra], seed + 1).narrow(1, 0, n);
        let (x, b) = (random([rows, k], seed), random([n], seed + 2));
        let grads_of = |fused: bool| {
            let (x, w, b) = (
                x.clone().require_grad(),
                w.clone().require_grad(),
                b.clone().require_grad(),
            );
            let out = if fused {
                ember_kernels::linear(x.clone(), w.clone(), b.clone())
            } else {
                x.clone().matmul(w.clone()) + b.clone().unsqueeze()
            };
            let g = (out.clone() * random(out.dims(), 99)).sum().backward();
            let grad = |t: &Tensor<2>| values(&t.grad(&g).unwrap());
            (values(&out), grad(&x), grad(&w), values(&b.grad(&g).unwrap()))
        };
        let (f, r) = (grads_of(true), grads_of(false));
        assert_close(&format!("linear {case} values"), &f.0, &r.0, 1e-5);
        assert_close(&format!("linear {case} ∂x"), &f.1, &r.1, 1e-5);
        assert_close(&format!("linear {case} ∂w"), &f.2, &r.2, 1e-5);
        assert_close(&format!("linear {case} ∂b"), &f.3, &r.3, 1e-5);
    }
}

/// RoPE tables `[seq, d]` (rotate-half: both halves share the frequencies).
fn rope_tables(seq: usize, d: usize) -> (Tensor<2>, Tensor<2>) {
    let half = d / 2;
    let angle = |n: usize| (n / d) as f64 * 10000f64.powf(-2.0 * (n % d % half) as f64 / d as f64);
    let table = |f: fn(f64) -> f64| {
        let v: Vec<f32> = (0..seq * d).map(|n| f(angle(n)) as f32).collect();
        Tensor::from_data(burn::tensor::TensorData::new(v, [seq, d]), &device())
    };
    (table(f64::cos), table(f64::sin))
}

/// The composition `self_attention` replaces: split heads, rotate q and k, attend, merge.
fn reference_self_attention(
    qkv: Tensor<3>,
    cos: Tensor<2>,
    sin: Tensor<2>,
    bias: Tensor<2>,
    heads: usize,
) -> Tensor<3> {
    let [b, t, width] = qkv.dims();
    let d = width / 3 / heads;
    let [q, k, v]: [Tensor<3>; 3] = qkv.chunk(3, 2).try_into().unwrap();
    let split = |x: Tensor<3>| x.reshape([b, t, heads, d]).swap_dims(1, 2);
    let rope = |x: Tensor<4>| {
        let rotated = Tensor::cat(
            vec![x.clone().narrow(3, d / 2, d / 2).neg(), x.clone().narrow(3, 0, d / 2)],
            3,
        );
        x * cos.clone().unsqueeze::<4>() + rotated * sin.clone().unsqueeze::<4>()
    };
    let y = reference_attention(rope(split(q)), rope(split(k)), split(v), bias, 1.0 / (d as f64).sqrt());
    y.swap_dims(1, 2).reshape([b, t, heads * d])
}

#[test]
fn self_attention_matches_split_rope_attend_merge() {
    // (batch, seq, heads, d_head): one query block; several with a ragged last one; a head as
    // wide as a register tile, whose values are read in place, rows 3·d_model apart.
    for (case, &(b, t, heads, d)) in [(2, 9, 2, 4), (2, 150, 3, 8), (1, 20, 2, 16)].iter().enumerate() {
        let qkv = random([b, t, 3 * heads * d], 60 + case as u64);
        let (cos, sin) = rope_tables(t, d);
        let bias = mask_bias(t, t, usize::MAX);
        let scale = 1.0 / (d as f64).sqrt();
        compare(
            &format!("self-attention case {case}"),
            &[qkv.clone()],
            |x| ember_kernels::self_attention(x[0].clone(), cos.clone(), sin.clone(), bias.clone(), heads, scale),
            |x| reference_self_attention(x[0].clone(), cos.clone(), sin.clone(), bias.clone(), heads),
            2e-5,
        );
        // Without autodiff (evaluation): the path that keeps no probabilities.
        let plain = |t: Tensor<3>| t.into_data().try_to_vec::<f32>().unwrap();
        let (x, c, s, m) = (
            qkv.inner(),
            cos.clone().inner(),
            sin.clone().inner(),
            bias.clone().inner(),
        );
        let fused = plain(ember_kernels::self_attention(
            x.clone(),
            c.clone(),
            s.clone(),
            m.clone(),
            heads,
            scale,
        ));
        assert_close(
            "self-attention without autodiff",
            &fused,
            &plain(reference_self_attention(x, c, s, m, heads)),
            2e-5,
        );
    }
}

#[test]
fn cached_self_attention_gives_the_last_rows_of_self_attention_over_the_whole_sequence() {
    // Steps of 3, 1, 1 and 70 positions (past the buffers' 64 at the last step, so they are
    // replaced by longer ones as the cache would) against the reference over all 75 at once:
    // with the causal mask, step rows past..past + s of the whole attention are the step's.
    let (b, heads, d, steps) = (2, 3, 8, [3, 1, 1, 70]);
    let t: usize = steps.iter().sum();
    let qkv = random([b, t, 3 * heads * d], 80).inner();
    let (cos, sin) = rope_tables(t, d);
    let (cos, sin) = (cos.inner(), sin.inner());
    let mask = |q: usize, k: usize| mask_bias(q, k, usize::MAX).inner();
    let whole = reference_self_attention(qkv.clone(), cos.clone(), sin.clone(), mask(t, t), heads);
    let plain = |x: Tensor<3>| x.into_data().try_to_vec::<f32>().unwrap();
    let buffers = |capacity: usize| Tensor::<4>::zeros([b, heads, capacity, d], &Device::flex());
    let (mut keys, mut values) = (buffers(64), buffers(64));
    let mut past = 0;
    for s in steps {
        if past + s > keys.dims()[2] {
            let grow = |old: Tensor<4>| {
                buffers(2 * (past + s)).slice_assign([0..b, 0..heads, 0..past, 0..d], old.narrow(2, 0, past))
            };
            (keys, values) = (grow(keys), grow(values));
        }
        let kept = keys.clone(); // a second holder: the kernel must write into a copy
        let before = plain(kept.clone().reshape([b, heads * kept.dims()[2], d]));
        let (y, k, v) = ember_kernels::cached_self_attention(
            qkv.clone().narrow(1, past, s),
            cos.clone().narrow(0, past, s),
            sin.clone().narrow(0, past, s),
            (keys, values),
            mask(s, past + s),
            past,
            heads,
            1.0 / (d as f64).sqrt(),
        );
        assert_eq!(
            plain(kept.clone().reshape([b, heads * kept.dims()[2], d])),
            before,
            "step at {past}: a held buffer changed"
        );
        assert_close(
            &format!("cached self-attention, {s} positions after {past}"),
            &plain(y),
            &plain(whole.clone().narrow(1, past, s)),
            2e-5,
        );
        (keys, values, past) = (k, v, past + s);
    }
}

/// Every kernel's outputs and gradients on fixed inputs, as bits: what
/// `every_instruction_set_gives_the_same_results` compares across processes.
fn kernel_bits() -> Vec<u32> {
    let mut out = Vec::new();
    let mut add = |v: Vec<f32>| out.extend(v.into_iter().map(f32::to_bits));
    let mut add_run = |(v, grads): (Vec<f32>, Vec<Vec<f32>>)| {
        add(v);
        grads.into_iter().for_each(&mut add);
    };
    let x = random([5, 37], 1);
    add_run(run(&[x.clone()], |x| ember_kernels::gelu(x[0].clone())));
    let (w, b) = (random([37], 2), random([37], 3));
    add_run(run(&[x.clone()], |x| {
        ember_kernels::layer_norm(x[0].clone(), w.clone(), b.clone(), 1e-5)
    }));
    let weight = random([37, 19], 4);
    add_run(run(&[x.clone()], |x| {
        ember_kernels::linear(x[0].clone(), weight.clone(), random([19], 5))
    }));
    let (row, weight) = (random([1, 384], 12), random([384, 1152], 13)); // the matrix-vector kernel
    add_run(run(&[row], |x| {
        ember_kernels::linear(x[0].clone(), weight.clone(), random([1152], 14))
    }));
    let (t, heads, d) = (70, 2, 16);
    let qkv = random([2, t, 3 * heads * d], 6);
    let (cos, sin) = rope_tables(t, d);
    let mask = mask_bias(t, t, usize::MAX);
    add_run(run(&[qkv.clone()], |x| {
        ember_kernels::self_attention(x[0].clone(), cos.clone(), sin.clone(), mask.clone(), heads, 0.25)
    }));
    // The last position after the first 69, through the cache (buffers filled with
    // stand-ins for the first 69 positions' keys and values).
    let stand_in = |seed| random([2, heads, t, d], seed).inner();
    let (y, keys, _) = ember_kernels::cached_self_attention(
        qkv.inner().narrow(1, t - 1, 1),
        cos.inner().narrow(0, t - 1, 1),
        sin.inner().narrow(0, t - 1, 1),
        (stand_in(15), stand_in(16)),
        mask_bias(1, t, usize::MAX).inner(),
        t - 1,
        heads,
        0.25,
    );
    let plain = |t: Tensor<4>| t.into_data().try_to_vec::<f32>().unwrap();
    add_run((plain(y.unsqueeze()), vec![plain(keys)]));
    let scores = random([2, 9, 9], 7);
    add_run(run(&[scores], |s| {
        ember_kernels::softmax(s[0].clone(), mask_bias(9, 9, 4), 0.5)
    }));
    let (theta, grad, m, v) = (
        random([1000], 8),
        random([1000], 9),
        random([1000], 10),
        random([1000], 11),
    );
    let v = v.clone() * v; // second moments are not negative
    let (t2, m2, v2) = ember_kernels::adamw(
        theta.inner(),
        grad.clone().inner(),
        m.inner(),
        v.inner(),
        [1e-3, 0.9, 0.95, 1e-8, 0.9999, 0.1, 0.3, 0.7],
    );
    for t in [t2, m2, v2] {
        add(values(&t));
    }
    let (sum, squares) = ember_kernels::add_sum_squares(grad.clone().inner(), random([1000], 12).inner());
    add(values(&sum));
    add(values(&squares));
    add(values(&ember_kernels::sum_squares(grad.inner())));
    out
}

/// The kernels' builds for each instruction set (see `EMBER_SIMD`): this process runs the
/// widest the CPU has, then runs this test again with each narrower one and compares. AVX-512
/// and AVX2 both have fused multiply-adds and compute the same operations in the same order:
/// the same bits. The baseline build multiplies and adds separately: the same values up to
/// rounding.
#[test]
fn every_instruction_set_gives_the_same_results() {
    const CHILD: &str = "EMBER_SIMD_TEST_CHILD";
    let bits = kernel_bits();
    if std::env::var_os(CHILD).is_some() {
        let hex: Vec<String> = bits.iter().map(|b| format!("{b:08x}")).collect();
        println!("kernel bits: {}", hex.join(" "));
        return;
    }
    for simd in ["avx2", "baseline"] {
        let child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "every_instruction_set_gives_the_same_results",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, "1")
            .env("EMBER_SIMD", simd)
            .output()
            .expect("the test binary runs again");
        let stdout = String::from_utf8_lossy(&child.stdout);
        assert!(child.status.success(), "EMBER_SIMD={simd} failed: {stdout}");
        let line = stdout
            .lines()
            .find_map(|l| l.split_once("kernel bits: "))
            .unwrap_or_else(|| panic!("EMBER_SIMD={simd} printed no results: {stdout}"))
            .1;
        let theirs: Vec<u32> = line.split(' ').map(|h| u32::from_str_radix(h, 16).unwrap()).collect();
        if simd == "avx2" {
            let differing = bits.iter().zip(&theirs).filter(|(a, b)| a != b).count();
            assert!(
                theirs.len() == bits.len() && differing == 0,
                "AVX2 differs from this CPU's widest set in {differing} of {} values",
                bits.len()
            );
        } else {
            let floats = |v: &[u32]| v.iter().map(|&b| f32::from_bits(b)).collect::<Vec<f32>>();
            assert_close(
                "baseline vs this CPU's widest set",
                &floats(&theirs),
                &floats(&bits),
                1e-4,
            );
        }
    }
}

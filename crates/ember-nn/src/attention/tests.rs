use super::*;
use crate::position::Position;
use crate::test_util::{assert_close, device, values};
use burn::module::Param;
use burn::tensor::{Distribution, TensorData};

const D_MODEL: usize = 8;
const MAX_SEQ: usize = 80;

/// A variant of the layer: what it attends with, its key/value heads, its positions.
#[derive(Clone, Copy, Debug)]
struct Variant {
    kind: AttentionKind,
    n_kv_heads: usize,
    position: Position,
    rot_dims: usize,
}

const CAUSAL: AttentionKind = AttentionKind::Softmax(AttentionMask::Causal);

fn window(window: usize) -> AttentionKind {
    AttentionKind::Softmax(AttentionMask::SlidingWindow { window })
}

impl Variant {
    fn of(kind: AttentionKind) -> Self {
        Self {
            kind,
            n_kv_heads: 2,
            position: Position::Rope,
            rot_dims: 0,
        }
    }

    fn every() -> Vec<Self> {
        let base = Self::of(CAUSAL);
        vec![
            base,
            Self::of(window(3)),
            Self::of(AttentionKind::Linear),
            Self { n_kv_heads: 1, ..base },
            Self {
                n_kv_heads: 1,
                ..Self::of(window(3))
            },
            Self {
                position: Position::Alibi,
                ..base
            },
            Self {
                position: Position::Alibi,
                ..Self::of(window(3))
            },
            Self {
                position: Position::None,
                ..base
            },
            Self { rot_dims: 2, ..base },
        ]
    }

    fn tables(&self, device: &Device) -> AttentionTables {
        let w = match self.kind {
            AttentionKind::Softmax(AttentionMask::SlidingWindow { window }) => Some(window),
            _ => None,
        };
        AttentionTablesConfig::new(MAX_SEQ, 2, D_MODEL / 2)
            .with_position(self.position)
            .with_rot_dims(self.rot_dims)
            .with_window(w)
            .init(device)
    }

    fn layer(&self, device: &Device) -> CausalSelfAttention {
        CausalSelfAttentionConfig::new(D_MODEL, 2)
            .with_n_kv_heads(self.n_kv_heads)
            .with_kind(self.kind)
            .with_init_std(0.3)
            .with_proj_init_std(0.3)
            .init(&mut init::seeded(1), device)
    }
}

fn input(seed: u64, seq: usize) -> Vec<f32> {
    init::normal_vec(&mut init::seeded(seed), 2 * seq * D_MODEL, 1.0)
}

fn tensor(x: &[f32], seq: usize, device: &Device) -> Tensor<3> {
    Tensor::from_data(TensorData::new(x.to_vec(), [2, seq, D_MODEL]), device)
}

fn run(variant: Variant, x: &[f32], seq: usize, device: &Device) -> Vec<f32> {
    let (layer, tables) = (variant.layer(device), variant.tables(device));
    values(&layer.forward(tensor(x, seq, device), &tables, None))
}

/// The CPU device with the fused kernels, and a CPU backend the kernels do not serve, where
/// the composition runs.
fn both_devices() -> [Device; 2] {
    [device(), composition_device()]
}

/// ndarray is deprecated in Burn; it stays here as a CPU backend the kernels do not serve.
#[allow(deprecated)]
fn composition_device() -> Device {
    Device::ndarray()
}

#[test]
fn later_tokens_do_not_change_earlier_outputs() {
    for variant in Variant::every() {
        let x = input(2, 6);
        let mut changed = x.clone();
        for v in &mut changed[4 * D_MODEL..5 * D_MODEL] {
            *v += 1.0; // position 4 of the first sequence
        }
        let (a, b) = (run(variant, &x, 6, &device()), run(variant, &changed, 6, &device()));
        assert_close(&b[..4 * D_MODEL], &a[..4 * D_MODEL], 0.0);
        assert!(
            a[4 * D_MODEL..5 * D_MODEL] != b[4 * D_MODEL..5 * D_MODEL],
            "{variant:?}"
        );
    }
}

#[test]
fn sliding_window_forgets_positions_outside_it() {
    // 20 positions: long enough for the banded computation of the composition.
    for device in both_devices() {
        let variant = Variant::of(window(3));
        let x = input(3, 20);
        let mut changed = x.clone();
        changed[0] += 1.0; // position 0
        let (a, b) = (run(variant, &x, 20, &device), run(variant, &changed, 20, &device));
        // positions 1 and 2 still see position 0; position 3 no longer does.
        assert!(a[2 * D_MODEL..3 * D_MODEL] != b[2 * D_MODEL..3 * D_MODEL]);
        assert_close(&b[3 * D_MODEL..20 * D_MODEL], &a[3 * D_MODEL..20 * D_MODEL], 0.0);
    }
}

#[test]
fn the_fused_kernel_and_the_composition_agree() {
    for variant in Variant::every() {
        let x = input(4, 20);
        let fused = run(variant, &x, 20, &device());
        let composition = run(variant, &x, 20, &composition_device());
        assert_close(&fused, &composition, 1e-5);
    }
}

#[test]
fn a_cache_gives_the_same_outputs_as_the_full_sequence() {
    // 75 positions, far past a window of 3: the bounded cache drops old keys on the way.
    let seq = 75;
    for variant in Variant::every() {
        let x = input(5, seq);
        let full = run(variant, &x, seq, &device());
        // On flex the fused kernel runs the cached steps where it serves; under autodiff (and
        // on ndarray) the composition does.
        for device in [device(), device().autodiff(), composition_device()] {
            let (layer, tables) = (variant.layer(&device), variant.tables(&device));
            let x = tensor(&x, seq, &device);
            let mut cache = layer.new_cache();
            let mut stepwise = vec![Vec::new(); 2];
            // a prompt of 10 positions, then one position at a time, then 4 at once
            let steps = [(0, 10)].into_iter().chain((10..71).map(|s| (s, 1))).chain([(71, 4)]);
            for (start, len) in steps {
                let out = layer.forward(x.clone().narrow(1, start, len), &tables, Some(&mut cache));
                for (b, rows) in stepwise.iter_mut().enumerate() {
                    rows.extend(values(&out.clone().narrow(0, b, 1)));
                }
            }
            assert_eq!(cache.len(), seq);
            assert_close(&stepwise.concat(), &full, 1e-5);
            if let AttentionKind::Softmax(AttentionMask::SlidingWindow { .. }) = variant.kind {
                assert!(cache.kv.capacity() <= 64 && cache.kv.first() > 0, "{variant:?}");
            }
        }
    }
}

#[test]
fn one_key_value_head_serves_every_query_head() {
    // Multi-query attention equals multi-head attention whose heads' keys and values are
    // copies of the one key/value head.
    let device = device();
    let variant = Variant {
        n_kv_heads: 1,
        ..Variant::of(CAUSAL)
    };
    let (mut mqa, tables) = (variant.layer(&device), variant.tables(&device));
    mqa.qkv.bias = Param::from_tensor(Tensor::random([16], Distribution::Normal(0.0, 1.0), &device));
    // Columns q₀ q₁ | k | v (4 each) → q₀ q₁ | k k | v v.
    fn widen<const D: usize>(t: Tensor<D>) -> Tensor<D> {
        let col = |i: usize| t.clone().narrow(D - 1, 4 * i, 4);
        Tensor::cat(vec![col(0), col(1), col(2), col(2), col(3), col(3)], D - 1)
    }
    let mut mha = Variant::of(CAUSAL).layer(&device);
    mha.qkv.weight = Param::from_tensor(widen(mqa.qkv.weight.val()));
    mha.qkv.bias = Param::from_tensor(widen(mqa.qkv.bias.val()));
    mha.proj = mqa.proj.clone();
    let x = tensor(&input(6, 7), 7, &device);
    let (a, b) = (mqa.forward(x.clone(), &tables, None), mha.forward(x, &tables, None));
    assert_close(&values(&a), &values(&b), 1e-6);
}

#[test]
fn weights_are_causal_rows_that_sum_to_one_and_give_the_output() {
    let seq = 12;
    for variant in Variant::every() {
        for device in both_devices() {
            let (layer, tables) = (variant.layer(&device), variant.tables(&device));
            let x = tensor(&input(7, seq), seq, &device);
            let (y, weights) = layer.forward_with_weights(x.clone(), &tables);
            assert_eq!(weights.dims(), [2, 2, seq, seq]);
            assert_close(&values(&y), &values(&layer.forward(x, &tables, None)), 1e-5);
            let w = values(&weights);
            for (r, row) in w.chunks(seq).enumerate() {
                let t = r % seq;
                assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5, "{variant:?} row {r}");
                assert!(
                    row[t + 1..].iter().all(|&p| p == 0.0),
                    "{variant:?}: row {t} sees the future"
                );
                if let AttentionKind::Softmax(AttentionMask::SlidingWindow { window }) = variant.kind {
                    let oldest = (t + 1).saturating_sub(window);
                    assert!(row[..oldest].iter().all(|&p| p == 0.0), "row {t} sees past the window");
                }
            }
        }
    }
}

#[test]
fn weights_from_the_fused_kernel_equal_the_composition() {
    // 80 positions: the second block of query rows starts at a later key.
    let variant = Variant::of(window(4));
    let x = input(8, 80);
    let get = |device: &Device| {
        let (layer, tables) = (variant.layer(device), variant.tables(device));
        values(&layer.forward_with_weights(tensor(&x, 80, device), &tables).1)
    };
    assert_close(&get(&device()), &get(&composition_device()), 1e-6);
}

#[test]
fn gradient_matches_finite_differences() {
    for variant in Variant::every() {
        let device = device().autodiff();
        let layer = CausalSelfAttentionConfig::new(4, 2)
            .with_n_kv_heads(variant.n_kv_heads)
            .with_kind(match variant.kind {
                AttentionKind::Softmax(AttentionMask::SlidingWindow { .. }) => window(2),
                kind => kind,
            })
            .with_init_std(0.5)
            .with_proj_init_std(0.5)
            .init(&mut init::seeded(5), &device);
        let tables = AttentionTablesConfig::new(8, 2, 2)
            .with_position(variant.position)
            .with_window(Some(2))
            .init(&device);
        let seq = 5;
        let x0 = Tensor::<3>::random([1, seq, 4], Distribution::Normal(0.0, 1.0), &device);
        let x_vals = values(&x0);
        // loss = Σ out ⊙ w for a fixed random w, so every output matters.
        let w = Tensor::<3>::random([1, seq, 4], Distribution::Normal(0.0, 1.0), &device);
        let loss = |x: Tensor<3>| (layer.forward(x, &tables, None) * w.clone()).sum();
        let x = x0.require_grad();
        let grads = loss(x.clone()).backward();
        let analytic = values(&x.grad(&grads).expect("gradient"));
        let eps = 1e-2;
        for i in 0..x_vals.len() {
            let shifted = |delta: f32| {
                let mut v = x_vals.clone();
                v[i] += delta;
                let x = Tensor::<3>::from_data(TensorData::new(v, [1, seq, 4]), &device);
                loss(x).into_scalar::<f32>()
            };
            let numeric = (shifted(eps) - shifted(-eps)) / (2.0 * eps);
            assert!(
                (numeric - analytic[i]).abs() < 3e-3,
                "{variant:?} x[{i}]: finite difference {numeric}, autodiff {}",
                analytic[i]
            );
        }
    }
}

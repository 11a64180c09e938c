//! The same model and training code on Burn's wgpu backend, compared with the CPU backend.
//!
//! CI has no GPU: Vulkan runs on the CPU through Mesa's lavapipe driver (`.ci/run` installs
//! `mesa-vulkan-drivers`). Without a Vulkan adapter these tests fail, loudly: they never skip.
//!
//! Tolerances: wgpu computes in f32 with different summation orders (tiled matmuls, tree
//! reductions), so results agree with the CPU to about 1e-5 relative; the tests allow 1e-4
//! absolute on logits and losses of O(1) and 1e-4 on weights after an update.
#![cfg(feature = "wgpu")]

mod common;

use std::sync::atomic::AtomicBool;

use burn::module::Module;
use burn::tensor::{Device, DeviceKind, Int, Tensor, TensorData};
use ember_data::Batch;
use ember_model::{GenerateOptions, Generator, GptConfig, Precision, Sampler};
use ember_train::observer::{Observer, StepReport};
use ember_train::optim::AdamW;
use ember_train::optim::loss_scale::LossScale;
use ember_train::params::{load_params, read_params};
use ember_train::step::{StepSettings, optimizer_step};
use ember_train::{RunConfig, Trainer};

use common::*;

fn gpu() -> Device {
    let device = Device::wgpu(DeviceKind::DefaultDevice);
    // Touch the device: this panics with wgpu's message if no adapter exists.
    let probe = Tensor::<1>::from_data([1.0f32, 2.0], &device)
        .sum()
        .into_scalar::<f32>();
    assert_eq!(probe, 3.0, "the wgpu device computes");
    device
}

fn tiny() -> GptConfig {
    GptConfig {
        vocab_size: 17,
        block_size: 16,
        d_model: 32,
        ..GptConfig::nano()
    }
}

fn tokens(device: &Device) -> Tensor<2, Int> {
    let ids: Vec<i64> = (0..2 * 16).map(|i| (i * 5 + 3) % 17).collect();
    Tensor::from_data(TensorData::new(ids, [2, 16]), device)
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn forward_pass_matches_the_cpu() {
    let (cpu, gpu) = (Device::flex(), gpu());
    let a = tiny().init(7, &cpu).unwrap().forward(tokens(&cpu));
    let b = tiny().init(7, &gpu).unwrap().forward(tokens(&gpu));
    let (a, b) = (
        a.into_data().try_to_vec::<f32>().unwrap(),
        b.into_data().try_to_vec::<f32>().unwrap(),
    );
    let d = max_diff(&a, &b);
    assert!(d < 1e-4, "logits differ by {d}");
}

fn batch() -> Batch {
    let ids: Vec<u32> = (0..4 * 17).map(|i| ((i * 7 + i / 5) % 17) as u32).collect();
    Batch::from_windows(&ids, 16)
}

fn one_step(device: &Device, precision: Precision) -> (f64, f64, Vec<f32>) {
    let ad = device.clone().autodiff();
    let model = tiny().init(7, &ad).unwrap();
    let mut opt = AdamW::new(RunConfig::default().train.adamw());
    let settings = StepSettings {
        lr: 1e-2,
        grad_clip: 1.0,
        precision,
        dropout_seeds: &[],
        shards: None,
        step: 1,
    };
    let mut scale: Option<LossScale> = (precision == Precision::F16).then(Default::default);
    let mut model = model;
    // With f16, the first steps may overflow at the initial loss scale and be skipped.
    for _ in 0..20 {
        let s = optimizer_step(&mut model, &mut opt, &[batch()], settings, scale.as_mut(), &ad).unwrap();
        if s.applied {
            return (
                s.loss,
                s.grad_norm,
                read_params(&model)["blocks.0.attn.qkv.weight"].values.clone(),
            );
        }
    }
    panic!("no {precision:?} step was applied in 20 tries (loss scale {:?})", scale);
}

#[test]
fn a_training_step_matches_the_cpu() {
    let (cpu_loss, cpu_norm, cpu_w) = one_step(&Device::flex(), Precision::F32);
    let (gpu_loss, gpu_norm, gpu_w) = one_step(&gpu(), Precision::F32);
    assert!((cpu_loss - gpu_loss).abs() < 1e-4, "loss {cpu_loss} vs {gpu_loss}");
    assert!(
        (cpu_norm - gpu_norm).abs() < 1e-4 * cpu_norm.max(1.0),
        "gradient norm {cpu_norm} vs {gpu_norm}"
    );
    let d = max_diff(&cpu_w, &gpu_w);
    assert!(d < 1e-4, "updated weights differ by {d}");
}

#[test]
fn f16_compute_stays_close_to_f32() {
    let (loss32, _, w32) = one_step(&gpu(), Precision::F32);
    let (loss16, norm16, w16) = one_step(&gpu(), Precision::F16);
    assert!((loss32 - loss16).abs() < 1e-2, "f32 loss {loss32}, f16 loss {loss16}");
    assert!(norm16.is_finite());
    // Both take a full Adam step of about lr in the direction of the gradient's sign.
    let d = max_diff(&w32, &w16);
    assert!(d < 2e-2, "weights after one step differ by {d}");
}

#[test]
fn greedy_generation_matches_the_cpu() {
    // A model with learnt structure, trained on the CPU, then copied to the GPU.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    nano_config(dir, "");
    ok(
        dir,
        &[
            "train",
            "--config",
            "nano.toml",
            "--out",
            "r",
            "--set",
            "train.max_steps=40",
        ],
    );
    let cpu = Device::flex();
    let loaded = ember_train::inference::load_run(&dir.join("r"), ember_train::Selector::Latest, &cpu).unwrap();
    let on_gpu = load_params(
        loaded.config.model.init(0, &gpu()).unwrap(),
        &read_params(&loaded.model),
    );
    let prompt = loaded.tokenizer.encode("ROMEO:\n", "prompt").unwrap();
    let options = GenerateOptions {
        max_new_tokens: 24,
        use_cache: true,
    };
    let a = Generator::new(&loaded.model, cpu)
        .generate(&prompt, options, &mut Sampler::greedy(), |_| {})
        .unwrap();
    let b = Generator::new(&on_gpu, gpu())
        .generate(&prompt, options, &mut Sampler::greedy(), |_| {})
        .unwrap();
    assert_eq!(loaded.tokenizer.decode(&a), loaded.tokenizer.decode(&b));
}

struct Losses(Vec<f64>);
impl Observer for Losses {
    fn step(&mut self, r: &StepReport) {
        self.0.push(r.train_loss);
    }
}

#[test]
fn a_short_training_run_on_the_gpu_learns() {
    let tmp = tempfile::tempdir().unwrap();
    let config = RunConfig::parse(
        "",
        &[
            format!("data.path={}", corpus().display()),
            "train.max_steps=30".into(),
            "train.warmup_steps=3".into(),
            "train.lr=3e-3".into(),
            "train.eval_interval=30".into(),
            "train.eval_iters=2".into(),
            "train.checkpoint_interval=30".into(),
        ],
        "test",
    )
    .unwrap();
    let mut trainer = Trainer::start(config, &tmp.path().join("run"), gpu(), false).unwrap();
    let mut losses = Losses(Vec::new());
    trainer.run(&mut losses, &AtomicBool::new(false), None).unwrap();
    let first = losses.0[..3].iter().sum::<f64>() / 3.0;
    let last = losses.0[27..].iter().sum::<f64>() / 3.0;
    assert!(
        last < first - 0.5,
        "loss should fall on the GPU: {first:.3} → {last:.3}"
    );
    assert!(trainer.model().devices().iter().all(|d| d.is_autodiff()));
}

#[test]
fn the_command_line_trains_evaluates_and_samples_on_wgpu() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    nano_config(dir, "");
    ok(
        dir,
        &[
            "train",
            "--config",
            "nano.toml",
            "--out",
            "g",
            "--device",
            "wgpu",
            "--set",
            "train.max_steps=5",
            "--set",
            "train.warmup_steps=1",
        ],
    );
    let e: serde_json::Value =
        serde_json::from_str(stdout(&ok(dir, &["eval", "--run", "g", "--device", "wgpu", "--json"])).trim()).unwrap();
    let c: serde_json::Value =
        serde_json::from_str(stdout(&ok(dir, &["eval", "--run", "g", "--json"])).trim()).unwrap();
    let (lg, lc) = (e["loss"].as_f64().unwrap(), c["loss"].as_f64().unwrap());
    assert!((lg - lc).abs() < 1e-4, "eval on wgpu {lg} vs cpu {lc}");
    let s = stdout(&ok(
        dir,
        &[
            "sample",
            "--run",
            "g",
            "--device",
            "wgpu",
            "--max-new-tokens",
            "10",
            "--prompt",
            "A",
        ],
    ));
    assert!(s.starts_with('A'));
}

#[test]
fn bf16_is_refused_on_wgpu_before_anything_is_written() {
    gpu();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    nano_config(dir, "");
    let line = fails(
        dir,
        &[
            "train",
            "--config",
            "nano.toml",
            "--out",
            "b",
            "--device",
            "wgpu",
            "--set",
            "train.precision=bf16",
        ],
    );
    assert!(
        line.contains("train.precision = bf16: this device cannot compute in bf16"),
        "{line}"
    );
    assert!(!dir.join("b").exists());
}

/// Resuming on wgpu: GPU reductions need not add in a fixed order, so bit-identity is not
/// promised there (it is on the CPU); the resumed losses must agree within 1e-5.
#[test]
fn a_resumed_run_on_wgpu_follows_the_uninterrupted_one() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    nano_config(dir, "");
    let common = [
        "--device",
        "wgpu",
        "--set",
        "train.max_steps=10",
        "--set",
        "train.checkpoint_interval=5",
        "--set",
        "train.eval_interval=5",
    ];
    let mut straight = vec!["train", "--config", "nano.toml", "--out", "straight"];
    straight.extend(common);
    ok(dir, &straight);
    let mut part = vec![
        "train",
        "--config",
        "nano.toml",
        "--out",
        "resumed",
        "--until-step",
        "5",
    ];
    part.extend(common);
    ok(dir, &part);
    ok(dir, &["train", "--resume", "resumed", "--device", "wgpu"]);
    let (a, b) = (metrics(&dir.join("straight")), metrics(&dir.join("resumed")));
    assert_eq!((a.len(), b.len()), (10, 10));
    for (x, y) in a.iter().zip(&b) {
        let (p, q) = (x["train_loss"].as_f64().unwrap(), y["train_loss"].as_f64().unwrap());
        assert!(
            (p - q).abs() < 1e-5,
            "step {}: loss {p} straight, {q} resumed",
            x["step"]
        );
    }
}

/// One config of each attention variant and model option.
fn variants() -> Vec<(&'static str, GptConfig)> {
    use ember_model::config::Attention;
    use ember_nn::Position;
    let base = GptConfig { n_head: 4, ..tiny() };
    vec![
        (
            "sliding window",
            GptConfig {
                attention: Attention::SlidingWindow,
                window: Some(5),
                ..base.clone()
            },
        ),
        (
            "window pattern",
            GptConfig {
                attention: Attention::SlidingWindow,
                window: Some(3),
                window_pattern: Some("SL".into()),
                ..base.clone()
            },
        ),
        (
            "linear",
            GptConfig {
                attention: Attention::Linear,
                ..base.clone()
            },
        ),
        (
            "multi-query",
            GptConfig {
                n_kv_head: Some(1),
                ..base.clone()
            },
        ),
        (
            "ALiBi",
            GptConfig {
                position: Position::Alibi,
                n_kv_head: Some(2),
                ..base.clone()
            },
        ),
        (
            "no positions",
            GptConfig {
                position: Position::None,
                ..base.clone()
            },
        ),
        (
            "GPT-NeoX options",
            GptConfig {
                rotary_pct: 0.5,
                parallel_residual: true,
                tie_embeddings: false,
                ..base
            },
        ),
    ]
}

#[test]
fn every_attention_variant_runs_on_wgpu_as_on_the_cpu() {
    let (cpu, gpu) = (Device::flex(), gpu());
    for (name, config) in variants() {
        // The forward pass.
        let a = config
            .init(7, &cpu)
            .unwrap()
            .forward(tokens(&cpu))
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let b = config
            .init(7, &gpu)
            .unwrap()
            .forward(tokens(&gpu))
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let d = max_diff(&a, &b);
        assert!(d < 1e-4, "{name}: logits differ by {d}");
        // A training step's loss and gradient norm.
        let step = |device: &Device| {
            let ad = device.clone().autodiff();
            let mut opt = AdamW::new(RunConfig::default().train.adamw());
            let settings = StepSettings {
                lr: 1e-2,
                grad_clip: 1.0,
                precision: Precision::F32,
                dropout_seeds: &[],
                shards: None,
                step: 1,
            };
            let mut model = config.init(7, &ad).unwrap();
            let s = optimizer_step(&mut model, &mut opt, &[batch()], settings, None, &ad).unwrap();
            (s.loss, s.grad_norm)
        };
        let ((lc, nc), (lg, ng)) = (step(&cpu), step(&gpu));
        assert!(
            (lc - lg).abs() < 1e-4 && (nc - ng).abs() < 1e-4 * nc.max(1.0),
            "{name}: {lc}/{nc} vs {lg}/{ng}"
        );
        // Greedy generation with each variant's cache, past the context.
        let generate = |device: &Device| {
            let model = config.init(7, device).unwrap();
            let options = GenerateOptions {
                max_new_tokens: 24,
                use_cache: true,
            };
            Generator::new(&model, device.clone())
                .generate(&[1, 2, 3], options, &mut Sampler::greedy(), |_| {})
                .unwrap()
        };
        assert_eq!(generate(&cpu), generate(&gpu), "{name}: generated tokens");
    }
}

#[test]
fn burn_s_fused_attention_serves_generation_on_wgpu_with_the_composition_s_numbers() {
    let gpu = gpu();
    let (b, h, s, d) = (1, 2, 40, 16);
    let r = |seed: u64, device: &Device| {
        let v = ember_nn::init::normal_vec(&mut ember_nn::init::seeded(seed), b * h * s * d, 1.0);
        Tensor::<4>::from_data(TensorData::new(v, [b, h, s, d]), device)
    };
    for mask in [
        ember_nn::AttentionMask::Causal,
        ember_nn::AttentionMask::SlidingWindow { window: 7 },
    ] {
        let bias = mask.bias_table(s, &gpu);
        let (q, k, v) = (r(1, &gpu), r(2, &gpu), r(3, &gpu));
        let fused = ember_kernels::flash_attention(&q, &k, &v, &bias).expect("serves on wgpu outside autodiff");
        let no_dropout = burn::nn::DropoutConfig::new(0.0).init();
        let reference = ember_nn::attention::sdpa::composition(q, k, v, bias.clone().unsqueeze::<3>(), &no_dropout);
        let diff = max_diff(
            &fused.into_data().try_to_vec::<f32>().unwrap(),
            &reference.into_data().try_to_vec::<f32>().unwrap(),
        );
        assert!(diff < 1e-4, "{mask:?}: differs by {diff}");
        // Not under autodiff (Burn would fall back to the full score matrix), not on the CPU.
        let ad = gpu.clone().autodiff();
        assert!(
            ember_kernels::flash_attention(&r(1, &ad), &r(2, &ad), &r(3, &ad), &bias.clone().to_device(&ad)).is_none()
        );
        let cpu = Device::flex();
        assert!(
            ember_kernels::flash_attention(&r(1, &cpu), &r(2, &cpu), &r(3, &cpu), &mask.bias_table(s, &cpu)).is_none()
        );
    }
}

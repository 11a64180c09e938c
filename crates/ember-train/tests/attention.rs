//! `ember attention`'s weights against the PyTorch reference: the golden model, in four
//! variants (causal, a sliding window of 3, ALiBi, linear attention), on the two golden
//! sequences, on flex (the fused kernel where it serves) and on ndarray (the composition).
//! `data/attention.json` comes from `python/attention_fixture.py`, which computes the same
//! architecture in PyTorch (float64).

mod common;

use burn::tensor::Device;
use common::{assert_close, flatten, golden, golden_config, named};
use ember_model::GptConfig;
use ember_model::config::Attention;
use ember_nn::Position;
use ember_train::inspect;
use ember_train::params;
use serde_json::Value;

fn fixture() -> Value {
    serde_json::from_str(include_str!("data/attention.json")).expect("attention.json parses")
}

fn variant(name: &str, base: &GptConfig) -> GptConfig {
    match name {
        "causal" => base.clone(),
        "sliding_window_3" => GptConfig {
            attention: Attention::SlidingWindow,
            window: Some(3),
            ..base.clone()
        },
        "alibi" => GptConfig {
            position: Position::Alibi,
            ..base.clone()
        },
        "linear" => GptConfig {
            attention: Attention::Linear,
            ..base.clone()
        },
        other => panic!("unknown variant {other}"),
    }
}

/// A CPU backend the fused kernels do not serve, so that the composition of Burn operations
/// runs (deprecated in Burn, and kept for exactly this comparison).
#[allow(deprecated)]
fn composition_device() -> Device {
    Device::ndarray()
}

#[test]
fn attention_weights_match_pytorch_on_the_kernels_and_on_the_composition() {
    let g = golden();
    let weights = named(&g["weights"]);
    let fix = fixture();
    let inputs: Vec<Vec<u32>> = serde_json::from_value(fix["inputs"].clone()).unwrap();
    let variants = fix["variants"].as_object().unwrap();
    assert_eq!(variants.len(), 4);
    for (name, expected) in variants {
        let config = variant(name, &golden_config(&g));
        let mut by_device = Vec::new();
        for device in [Device::flex(), composition_device()] {
            let model = params::load_params(config.init(0, &device).unwrap(), &weights);
            for (s, ids) in inputs.iter().enumerate() {
                let shot = inspect::snapshot(&model, ids, &device);
                let what = format!("{name}, sequence {s}, on {device:?}");
                let (mut want, mut shape) = (Vec::new(), Vec::new());
                flatten(&expected["attention"][s], &mut want, &mut shape, 0);
                assert_eq!(shape, [2, 2, 6, 6]);
                let got: Vec<f32> = shot.weights.iter().flatten().flatten().copied().collect();
                assert_close(&format!("attention weights, {what}"), &got, &want, 1e-5);
                for (r, row) in got.chunks(6).enumerate() {
                    let t = r % 6;
                    assert!(
                        (row.iter().sum::<f32>() - 1.0).abs() < 1e-5,
                        "{what}: row {r} sums to {}",
                        row.iter().sum::<f32>()
                    );
                    assert!(
                        row[t + 1..].iter().all(|&w| w == 0.0),
                        "{what}: query {t} attends to the future"
                    );
                }
                // The next-token logits after the sequence, from the same forward pass.
                let (mut logits, mut lshape) = (Vec::new(), Vec::new());
                flatten(&expected["logits"][s][5], &mut logits, &mut lshape, 0);
                assert_close(&format!("last logits, {what}"), &shot.logits, &logits, 1e-5);
                by_device.push(got);
            }
        }
        // The fused kernel and the composition agree more closely still.
        let (fused, composition) = by_device.split_at(2);
        for (a, b) in fused.iter().zip(composition) {
            assert_close(&format!("{name}: kernel against composition"), a, b, 1e-6);
        }
    }
}

//! Parity with the PyTorch reference (`reference/torch_gpt.py --golden`): the same weights
//! and batch must give the same logits and loss (within 1e-5), the same gradients and global
//! gradient norm (within 1e-4), and the same weights after one clipped AdamW step (1e-5).
//!
//! `data/golden.json` is the reference's output for seed 1337 (vocab 11, 2 layers, 2 heads,
//! d_model 8, context 6, batch 2), copied unchanged.

mod common;

use burn::tensor::Device;
use common::{assert_close, flatten, golden, golden_config, ids, named};
use ember_model::cross_entropy;
use ember_train::optim::{AdamW, AdamWConfig, GradBuffer, clip_factor};
use ember_train::params;

#[test]
fn logits_loss_gradients_and_one_adamw_step_match_pytorch() {
    let g = golden();
    let c = &g["config"];
    let device = Device::flex().autodiff();
    let config = golden_config(&g);
    let weights = named(&g["weights"]);
    let model = config.init(0, &device).unwrap();
    assert!(
        params::mismatches(&model, &weights).is_empty(),
        "{:?}",
        params::mismatches(&model, &weights)
    );
    let model = params::load_params(model, &weights);

    // Forward: logits and loss.
    let logits = model.forward(ids(&g["inputs"], &device));
    let (mut expected, mut shape) = (Vec::new(), Vec::new());
    flatten(&g["logits"], &mut expected, &mut shape, 0);
    assert_eq!(logits.dims().to_vec(), shape);
    assert_close(
        "logits",
        &logits.to_data().try_to_vec::<f32>().unwrap(),
        &expected,
        1e-5,
    );
    let loss = cross_entropy(logits, ids(&g["targets"], &device));
    let loss_value = loss.clone().into_scalar::<f32>();
    assert_close("loss", &[loss_value], &[g["loss"].as_f64().unwrap() as f32], 1e-5);

    // Backward: every gradient and the global norm.
    let mut grads = GradBuffer::new();
    grads.accumulate(&model, &mut loss.backward());
    let expected_grads = named(&g["grads"]);
    assert_eq!(grads.names().count(), expected_grads.len());
    for (name, exp) in &expected_grads {
        // GradBuffer holds gradients flattened in the parameter's (Burn) layout.
        let got = grads.get(name).unwrap_or_else(|| panic!("no gradient for {name}"));
        assert_close(
            &format!("gradient of {name}"),
            &got.to_data().try_to_vec::<f32>().unwrap(),
            &exp.values,
            1e-4,
        );
    }
    let norm = grads.global_norm();
    assert_close(
        "global gradient norm",
        &[norm as f32],
        &[g["grad_norm_before_clip"].as_f64().unwrap() as f32],
        1e-4,
    );

    // One step: clip to 0.5 (this batch exceeds it), AdamW with the reference's settings.
    let opt = &c["optimizer"];
    let clip = opt["grad_clip"].as_f64().unwrap();
    assert!(norm > clip, "the golden batch must exercise clipping");
    let factor = clip_factor(norm, clip);
    let betas = opt["betas"].as_array().unwrap();
    let mut adamw = AdamW::new(AdamWConfig {
        beta1: betas[0].as_f64().unwrap(),
        beta2: betas[1].as_f64().unwrap(),
        eps: opt["eps"].as_f64().unwrap(),
        weight_decay: opt["weight_decay"].as_f64().unwrap(),
    });
    // The clipping factor goes into the update (the fused kernel multiplies each gradient).
    let model = adamw.step(model, &grads, opt["lr"].as_f64().unwrap(), factor);
    let after = params::read_params(&model);
    for (name, exp) in named(&g["weights_after_one_step"]) {
        assert_close(
            &format!("{name} after one step"),
            &after[&name].values,
            &exp.values,
            1e-5,
        );
    }
}

//! Golden run: a tiny seeded model trained on a fixed text. Its first training losses and its
//! greedy continuation afterwards are pinned, so any numerical change to initialisation,
//! forward, backward, optimiser, sampling of batches or decoding shows up here.

use std::sync::atomic::AtomicBool;

use burn::module::Module;
use burn::tensor::Device;
use ember_model::{GenerateOptions, Generator, Sampler};
use ember_train::observer::{Observer, StepReport};
use ember_train::{RunConfig, Trainer};

struct Losses(Vec<f64>);
impl Observer for Losses {
    fn step(&mut self, r: &StepReport) {
        self.0.push(r.train_loss);
    }
}

/// A fixed text with structure to learn: counting rhymes.
fn text() -> String {
    let numbers = [
        "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    ];
    let mut s = String::new();
    for round in 0..40 {
        for (i, n) in numbers.iter().enumerate() {
            s.push_str(&format!(
                "{n}, {}; ",
                if (i + round) % 2 == 0 {
                    "buckle my shoe"
                } else {
                    "shut the door"
                }
            ));
        }
        s.push('\n');
    }
    s
}

#[test]
fn the_first_losses_and_the_greedy_sample_are_pinned() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("rhymes.txt");
    std::fs::write(&corpus, text()).unwrap();
    let overrides = [
        format!("data.path={}", corpus.display()),
        "model.block_size=16".into(),
        "train.max_steps=150".into(),
        "train.warmup_steps=5".into(),
        "train.lr=1e-2".into(),
        "train.min_lr=1e-3".into(),
        "train.eval_interval=150".into(),
        "train.checkpoint_interval=150".into(),
    ];
    let config = RunConfig::parse("", &overrides, "golden").unwrap();
    let device = Device::flex();
    let mut trainer = Trainer::start(config, &dir.path().join("run"), device.clone(), false).unwrap();
    let mut losses = Losses(Vec::new());
    trainer.run(&mut losses, &AtomicBool::new(false), None).unwrap();

    let first: Vec<f64> = losses.0[..5].iter().map(|l| (l * 1e4).round() / 1e4).collect();
    assert_eq!(first, PINNED_LOSSES, "first five training losses");
    assert!(losses.0[149] < 0.5, "the rhyme is learnt: final loss {}", losses.0[149]);

    let model = trainer.model().valid();
    let tok = &trainer.data().tokenizer;
    let prompt = tok.encode("one, ", "prompt").unwrap();
    let out = Generator::new(&model, device)
        .generate(
            &prompt,
            GenerateOptions {
                max_new_tokens: 40,
                use_cache: true,
            },
            &mut Sampler::greedy(),
            |_| {},
        )
        .unwrap();
    assert_eq!(tok.decode(&out), PINNED_SAMPLE);
}

const PINNED_LOSSES: [f64; 5] = [3.2488, 3.0679, 2.9582, 2.8363, 2.7558];
const PINNED_SAMPLE: &str = "buckle my shoe; three, shut the door; th";

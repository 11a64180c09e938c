//! Hugging Face interop against `transformers` itself: two tiny GPT-NeoX models that
//! `python/hf_fixtures.py` built with `transformers` from a random init and saved with
//! `save_pretrained`, with the logits and greedy tokens `transformers` computed:
//! - `neox-tied`: ember's architecture (full rotary, sequential residual, tied embeddings), a
//!   character-level tokenizer;
//! - `pythia-like`: Pythia's (rotary_pct 0.25, parallel residual, untied `embed_out`), a
//!   byte-level BPE tokenizer with fewer tokens than embedding rows, weights in four shards.

use std::fs;
use std::path::{Path, PathBuf};

use burn::tensor::{Device, Int, Tensor, TensorData};
use ember_model::{GenerateOptions, Generator, Sampler};
use ember_train::hf::{self, Card};
use ember_train::{RunConfig, state::load_model};
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/hf").join(name)
}

fn expected(dir: &Path) -> Value {
    serde_json::from_str(&fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap()
}

/// A CPU backend the fused kernels do not serve (deprecated in Burn; kept for this comparison).
#[allow(deprecated)]
fn composition_device() -> Device {
    Device::ndarray()
}

#[test]
fn imported_models_give_transformers_logits_tokens_and_greedy_text() {
    for name in ["neox-tied", "pythia-like"] {
        let dir = fixture(name);
        let want = expected(&dir);
        let m = hf::read_dir(&dir).unwrap();
        let ids: Vec<u32> = serde_json::from_value(want["input_ids"].clone()).unwrap();
        // The tokenizer gives transformers' ids.
        assert_eq!(
            m.tokenizer.encode(want["text"].as_str().unwrap(), "text").unwrap(),
            ids,
            "{name}: token ids"
        );
        let config = RunConfig {
            model: m.config.clone(),
            ..RunConfig::default()
        };
        let logits: Vec<f32> = want["logits"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32))
            .collect();
        for device in [Device::flex(), composition_device()] {
            let model = load_model(&config, &m.weights, &dir, &device).unwrap();
            let t = Tensor::<2, Int>::from_data(
                TensorData::new(ids.iter().map(|&i| i as i64).collect::<Vec<_>>(), [1, ids.len()]),
                &device,
            );
            let got = model.forward(t).into_data().try_to_vec::<f32>().unwrap();
            let worst = got
                .iter()
                .zip(&logits)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(
                worst < 1e-5,
                "{name} on {device:?}: logits differ from transformers' by {worst:e}"
            );
            let greedy = Generator::new(&model, device.clone())
                .generate(
                    &ids[..4],
                    GenerateOptions {
                        max_new_tokens: 8,
                        use_cache: true,
                    },
                    &mut Sampler::greedy(),
                    |_| {},
                )
                .unwrap();
            let want_greedy: Vec<u32> = serde_json::from_value(want["greedy_from_first_4"].clone()).unwrap();
            assert_eq!(greedy, want_greedy[4..], "{name}: greedy generation");
        }
    }
    let pythia = hf::read_dir(&fixture("pythia-like")).unwrap().config;
    assert_eq!(
        (pythia.rotary_pct, pythia.parallel_residual, pythia.tie_embeddings),
        (0.25, true, false)
    );
}

#[test]
fn an_export_has_transformers_names_and_shapes_and_imports_back_bit_for_bit() {
    for name in ["neox-tied", "pythia-like"] {
        let m = hf::read_dir(&fixture(name)).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("export");
        let card = Card {
            run: "runs/x".into(),
            step: 7,
            val_loss: Some(1.5),
            data: "data/x.txt".into(),
        };
        hf::write_dir(&out, &m.config, &m.weights, &m.tokenizer, &card).unwrap();
        for f in [
            "config.json",
            "model.safetensors",
            "tokenizer.json",
            "tokenizer_config.json",
            "generation_config.json",
            "README.md",
        ] {
            assert!(out.join(f).is_file(), "{name}: {f}");
        }
        // The same tensor names and shapes as transformers' own save_pretrained wrote.
        let shapes = |paths: Vec<PathBuf>| {
            let mut out = std::collections::BTreeMap::new();
            for p in paths {
                let bytes = fs::read(p).unwrap();
                let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
                for (n, v) in st.tensors() {
                    out.insert(n, v.shape().to_vec());
                }
            }
            out
        };
        let theirs: Vec<PathBuf> = fs::read_dir(fixture(name))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
            .collect();
        assert_eq!(
            shapes(vec![out.join("model.safetensors")]),
            shapes(theirs),
            "{name}: tensor names and shapes"
        );
        let back = hf::read_dir(&out).unwrap();
        assert_eq!(back.config, m.config, "{name}: config");
        assert!(back.weights == m.weights, "{name}: weights round-trip bit for bit");
        assert_eq!(
            back.tokenizer.fingerprint(),
            m.tokenizer.fingerprint(),
            "{name}: tokenizer"
        );
        let card = fs::read_to_string(out.join("README.md")).unwrap();
        assert!(
            card.contains("runs/x, step 7") && card.contains("1.5000 nats/token"),
            "{card}"
        );
        // Writing over an existing directory is refused.
        let msg = hf::write_dir(&out, &m.config, &m.weights, &m.tokenizer, &card_of())
            .unwrap_err()
            .to_string();
        assert!(msg.contains("exists already"), "{msg}");
    }
}

fn card_of() -> Card {
    Card {
        run: "r".into(),
        step: 0,
        val_loss: None,
        data: "d".into(),
    }
}

#[test]
fn what_cannot_be_imported_is_one_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let copy = |name: &str| {
        let dir = tmp.path().join(name);
        fs::create_dir_all(&dir).unwrap();
        for e in fs::read_dir(fixture("neox-tied")).unwrap() {
            let e = e.unwrap();
            fs::copy(e.path(), dir.join(e.file_name())).unwrap();
        }
        dir
    };
    let edit = |dir: &Path, f: &dyn Fn(&mut Value)| {
        let mut v: Value = serde_json::from_str(&fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
        f(&mut v);
        fs::write(dir.join("config.json"), v.to_string()).unwrap();
    };
    let err = |dir: &Path| hf::read_dir(dir).err().expect("refused").to_string();

    let empty = tmp.path().join("empty");
    fs::create_dir_all(&empty).unwrap();
    assert!(err(&empty).contains("has no readable config.json"), "{}", err(&empty));
    let llama = copy("llama");
    edit(&llama, &|v| {
        v["architectures"] = serde_json::json!(["LlamaForCausalLM"]);
        v["model_type"] = "llama".into();
    });
    assert!(
        err(&llama).contains("the architecture is LlamaForCausalLM; ember imports GPTNeoXForCausalLM"),
        "{}",
        err(&llama)
    );
    let relu = copy("relu");
    edit(&relu, &|v| v["hidden_act"] = "relu".into());
    assert!(
        err(&relu).contains("hidden_act \"relu\" is not supported"),
        "{}",
        err(&relu)
    );
    let wider = copy("wider");
    edit(&wider, &|v| v["intermediate_size"] = 96.into());
    let msg = err(&wider);
    assert!(
        msg.contains("its tensors do not match config.json")
            && msg.contains("dense_h_to_4h.weight has shape [64, 16] where the config gives [96, 16]"),
        "{msg}"
    );
    let fewer_rows = copy("fewer-rows");
    edit(&fewer_rows, &|v| v["vocab_size"] = 10.into());
    let msg = err(&fewer_rows);
    assert!(msg.contains("embed_in.weight has shape"), "{msg}");
    // A tokenizer with more tokens than the embedding has rows.
    let other_tok = copy("other-tokenizer");
    fs::copy(
        fixture("pythia-like").join("tokenizer.json"),
        other_tok.join("tokenizer.json"),
    )
    .unwrap();
    let msg = err(&other_tok);
    assert!(msg.contains("the tokenizer does not belong to this model"), "{msg}");
    let no_weights = copy("no-weights");
    fs::remove_file(no_weights.join("model.safetensors")).unwrap();
    assert!(
        err(&no_weights).contains("has no model.safetensors"),
        "{}",
        err(&no_weights)
    );
}

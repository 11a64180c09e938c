//! `config.json`: a GPT-NeoX configuration as ember's `[model]`, and back.

use std::path::Path;

use ember_model::GptConfig;
use ember_model::config::Attention;
use ember_nn::{Gelu, Position};
use serde_json::{Value, json};

use crate::error::TrainError;

/// The architecture `config.json` must name.
pub const ARCHITECTURE: &str = "GPTNeoXForCausalLM";

/// An error about the Hugging Face file or directory `path`.
pub(super) fn bad(path: &Path, message: impl Into<String>) -> TrainError {
    TrainError::Hf {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Refuses a model GPT-NeoX cannot express, naming what cannot be mapped.
pub fn check_exportable(c: &GptConfig) -> Result<(), String> {
    let no = |what: String| {
        Err(format!(
            "{what} has no GPT-NeoX equivalent, so `transformers` could not load the model"
        ))
    };
    if c.attention != Attention::Causal {
        return no(format!(
            "model.attention = \"{}\"",
            ember_model::config::attention_name(c.attention)
        ));
    }
    if c.kv_heads() != c.n_head {
        return no(format!("model.n_kv_head = {} (grouped-query attention)", c.kv_heads()));
    }
    if c.position != Position::Rope {
        return no(format!(
            "model.position = \"{}\"",
            ember_model::config::position_name(c.position)
        ));
    }
    Ok(())
}

/// `config.json` of the GPT-NeoX model equal to `c`. RoPE's settings are written both as
/// `transformers` 5 reads them (`rope_parameters`) and as earlier versions do.
pub fn hf_config(c: &GptConfig) -> Value {
    json!({
        "architectures": [ARCHITECTURE],
        "model_type": "gpt_neox",
        "vocab_size": c.vocab_size,
        "hidden_size": c.d_model,
        "num_hidden_layers": c.n_layer,
        "num_attention_heads": c.n_head,
        "intermediate_size": c.ff_width(),
        "hidden_act": match c.gelu { Gelu::Erf => "gelu", Gelu::Tanh => "gelu_new" },
        "rotary_pct": c.rotary_pct,
        "rotary_emb_base": c.rope_theta,
        "rope_parameters": { "rope_type": "default", "rope_theta": c.rope_theta, "partial_rotary_factor": c.rotary_pct },
        "max_position_embeddings": c.block_size,
        "layer_norm_eps": c.ln_eps,
        "use_parallel_residual": c.parallel_residual,
        "tie_word_embeddings": c.tie_embeddings,
        "attention_bias": true,
        "attention_dropout": 0.0,
        "hidden_dropout": 0.0,
        "initializer_range": 0.02,
        "use_cache": true,
        "bos_token_id": null,
        "eos_token_id": null,
        "pad_token_id": null,
        "torch_dtype": "float32",
    })
}

/// The model of a GPT-NeoX `config.json`, or why ember cannot hold it (`path` names the file).
pub fn config_from_hf(v: &Value, path: &Path) -> Result<GptConfig, TrainError> {
    let architectures: Vec<&str> = v["architectures"]
        .as_array()
        .map_or(Vec::new(), |a| a.iter().filter_map(Value::as_str).collect());
    if !architectures.contains(&ARCHITECTURE) && v["model_type"] != "gpt_neox" {
        let named = if architectures.is_empty() {
            format!("model_type {}", v["model_type"])
        } else {
            architectures.join(", ")
        };
        return Err(bad(
            path,
            format!("the architecture is {named}; ember imports {ARCHITECTURE} (GPT-NeoX, Pythia) only"),
        ));
    }
    let int = |key: &str| -> Result<usize, TrainError> {
        v[key]
            .as_u64()
            .map(|x| x as usize)
            .ok_or_else(|| bad(path, format!("\"{key}\" is missing or not a whole number")))
    };
    let gelu = match v["hidden_act"].as_str().unwrap_or("gelu") {
        "gelu" => Gelu::Erf,
        "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Gelu::Tanh,
        other => {
            return Err(bad(
                path,
                format!(
                    "hidden_act \"{other}\" is not supported; ember's feed-forward is GELU (\"gelu\", or the tanh approximations \"gelu_new\", \"gelu_pytorch_tanh\", \"gelu_fast\")"
                ),
            ));
        }
    };
    if v["attention_bias"] == false {
        return Err(bad(
            path,
            "attention_bias is false; ember's attention projections have biases",
        ));
    }
    let rope = &v["rope_parameters"];
    let rope = if rope.is_object() { rope } else { &v["rope_scaling"] };
    if let Some(kind) = rope["rope_type"].as_str().or(rope["type"].as_str())
        && kind != "default"
    {
        return Err(bad(
            path,
            format!("RoPE type \"{kind}\" (scaled RoPE) is not supported; ember's RoPE is the default one"),
        ));
    }
    // transformers' defaults when the keys are absent: a quarter of each head, base 10000.
    let rotary_pct = rope["partial_rotary_factor"]
        .as_f64()
        .or(v["rotary_pct"].as_f64())
        .unwrap_or(0.25);
    let rope_theta = rope["rope_theta"]
        .as_f64()
        .or(v["rotary_emb_base"].as_f64())
        .unwrap_or(10000.0);
    let (d_model, n_head) = (int("hidden_size")?, int("num_attention_heads")?);
    let d_ff = int("intermediate_size")?;
    let config = GptConfig {
        n_layer: int("num_hidden_layers")?,
        n_head,
        d_model,
        block_size: int("max_position_embeddings")?,
        dropout: 0.0,
        vocab_size: int("vocab_size")?,
        rope_theta,
        ln_eps: v["layer_norm_eps"].as_f64().unwrap_or(1e-5),
        gelu,
        n_kv_head: None,
        d_ff: (d_ff != 4 * d_model).then_some(d_ff),
        attention: Attention::Causal,
        window: None,
        window_pattern: None,
        position: Position::Rope,
        rotary_pct,
        parallel_residual: v["use_parallel_residual"].as_bool().unwrap_or(true),
        tie_embeddings: v["tie_word_embeddings"].as_bool().unwrap_or(false),
    };
    config
        .validate_complete()
        .map_err(|e| bad(path, format!("its model does not fit ember: {e}")))?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_gpt_neox_cannot_express_is_named() {
        let base = GptConfig {
            vocab_size: 10,
            ..GptConfig::nano()
        };
        let msg = check_exportable(&GptConfig {
            n_kv_head: Some(1),
            ..base.clone()
        })
        .unwrap_err();
        assert!(
            msg.starts_with("model.n_kv_head = 1 (grouped-query attention) has no GPT-NeoX equivalent"),
            "{msg}"
        );
        let msg = check_exportable(&GptConfig {
            attention: Attention::Linear,
            ..base.clone()
        })
        .unwrap_err();
        assert!(msg.starts_with("model.attention = \"linear\""), "{msg}");
        check_exportable(&base).unwrap();
        let v = json!({ "architectures": ["LlamaForCausalLM"], "model_type": "llama" });
        let msg = config_from_hf(&v, Path::new("c.json")).unwrap_err().to_string();
        assert!(
            msg.contains("the architecture is LlamaForCausalLM; ember imports GPTNeoXForCausalLM"),
            "{msg}"
        );
        let mut v = hf_config(&base);
        v["hidden_act"] = json!("relu");
        let msg = config_from_hf(&v, Path::new("c.json")).unwrap_err().to_string();
        assert!(msg.contains("hidden_act \"relu\" is not supported"), "{msg}");
        // An exported config reads back as the same model.
        assert_eq!(config_from_hf(&hf_config(&base), Path::new("c.json")).unwrap(), base);
    }
}

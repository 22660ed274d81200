//! The config.json of HF-directory exports: the source's own, or one made from GGUF metadata
//! (with Gemma 3's per-layer attention, RoPE and norm settings as `Gemma3ForCausalLM` reads
//! them), and the per-layer entries kept with their layers when blocks are renumbered.

use serde_json::{json, Map, Value};

use crate::arch::SlidingWindow;
use crate::config::{Config, RopeScaling};
use crate::error::{Error, Result};
use crate::io::source::{Format, ModelSource};

fn hf_architecture(cfg: &Config) -> &'static str {
    match cfg.arch.name {
        "mistral" => "MistralForCausalLM",
        "qwen2" => "Qwen2ForCausalLM",
        "qwen3" => "Qwen3ForCausalLM",
        "gemma3_text" => "Gemma3ForCausalLM",
        _ => "LlamaForCausalLM",
    }
}

/// HF's `rope_scaling` object of a scaling (with `rope_type`), or null.
fn rope_scaling_json(s: Option<&RopeScaling>) -> Value {
    match s {
        None => Value::Null,
        Some(RopeScaling::Linear { factor }) => json!({"rope_type": "linear", "factor": factor}),
        Some(RopeScaling::Llama3 {
            factor,
            low_freq_factor,
            high_freq_factor,
            original_max_position_embeddings,
        }) => json!({
            "rope_type": "llama3",
            "factor": factor,
            "low_freq_factor": low_freq_factor,
            "high_freq_factor": high_freq_factor,
            "original_max_position_embeddings": original_max_position_embeddings,
        }),
    }
}

/// transformers 5's `rope_parameters` entry of one layer kind: `rope_theta` plus the scaling.
fn rope_parameters(theta: f64, s: Option<&RopeScaling>) -> Value {
    let mut v = match rope_scaling_json(s) {
        Value::Null => json!({"rope_type": "default"}),
        x => x,
    };
    v["rope_theta"] = json!(theta);
    v
}

/// An HF config.json for `cfg` (for models read from GGUF).
pub fn hf_config_json(cfg: &Config) -> Value {
    let mut v = json!({
        "architectures": [hf_architecture(cfg)],
        "model_type": cfg.arch.name,
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.hidden_size,
        "intermediate_size": cfg.intermediate_size,
        "num_hidden_layers": cfg.num_layers,
        "num_attention_heads": cfg.num_heads,
        "num_key_value_heads": cfg.num_kv_heads,
        "head_dim": cfg.head_dim,
        "hidden_act": cfg.act.hf_name(),
        "rms_norm_eps": cfg.rms_norm_eps,
        "rope_theta": cfg.rope_theta,
        "rope_scaling": rope_scaling_json(cfg.rope_scaling.as_ref()),
        "max_position_embeddings": cfg.max_position_embeddings,
        "tie_word_embeddings": cfg.tie_word_embeddings,
        "attention_bias": cfg.o_bias,
        "mlp_bias": cfg.mlp_bias,
        "torch_dtype": "float32",
    });
    if let Some(b) = cfg.bos_token_id {
        v["bos_token_id"] = b.into();
    }
    if let Some(&e) = cfg.eos_token_ids.first() {
        v["eos_token_id"] = e.into();
    }
    if cfg.arch.sliding_window == SlidingWindow::PerLayer {
        add_per_layer(cfg, &mut v);
    }
    v
}

/// Gemma 3's keys: the activation under its name, the attention scale, the window, every
/// layer's kind, and the RoPE of each kind both as transformers 4 (`rope_theta`,
/// `rope_local_base_freq`, `rope_scaling`) and 5 (`rope_parameters`) read it.
fn add_per_layer(cfg: &Config, v: &mut Value) {
    let o = v.as_object_mut().expect("an object");
    o.remove("hidden_act");
    o.remove("mlp_bias");
    o.insert("hidden_activation".into(), json!(cfg.act.hf_name()));
    // transformers 5 checks the type: an int (256), as Gemma's own configs write it
    let scalar = cfg
        .query_pre_attn_scalar
        .map(|x| match x.fract() == 0.0 && x.abs() < 1e15 {
            true => json!(x as i64),
            false => json!(x),
        });
    o.insert("query_pre_attn_scalar".into(), json!(scalar));
    o.insert("sliding_window".into(), json!(cfg.sliding_window));
    // llmdrop refuses soft-capping on read: a model it runs has none
    o.insert("attn_logit_softcapping".into(), Value::Null);
    o.insert("final_logit_softcapping".into(), Value::Null);
    o.insert("use_bidirectional_attention".into(), json!(false));
    let (local_theta, local_scaling) = match &cfg.local_rope {
        Some(l) => (l.theta, l.scaling.as_ref()),
        None => (cfg.rope_theta, cfg.rope_scaling.as_ref()),
    };
    o.insert("rope_local_base_freq".into(), json!(local_theta));
    o.insert(
        "rope_parameters".into(),
        json!({
            "full_attention": rope_parameters(cfg.rope_theta, cfg.rope_scaling.as_ref()),
            "sliding_attention": rope_parameters(local_theta, local_scaling),
        }),
    );
    set_layer_types(cfg, o);
}

/// Writes every layer's attention kind as `layer_types` (dropping the pattern keys it
/// replaces), so that renumbering can keep each kind with its layer.
fn set_layer_types(cfg: &Config, o: &mut Map<String, Value>) {
    if cfg.layer_types.is_empty() {
        return;
    }
    let kinds: Vec<&str> = cfg.layer_types.iter().map(|k| k.hf_name()).collect();
    o.insert("layer_types".into(), json!(kinds));
    o.remove("sliding_window_pattern");
    o.remove("_sliding_window_pattern");
}

/// The source's config.json, or one made from its GGUF metadata; per-layer attention kinds
/// always written out (`layer_types`). Without `auto_map`: no writer copies the source's
/// Python files, so it would name code that is not there (the nemotron-nas writer sets its
/// own).
pub(crate) fn source_config(src: &ModelSource) -> Result<Value> {
    let mut v = match src.format() {
        Format::HfDir => {
            let p = src.path().join("config.json");
            let text = std::fs::read_to_string(&p).map_err(|e| Error::io(&p, e))?;
            serde_json::from_str(&text).map_err(|e| Error::BadConfig {
                path: p,
                reason: e.to_string(),
            })?
        }
        Format::Gguf => hf_config_json(src.config()),
    };
    if let Some(o) = v.as_object_mut() {
        set_layer_types(src.config(), o);
        o.remove("auto_map");
        if o.get("model_type").and_then(Value::as_str) == Some(crate::formats::nemotron::MODEL_TYPE)
        {
            as_llama(src.config(), o);
        }
    }
    Ok(v)
}

/// A nemotron-nas source's config as the llama config its uniform shapes describe: its
/// `block_configs` would disagree with a re-export's weights (the writers record the plan
/// their own way; the nemotron-nas writer sets `model_type` and `block_configs` anew).
fn as_llama(cfg: &Config, o: &mut serde_json::Map<String, Value>) {
    o.remove("block_configs");
    o.insert("model_type".into(), "llama".into());
    o.insert(
        "architectures".into(),
        serde_json::json!(["LlamaForCausalLM"]),
    );
    o.insert("intermediate_size".into(), cfg.intermediate_size.into());
    o.insert("num_attention_heads".into(), cfg.num_heads.into());
    o.insert("num_key_value_heads".into(), cfg.num_kv_heads.into());
    o.insert("head_dim".into(), cfg.head_dim.into());
}

/// Top-level config keys whose lists are not one entry per layer, whatever their length.
const NOT_PER_LAYER: &[&str] = &[
    "architectures",
    "eos_token_id",
    "bos_token_id",
    "pad_token_id",
    "bad_words_ids",
    "suppress_tokens",
    "begin_suppress_tokens",
];

/// Keeps, in every per-layer list of `config` (`layer_types`, `block_configs`, any list of
/// one entry per layer), the entries of the layers `map` keeps, in order.
pub(crate) fn renumber_layers(config: &mut Value, map: &[Option<usize>]) {
    let Some(obj) = config.as_object_mut() else {
        return;
    };
    for (k, v) in obj.iter_mut() {
        if NOT_PER_LAYER.contains(&k.as_str()) {
            continue;
        }
        if let Some(a) = v.as_array_mut().filter(|a| a.len() == map.len()) {
            *a = a
                .iter()
                .zip(map)
                .filter(|(_, m)| m.is_some())
                .map(|(x, _)| x.clone())
                .collect();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The config written for a GGUF source reads back as the same runtime config: the tiny
    /// Gemma 3 (linear RoPE scaling on the global layers, its own local base, a global layer
    /// among sliding ones) and llama.
    #[test]
    fn a_written_config_reads_back_as_the_same_config() {
        for arch in ["gemma3", "llama", "qwen3"] {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../tests/fixtures/tiny")
                .join(arch);
            let src = ModelSource::open(&dir).unwrap();
            let v = hf_config_json(src.config());
            let back = Config::from_hf_json(&v, &dir).unwrap();
            let (a, b) = (json!(src.config()), json!(back));
            assert_eq!(a, b, "{arch}");
        }
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/tiny/gemma3");
        let v = hf_config_json(ModelSource::open(&dir).unwrap().config());
        // types transformers 5 checks, keys transformers 4 reads
        assert_eq!(v["query_pre_attn_scalar"], json!(24));
        assert_eq!(
            v["rope_scaling"],
            json!({"rope_type": "linear", "factor": 4.0})
        );
        assert_eq!(v["rope_local_base_freq"], json!(10000.0));
        assert_eq!(v["architectures"], json!(["Gemma3ForCausalLM"]));
        assert!(v.get("hidden_act").is_none());
    }

    /// Per-layer lists keep the kept layers' entries; token-id lists of the same length stay.
    #[test]
    fn renumbering_keeps_per_layer_entries_only() {
        let mut v = json!({
            "layer_types": ["sliding_attention", "full_attention"],
            "eos_token_id": [1, 106],
            "block_configs": [{"a": 0}, {"a": 1}],
            "architectures": ["Gemma3ForCausalLM", "X"],
        });
        renumber_layers(&mut v, &[None, Some(0)]);
        assert_eq!(v["layer_types"], json!(["full_attention"]));
        assert_eq!(v["block_configs"], json!([{"a": 1}]));
        assert_eq!(v["eos_token_id"], json!([1, 106]));
        assert_eq!(v["architectures"], json!(["Gemma3ForCausalLM", "X"]));
    }
}

//! `hf-llmdrop`: an HF directory without the dropped modules' weights, with LLM-Drop's
//! `drop_attn_list` / `drop_mlp_list` in config.json and an `llmdrop` section.

use std::path::Path;

use candle_core::{DType, Device};
use serde::Serialize;
use serde_json::{json, Value};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::io::source::{Format, ModelSource};
use crate::io::tokenizer::Tokenizer;
use crate::plan::DropPlan;

/// Provenance written into the export's config.json and plan.json.
#[derive(Debug, Clone, Serialize)]
pub struct ExportInfo {
    pub tool_version: String,
    pub source_model: String,
    pub source_sha256: Option<String>,
    /// Anything else worth keeping: strategy, scores hash, calibration settings.
    pub details: Value,
}

fn hf_architecture(cfg: &Config) -> &'static str {
    match cfg.arch.name {
        "llama" => "LlamaForCausalLM",
        "mistral" => "MistralForCausalLM",
        "qwen2" => "Qwen2ForCausalLM",
        "qwen3" => "Qwen3ForCausalLM",
        _ => "LlamaForCausalLM",
    }
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
        "hidden_act": "silu",
        "rms_norm_eps": cfg.rms_norm_eps,
        "rope_theta": cfg.rope_theta,
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
    v
}

/// Writes the pruned model into `dir` (an empty staging directory): config.json,
/// model.safetensors, tokenizer files, plan.json. Tensors of an HF input keep their dtype
/// byte for byte; a GGUF input is dequantized to f32.
pub fn write_hf_llmdrop(
    src: &ModelSource,
    tok: &Tokenizer,
    plan: &DropPlan,
    info: &ExportInfo,
    dir: &Path,
) -> Result<()> {
    let cfg = src.config();
    let plan = plan.union(src.stored_plan());
    plan.validate(cfg.num_layers)?;
    // config.json
    let mut config = match src.format() {
        Format::HfDir => {
            let p = src.path().join("config.json");
            let text = std::fs::read_to_string(&p).map_err(|e| Error::io(&p, e))?;
            serde_json::from_str(&text).map_err(|e| Error::BadConfig {
                path: p,
                reason: e.to_string(),
            })?
        }
        Format::Gguf => hf_config_json(cfg),
    };
    config["drop_attn_list"] = json!(plan.attn);
    config["drop_mlp_list"] = json!(plan.mlp);
    config["llmdrop"] = json!({"plan": plan, "info": info});
    write_json(&dir.join("config.json"), &config)?;

    // weights
    let w = src.weights();
    let mut owned: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    let mut borrowed: Vec<(String, safetensors::Dtype, Vec<usize>, &[u8])> = Vec::new();
    for t in w.tensors() {
        if plan.drops_tensor(&t.name)
            || (t.name == "lm_head.weight" && cfg.tie_word_embeddings)
            || crate::io::names::split_layer_name(&t.name).is_none()
                && !t.name.starts_with("model.")
                && t.name != "lm_head.weight"
        {
            continue;
        }
        if let Some((dt, shape, bytes)) = w.raw_safetensors(&t.name) {
            borrowed.push((t.name.clone(), dt, shape, bytes));
        } else {
            let x = w.load(&t.name, DType::F32, &Device::Cpu)?;
            let data: Vec<u8> = x
                .flatten_all()?
                .to_vec1::<f32>()?
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect();
            owned.push((
                t.name.clone(),
                safetensors::Dtype::F32,
                x.dims().to_vec(),
                data,
            ));
        }
    }
    let mut views = Vec::new();
    for (n, dt, s, b) in &borrowed {
        views.push((n.clone(), view(*dt, s, b)?));
    }
    for (n, dt, s, b) in &owned {
        views.push((n.clone(), view(*dt, s, b)?));
    }
    let path = dir.join("model.safetensors");
    let mut meta = std::collections::HashMap::new();
    meta.insert("format".to_string(), "pt".to_string());
    safetensors::serialize_to_file(views, Some(meta), &path).map_err(|e| Error::BadFile {
        path: path.clone(),
        reason: format!("cannot write: {e}"),
    })?;

    // tokenizer
    let tj = dir.join("tokenizer.json");
    tok.hf().save(&tj, false).map_err(|e| Error::Tokenizer {
        path: tj.clone(),
        reason: format!("cannot write: {e}"),
    })?;
    let src_tc = src.path().join("tokenizer_config.json");
    if src.format() == Format::HfDir && src_tc.exists() {
        std::fs::copy(&src_tc, dir.join("tokenizer_config.json"))
            .map_err(|e| Error::io(&src_tc, e))?;
    } else {
        let name = |id: Option<u32>| id.and_then(|i| tok.hf().id_to_token(i));
        write_json(
            &dir.join("tokenizer_config.json"),
            &json!({
                "add_bos_token": tok.add_bos,
                "bos_token": name(tok.bos),
                "eos_token": name(tok.eos.first().copied()),
                "tokenizer_class": "PreTrainedTokenizerFast",
            }),
        )?;
    }
    write_json(&dir.join("plan.json"), &json!({"plan": plan, "info": info}))?;
    Ok(())
}

fn view<'a>(
    dt: safetensors::Dtype,
    shape: &[usize],
    bytes: &'a [u8],
) -> Result<safetensors::tensor::TensorView<'a>> {
    safetensors::tensor::TensorView::new(dt, shape.to_vec(), bytes)
        .map_err(|e| Error::Input(format!("tensor view: {e}")))
}

pub(crate) fn write_json(path: &Path, v: &impl Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(v).map_err(|e| Error::Input(e.to_string()))?;
    std::fs::write(path, text + "\n").map_err(|e| Error::io(path, e))
}

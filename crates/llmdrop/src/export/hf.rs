//! HF-directory exports: `hf-llmdrop` (LLM-Drop's drop lists, no renumbering) and `hf`
//! (whole blocks removed, layers renumbered: a standard checkpoint).

use std::path::Path;

use serde::Serialize;
use serde_json::{json, Value};

use super::tensors::{block_renumbering, kept_tensors, write_json, write_safetensors};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::formats::hf_llmdrop;
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

/// The source's config.json, or one made from its GGUF metadata.
pub(crate) fn source_config(src: &ModelSource) -> Result<Value> {
    match src.format() {
        Format::HfDir => {
            let p = src.path().join("config.json");
            let text = std::fs::read_to_string(&p).map_err(|e| Error::io(&p, e))?;
            serde_json::from_str(&text).map_err(|e| Error::BadConfig {
                path: p,
                reason: e.to_string(),
            })
        }
        Format::Gguf => Ok(hf_config_json(src.config())),
    }
}

/// tokenizer.json (+ tokenizer_config.json) next to the weights.
pub(crate) fn write_tokenizer(src: &ModelSource, tok: &Tokenizer, dir: &Path) -> Result<()> {
    let tj = dir.join("tokenizer.json");
    let hf = tok.hf().ok_or_else(|| Error::Tokenizer {
        path: src.path().into(),
        reason: "this export needs a tokenizer.json, and the source's SentencePiece \
                 vocabulary (GGUF tokenizer.ggml.model = llama) is not converted to one yet"
            .into(),
    })?;
    hf.save(&tj, false).map_err(|e| Error::Tokenizer {
        path: tj.clone(),
        reason: format!("cannot write: {e}"),
    })?;
    let src_tc = src.path().join("tokenizer_config.json");
    if src.format() == Format::HfDir && src_tc.exists() {
        std::fs::copy(&src_tc, dir.join("tokenizer_config.json"))
            .map_err(|e| Error::io(&src_tc, e))?;
        Ok(())
    } else {
        let name = |id: Option<u32>| id.and_then(|i| tok.id_to_token(i));
        write_json(
            &dir.join("tokenizer_config.json"),
            &json!({
                "add_bos_token": tok.add_bos,
                "bos_token": name(tok.bos),
                "eos_token": name(tok.eos.first().copied()),
                "tokenizer_class": "PreTrainedTokenizerFast",
            }),
        )
    }
}

/// `plan` plus what the source already drops, checked against the source's layers.
pub(crate) fn full_plan(src: &ModelSource, plan: &DropPlan) -> Result<DropPlan> {
    let plan = plan.union(src.stored_plan());
    plan.validate(src.config().num_layers)?;
    Ok(plan)
}

/// What every HF-directory export writes after preparing its config: config.json, the
/// kept tensors (layers renamed by `renumber`), tokenizer files and plan.json.
#[allow(clippy::too_many_arguments)]
pub(crate) fn write_hf_dir(
    src: &ModelSource,
    tok: &Tokenizer,
    plan: &DropPlan,
    config: &Value,
    renumber: Option<&[Option<usize>]>,
    plan_json: &Value,
    dir: &Path,
    shard_bytes: u64,
) -> Result<()> {
    write_json(&dir.join("config.json"), config)?;
    let tensors = kept_tensors(
        src.config().arch,
        src.weights(),
        plan,
        src.config().tie_word_embeddings,
        renumber,
    );
    write_safetensors(src.weights(), &tensors, dir, shard_bytes)?;
    write_tokenizer(src, tok, dir)?;
    write_json(&dir.join("plan.json"), plan_json)
}

/// `hf-llmdrop`: dropped modules' weights removed, `drop_attn_list` / `drop_mlp_list` as
/// LLM-Drop writes them, an `llmdrop` section, tokenizer files and plan.json.
pub fn write_hf_llmdrop(
    src: &ModelSource,
    tok: &Tokenizer,
    plan: &DropPlan,
    info: &ExportInfo,
    dir: &Path,
    shard_bytes: u64,
) -> Result<()> {
    let plan = full_plan(src, plan)?;
    let mut config = source_config(src)?;
    hf_llmdrop::write_plan(&mut config, &plan);
    config["llmdrop"] = json!({"format": "hf-llmdrop", "plan": plan, "info": info});
    let plan_json = json!({"plan": plan, "info": info});
    write_hf_dir(src, tok, &plan, &config, None, &plan_json, dir, shard_bytes)
}

/// `hf`: a standard checkpoint without the dropped blocks, layers renumbered, every
/// per-layer config array shortened. Only whole-block plans.
pub fn write_hf_blocks(
    src: &ModelSource,
    tok: &Tokenizer,
    plan: &DropPlan,
    info: &ExportInfo,
    dir: &Path,
    shard_bytes: u64,
) -> Result<()> {
    let cfg = src.config();
    let plan = full_plan(src, plan)?;
    require_blocks(&plan, "hf")?;
    let map = block_renumbering(cfg.num_layers, &plan);
    let kept = map.iter().flatten().count();
    let mut config = source_config(src)?;
    hf_llmdrop::remove_plan(&mut config);
    if let Some(obj) = config.as_object_mut() {
        for v in obj.values_mut() {
            if let Some(a) = v.as_array_mut().filter(|a| a.len() == cfg.num_layers) {
                let keep: Vec<Value> = a
                    .iter()
                    .zip(&map)
                    .filter(|(_, m)| m.is_some())
                    .map(|(x, _)| x.clone())
                    .collect();
                *a = keep;
            }
        }
    }
    config["num_hidden_layers"] = json!(kept);
    config["llmdrop"] = json!({"format": "hf", "dropped_blocks": plan.attn, "info": info});
    let plan_json = json!({"plan": plan, "renumbered": true, "info": info});
    write_hf_dir(
        src,
        tok,
        &plan,
        &config,
        Some(&map),
        &plan_json,
        dir,
        shard_bytes,
    )
}

/// Errors unless `plan` drops only whole blocks.
pub(crate) fn require_blocks(plan: &DropPlan, format: &str) -> Result<()> {
    if plan.attn != plan.mlp {
        return Err(Error::unsupported(
            format!("format `{format}`"),
            format!(
                "removes whole blocks only, but the plan drops attention {:?} and MLP {:?}; \
                 use hf-llmdrop, nemotron-nas or gguf (deci) for attention / MLP drops",
                plan.attn, plan.mlp
            ),
        ));
    }
    Ok(())
}

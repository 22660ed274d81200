//! HF-directory exports: `hf-llmdrop` (LLM-Drop's drop lists, no renumbering) and `hf`
//! (whole blocks removed, layers renumbered: a standard checkpoint).

use std::path::Path;

use serde::Serialize;
use serde_json::{json, Value};

use super::hf_config::renumber_layers;
pub(crate) use super::hf_config::source_config;
use super::tensors::{block_renumbering, kept_tensors, write_json, write_safetensors};
use super::tokenizer_files::write_tokenizer_files;
use crate::error::{Error, Result};
use crate::formats::hf_llmdrop;
use crate::io::source::ModelSource;
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
    write_tokenizer_files(src, tok, dir)?;
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
    renumber_layers(&mut config, &map);
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

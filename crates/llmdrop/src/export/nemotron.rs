//! `nemotron-nas`: NVIDIA's DeciLM layout (`DeciLMForCausalLM`), which vLLM and
//! TensorRT-LLM serve with no KV cache for no-op attention layers.

use std::path::Path;

use serde_json::{json, Value};

use super::hf::{full_plan, source_config, write_hf_dir, ExportInfo};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::io::source::ModelSource;
use crate::io::tokenizer::Tokenizer;
use crate::plan::DropPlan;

/// DeciLM's `ffn_mult` -> intermediate size (as vLLM's and llama.cpp's loaders compute it);
/// a size that does not fit saturates (config validation refuses it long before).
pub fn ffn_mult_to_intermediate(ffn_mult: f64, hidden: usize) -> usize {
    let n = (2.0 * ffn_mult * hidden as f64 / 3.0) as usize;
    n.div_ceil(256).saturating_mul(256)
}

/// The `ffn` entry of a kept MLP: `ffn_mult` when it reproduces the size exactly, else
/// `intermediate_size` (which vLLM reads when `ffn_mult` is absent).
fn ffn_entry(cfg: &Config) -> Value {
    let mult = 1.5 * cfg.intermediate_size as f64 / cfg.hidden_size as f64;
    if ffn_mult_to_intermediate(mult, cfg.hidden_size) == cfg.intermediate_size {
        json!({"no_op": false, "replace_with_linear": false, "ffn_mult": mult})
    } else {
        json!({"no_op": false, "replace_with_linear": false, "intermediate_size": cfg.intermediate_size})
    }
}

/// `block_configs` for `plan`.
pub fn block_configs(cfg: &Config, plan: &DropPlan) -> Value {
    let groups = cfg.num_heads / cfg.num_kv_heads;
    let blocks: Vec<Value> = (0..cfg.num_layers)
        .map(|i| {
            let attention = if plan.drops_attn(i) {
                json!({"no_op": true, "replace_with_linear": false, "n_heads_in_group": null})
            } else {
                json!({"no_op": false, "replace_with_linear": false, "n_heads_in_group": groups})
            };
            let ffn = if plan.drops_mlp(i) {
                json!({"no_op": true, "replace_with_linear": false, "ffn_mult": null})
            } else {
                ffn_entry(cfg)
            };
            json!({"attention": attention, "ffn": ffn})
        })
        .collect();
    Value::Array(blocks)
}

/// Writes the nemotron-nas directory. Llama-family models only.
pub fn write_nemotron_nas(
    src: &ModelSource,
    tok: &Tokenizer,
    plan: &DropPlan,
    info: &ExportInfo,
    dir: &Path,
    shard_bytes: u64,
) -> Result<()> {
    let cfg = src.config();
    if cfg.arch.name != "llama" || cfg.sliding_window.is_some() || cfg.arch.qk_norm {
        return Err(Error::Plan(format!(
            "format `nemotron-nas` is for llama-family models; this one is `{}`",
            cfg.arch.name
        )));
    }
    let plan = full_plan(src, plan)?;
    let mut config = source_config(src)?;
    if let Some(obj) = config.as_object_mut() {
        obj.remove("drop_attn_list");
        obj.remove("drop_mlp_list");
    }
    config["architectures"] = json!(["DeciLMForCausalLM"]);
    config["model_type"] = json!("nemotron-nas");
    config["block_configs"] = block_configs(cfg, &plan);
    config["llmdrop"] = json!({"format": "nemotron-nas", "plan": plan, "info": info});
    let plan_json = json!({"plan": plan, "info": info});
    write_hf_dir(src, tok, &plan, &config, None, &plan_json, dir, shard_bytes)
}

//! `nemotron-nas`: NVIDIA's DeciLM layout (`DeciLMForCausalLM`), which vLLM and
//! TensorRT-LLM serve with no KV cache for no-op attention layers. The directory carries
//! llmdrop's own configuration and modeling files, named in config.json's `auto_map`, so
//! that transformers (and vLLM, which reads the config through them) load it with
//! `trust_remote_code`.

use std::path::Path;

use serde_json::{json, Value};

use super::hf::{full_plan, source_config, write_hf_dir, ExportInfo};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::formats::{hf_llmdrop, nemotron};
use crate::io::source::ModelSource;
use crate::io::tokenizer::Tokenizer;
use crate::plan::DropPlan;

pub use crate::formats::nemotron::ffn_mult_to_intermediate;

/// `block_configs` for `plan`.
pub fn block_configs(cfg: &Config, plan: &DropPlan) -> Value {
    nemotron::block_configs(
        nemotron::Shape {
            num_layers: cfg.num_layers,
            hidden_size: cfg.hidden_size,
            heads_in_group: cfg.num_heads / cfg.num_kv_heads,
            intermediate_size: cfg.intermediate_size,
        },
        plan,
    )
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
        return Err(Error::unsupported(
            "format `nemotron-nas`",
            format!(
                "is for llama-family models; this one is `{}`",
                cfg.arch.name
            ),
        ));
    }
    let plan = full_plan(src, plan)?;
    let mut config = source_config(src)?;
    hf_llmdrop::remove_plan(&mut config);
    config["architectures"] = json!([nemotron::ARCHITECTURE]);
    config["model_type"] = json!(nemotron::MODEL_TYPE);
    config["block_configs"] = block_configs(cfg, &plan);
    config["auto_map"] = nemotron::auto_map();
    config["llmdrop"] = json!({"format": nemotron::MODEL_TYPE, "plan": plan, "info": info});
    let plan_json = json!({"plan": plan, "info": info});
    write_hf_dir(src, tok, &plan, &config, None, &plan_json, dir, shard_bytes)?;
    // the configuration and modeling code `auto_map` names (transformers' trust_remote_code)
    for (name, text) in nemotron::PY_FILES {
        let p = dir.join(name);
        std::fs::write(&p, text).map_err(|e| Error::io(&p, e))?;
    }
    Ok(())
}

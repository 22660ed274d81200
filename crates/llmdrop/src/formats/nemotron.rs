//! `nemotron-nas`: NVIDIA's DeciLM layout (`DeciLMForCausalLM`), which vLLM and
//! TensorRT-LLM serve with no KV cache for no-op attention layers. Per-layer shapes live in
//! config.json's `block_configs`; a no-op module is a dropped one.
//!
//! Written by [`crate::export::nemotron::write_nemotron_nas`]; read back by
//! [`crate::config::Config::from_hf_json`] (shapes) and
//! [`crate::io::source::ModelSource::open`] (stored plan).
//!
//! Neither transformers nor vLLM ships a config class for `nemotron-nas`: NVIDIA's checkpoints
//! carry their own Python files, named in config.json's `auto_map` and loaded with
//! `trust_remote_code`. Every export carries llmdrop's own ([`PY_FILES`], kept in
//! `src/formats/nemotron_py/`): a config class whose `block_configs` entries are attribute
//! objects (as vLLM's `nemotron_nas.py` reads them) and a plain-torch `DeciLMForCausalLM`.

use serde_json::{json, Value};

use crate::plan::DropPlan;

/// config.json `model_type` of the format.
pub const MODEL_TYPE: &str = "nemotron-nas";
/// config.json `architectures` entry of the format.
pub const ARCHITECTURE: &str = "DeciLMForCausalLM";

/// The Python files written beside every export: (file name, contents).
pub const PY_FILES: [(&str, &str); 2] = [
    (
        "configuration_nemotron_nas.py",
        include_str!("nemotron_py/configuration_nemotron_nas.py"),
    ),
    (
        "modeling_nemotron_nas.py",
        include_str!("nemotron_py/modeling_nemotron_nas.py"),
    ),
];

/// config.json's `auto_map`: the classes transformers loads from [`PY_FILES`].
pub fn auto_map() -> Value {
    json!({
        "AutoConfig": "configuration_nemotron_nas.DeciLMConfig",
        "AutoModelForCausalLM": "modeling_nemotron_nas.DeciLMForCausalLM",
    })
}

/// The layer whose no-op attention vLLM cannot run: the first layer that keeps a module, when
/// that layer's attention is dropped (None when the plan is safe).
///
/// vLLM's DeciLM decoder layer carries the residual stream beside the hidden state and starts
/// it at the first attention it runs; a layer before that whose FFN is kept calls the fused
/// residual RMSNorm with `residual = None`, which returns one tensor where two are unpacked, and
/// the model fails. Layers dropped whole before the first kept module pass nothing on, so they
/// are safe.
pub fn first_attn_hazard(plan: &DropPlan, num_layers: usize) -> Option<usize> {
    let first = (0..num_layers).find(|&i| !(plan.drops_attn(i) && plan.drops_mlp(i)))?;
    plan.drops_attn(first).then_some(first)
}

/// DeciLM's `ffn_mult` -> intermediate size (as vLLM's and llama.cpp's loaders compute it);
/// a size that does not fit saturates (config validation refuses it long before).
pub fn ffn_mult_to_intermediate(ffn_mult: f64, hidden: usize) -> usize {
    let n = (2.0 * ffn_mult * hidden as f64 / 3.0) as usize;
    n.div_ceil(256).saturating_mul(256)
}

/// The `ffn` entry of a kept MLP: `ffn_mult` when it reproduces the size exactly, else
/// `intermediate_size` (which vLLM reads when `ffn_mult` is absent).
fn ffn_entry(hidden: usize, intermediate: usize) -> Value {
    let mult = 1.5 * intermediate as f64 / hidden as f64;
    if ffn_mult_to_intermediate(mult, hidden) == intermediate {
        json!({"no_op": false, "replace_with_linear": false, "ffn_mult": mult})
    } else {
        json!({"no_op": false, "replace_with_linear": false, "intermediate_size": intermediate})
    }
}

/// The uniform shape of a llama-family model, as `block_configs` describes it per layer.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub num_layers: usize,
    pub hidden_size: usize,
    /// Query heads per key/value head.
    pub heads_in_group: usize,
    pub intermediate_size: usize,
}

/// `block_configs` for `plan`: dropped modules are no-ops, kept ones have `shape`.
pub fn block_configs(shape: Shape, plan: &DropPlan) -> Value {
    let blocks: Vec<Value> = (0..shape.num_layers)
        .map(|i| {
            let attention = if plan.drops_attn(i) {
                json!({"no_op": true, "replace_with_linear": false, "n_heads_in_group": null})
            } else {
                json!({"no_op": false, "replace_with_linear": false, "n_heads_in_group": shape.heads_in_group})
            };
            let ffn = if plan.drops_mlp(i) {
                json!({"no_op": true, "replace_with_linear": false, "ffn_mult": null})
            } else {
                ffn_entry(shape.hidden_size, shape.intermediate_size)
            };
            json!({"attention": attention, "ffn": ffn})
        })
        .collect();
    Value::Array(blocks)
}

/// The uniform (n_heads_in_group, intermediate size) of a nemotron-nas config's kept
/// modules (None where every module of that kind is a no-op). `hidden` is the config's
/// hidden size, bounded by the caller, from which `ffn_mult` is resolved.
pub fn read_shapes(
    config: &Value,
    hidden: usize,
) -> Result<(Option<usize>, Option<usize>), String> {
    let blocks = config
        .get("block_configs")
        .and_then(Value::as_array)
        .ok_or("nemotron-nas config without `block_configs`")?;
    let mut groups = None;
    let mut inter = None;
    for (i, b) in blocks.iter().enumerate() {
        let a = &b["attention"];
        if !a["no_op"].as_bool().unwrap_or(false) {
            if a["replace_with_linear"].as_bool().unwrap_or(false) {
                return Err(format!(
                    "block {i}: linear-replaced attention is not supported"
                ));
            }
            let g = a["n_heads_in_group"]
                .as_u64()
                .ok_or(format!("block {i}: no n_heads_in_group"))? as usize;
            if groups.is_some_and(|x| x != g) {
                return Err("per-layer attention shapes differ: not supported".into());
            }
            groups = Some(g);
        }
        let f = &b["ffn"];
        if !f["no_op"].as_bool().unwrap_or(false) {
            if f["replace_with_linear"].as_bool().unwrap_or(false) {
                return Err(format!("block {i}: linear-replaced FFN is not supported"));
            }
            let n = match f.get("ffn_mult").and_then(Value::as_f64) {
                // bounded first: a huge multiple overflows the rounding to 256
                Some(m) if !(m.is_finite() && m > 0.0 && m <= 1024.0) => {
                    return Err(format!("block {i}: ffn_mult {m:e} is not in (0, 1024]"))
                }
                Some(m) => ffn_mult_to_intermediate(m, hidden),
                None => f["intermediate_size"]
                    .as_u64()
                    .ok_or(format!("block {i}: no ffn size"))? as usize,
            };
            if inter.is_some_and(|x| x != n) {
                return Err("per-layer FFN sizes differ: not supported".into());
            }
            inter = Some(n);
        }
    }
    Ok((groups, inter))
}

/// Adds the no-op modules of `block_configs` (when present) to `plan`.
pub fn read_plan_into(config: &Value, plan: &mut DropPlan) {
    if let Some(blocks) = config.get("block_configs").and_then(|b| b.as_array()) {
        for (i, b) in blocks.iter().enumerate() {
            if b["attention"]["no_op"].as_bool() == Some(true) {
                plan.attn.insert(i);
            }
            if b["ffn"]["no_op"].as_bool() == Some(true) {
                plan.mlp.insert(i);
            }
        }
    }
}

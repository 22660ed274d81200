//! `hf-llmdrop`: an HF directory whose config.json lists the dropped modules under
//! LLM-Drop's keys. Written by [`crate::export::hf::write_hf_llmdrop`]; read back by
//! [`crate::io::source::ModelSource::open`] as the model's stored plan.

use serde_json::{json, Value};

use crate::plan::DropPlan;

/// config.json key listing layers whose attention is dropped (LLM-Drop's spelling).
pub const DROP_ATTN_KEY: &str = "drop_attn_list";
/// config.json key listing layers whose MLP is dropped (LLM-Drop's spelling).
pub const DROP_MLP_KEY: &str = "drop_mlp_list";

/// Records `plan` in a config.json object as LLM-Drop does.
pub fn write_plan(config: &mut Value, plan: &DropPlan) {
    config[DROP_ATTN_KEY] = json!(plan.attn);
    config[DROP_MLP_KEY] = json!(plan.mlp);
}

/// Removes LLM-Drop's keys (for formats that describe drops another way, or have none).
pub fn remove_plan(config: &mut Value) {
    if let Some(obj) = config.as_object_mut() {
        obj.remove(DROP_ATTN_KEY);
        obj.remove(DROP_MLP_KEY);
    }
}

/// The plan LLM-Drop's keys describe (empty when absent or null); the error is the reason a
/// key is unusable. Layer indices are not checked against the model here.
pub fn read_plan(config: &Value) -> Result<DropPlan, String> {
    let list = |key: &str| -> Result<Vec<usize>, String> {
        match config.get(key) {
            None | Some(Value::Null) => Ok(vec![]),
            Some(x) => serde_json::from_value(x.clone())
                .map_err(|_| format!("`{key}` must be a list of layer indices")),
        }
    };
    Ok(DropPlan::new(list(DROP_ATTN_KEY)?, list(DROP_MLP_KEY)?))
}

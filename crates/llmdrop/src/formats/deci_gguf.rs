//! GGUF arch `deci`: llama.cpp's llama with per-layer head counts and feed-forward lengths,
//! where 0 marks a module absent. llmdrop writes it for attention / MLP drops and records,
//! under its own `llmdrop.` keys, what the per-layer arrays cannot say.
//!
//! Written by [`crate::export::gguf::write_gguf`]; read back by
//! [`crate::io::gguf::GgufSource`] (config and stored plan).

use std::collections::BTreeSet;

use candle_core::quantized::gguf_file::{Content, Value};

use crate::plan::DropPlan;

/// `general.architecture` of the format.
pub const ARCH: &str = "deci";

/// The llama-family architecture `deci` extends.
pub const FAMILY: &str = "llama";

/// Width of the all-zero FFN written for layers whose MLP is dropped but whose attention
/// is kept. llama.cpp's deci graph (as of llama-cpp-python 0.3.36) treats a layer with
/// feed-forward length 0 as absent altogether, discarding its attention output too; a zero
/// FFN adds exactly nothing to the residual instead, at negligible cost. The layers are
/// listed in `llmdrop.drop_mlp_list` so llmdrop reads them as dropped.
pub const ZERO_FFN_WIDTH: usize = 32;

/// Metadata key listing MLP-dropped layers that carry a zero FFN.
pub const DROP_MLP_KEY: &str = "llmdrop.drop_mlp_list";

/// Whether the plan needs llama.cpp's `deci` architecture (anything but whole blocks).
pub fn needs_deci(plan: &DropPlan) -> bool {
    plan.attn != plan.mlp
}

/// The key under which llmdrop records the original uniform value of `{arch}.{key}`
/// (`attention.head_count`, `attention.head_count_kv`): a file whose every attention is
/// dropped has only zeros in the per-layer arrays.
pub fn original_key(key: &str) -> String {
    format!("llmdrop.{key}")
}

fn u32v(x: usize) -> Value {
    Value::U32(x as u32)
}

fn per_layer(v: impl Iterator<Item = usize>) -> Value {
    Value::Array(v.map(|x| Value::I32(x as i32)).collect())
}

/// The uniform shape of the model the per-layer arrays describe.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub num_layers: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub intermediate_size: usize,
}

/// The metadata entries of a `deci` file for `plan`, in the order they are written: the
/// original head counts, the per-layer head counts and FFN lengths, and (when any) the
/// zero-FFN layers.
pub fn metadata(shape: Shape, plan: &DropPlan) -> Vec<(String, Value)> {
    let l = shape.num_layers;
    let mut meta = vec![
        (original_key("attention.head_count"), u32v(shape.num_heads)),
        (
            original_key("attention.head_count_kv"),
            u32v(shape.num_kv_heads),
        ),
        (
            format!("{ARCH}.attention.head_count"),
            per_layer((0..l).map(|i| {
                if plan.drops_attn(i) {
                    0
                } else {
                    shape.num_heads
                }
            })),
        ),
        (
            format!("{ARCH}.attention.head_count_kv"),
            per_layer((0..l).map(|i| {
                if plan.drops_attn(i) {
                    0
                } else {
                    shape.num_kv_heads
                }
            })),
        ),
    ];
    let ffn = |i: usize| match (plan.drops_mlp(i), plan.drops_attn(i)) {
        (false, _) => shape.intermediate_size,
        (true, true) => 0,
        (true, false) => ZERO_FFN_WIDTH,
    };
    meta.push((
        format!("{ARCH}.feed_forward_length"),
        per_layer((0..l).map(ffn)),
    ));
    let zero_ffn: Vec<Value> = (0..l)
        .filter(|&i| plan.drops_mlp(i) && !plan.drops_attn(i))
        .map(|i| Value::I32(i as i32))
        .collect();
    if !zero_ffn.is_empty() {
        meta.push((DROP_MLP_KEY.into(), Value::Array(zero_ffn)));
    }
    meta
}

/// Layers of a per-layer count array that are absent (count 0).
pub fn absent_layers(per_layer: &[u64]) -> Vec<usize> {
    per_layer
        .iter()
        .enumerate()
        .filter(|(_, &x)| x == 0)
        .map(|(i, _)| i)
        .collect()
}

/// Layers llmdrop wrote with a zero FFN in place of a dropped MLP.
pub fn zero_ffn_layers(content: &Content) -> BTreeSet<usize> {
    match content.metadata.get(DROP_MLP_KEY) {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|v| match v {
                Value::I32(x) if *x >= 0 => Some(*x as usize),
                Value::U32(x) => Some(*x as usize),
                _ => None,
            })
            .collect(),
        _ => BTreeSet::new(),
    }
}

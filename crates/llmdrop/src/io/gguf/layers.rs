//! Per-layer attention settings of a GGUF file (Gemma 3): llama.cpp's gemma3 graph
//! stores no layer kinds; it makes every `n`-th layer global by index, with a fixed
//! local RoPE base. These readings follow it.

use super::{meta_f64, meta_str, meta_u64, GgufSource};
use crate::config::{pattern_layers, AttnKind, LocalRope, RopeScaling};
use crate::error::{Error, Result};

/// What [`GgufSource::per_layer`] reads.
pub(super) struct GgufLayers {
    pub sliding_window: Option<usize>,
    pub layer_types: Vec<AttnKind>,
    pub local_rope: Option<LocalRope>,
    pub query_pre_attn_scalar: Option<f64>,
}

/// llama.cpp's layer count of Gemma 3 27B, whose attention scale is `(hidden / heads)^-0.5`
/// rather than `head_dim^-0.5` (llama-model.cpp, `LLM_TYPE_27B`).
const GEMMA3_27B_LAYERS: usize = 62;

impl GgufSource {
    pub(super) fn per_layer(
        &self,
        num_layers: usize,
        hidden: usize,
        heads: usize,
        head_dim: usize,
    ) -> Result<GgufLayers> {
        let Some(pattern) = self.arch.gguf_sliding_pattern else {
            return Ok(GgufLayers {
                sliding_window: None,
                layer_types: vec![],
                local_rope: None,
                query_pre_attn_scalar: None,
            });
        };
        let key = format!("{}.attention.sliding_window", self.arch_name);
        let window = meta_u64(&self.content, &key).ok_or_else(|| Error::BadConfig {
            path: self.path.clone(),
            reason: format!("GGUF metadata `{key}` missing"),
        })? as usize;
        let scalar = if num_layers == GEMMA3_27B_LAYERS {
            hidden / heads.max(1)
        } else {
            head_dim
        };
        Ok(GgufLayers {
            sliding_window: Some(window),
            layer_types: pattern_layers(num_layers, pattern),
            local_rope: self.arch.gguf_local_rope_theta.map(|theta| LocalRope {
                theta,
                scaling: None,
            }),
            query_pre_attn_scalar: Some(scalar as f64),
        })
    }

    /// The global RoPE's scaling from `{arch}.rope.scaling.*` (linear or none).
    pub(super) fn rope_scaling(&self) -> Result<Option<RopeScaling>> {
        let a = &self.arch_name;
        let kind = meta_str(&self.content, &format!("{a}.rope.scaling.type"));
        match kind.as_deref() {
            None | Some("none") => Ok(None),
            Some("linear") => {
                let key = format!("{a}.rope.scaling.factor");
                let factor = meta_f64(&self.content, &key).ok_or_else(|| Error::BadConfig {
                    path: self.path.clone(),
                    reason: format!("GGUF metadata `{key}` missing for linear rope scaling"),
                })?;
                Ok(Some(RopeScaling::Linear { factor }))
            }
            Some(other) => Err(Error::BadConfig {
                path: self.path.clone(),
                reason: format!("GGUF rope scaling `{other}` is not supported"),
            }),
        }
    }

    /// Whether the HF tensor `name` is a norm llama.cpp's converter stored as `w + 1`.
    pub(super) fn stored_plus_one(&self, name: &str) -> bool {
        self.arch.norm_plus_one && name.ends_with("norm.weight")
    }
}

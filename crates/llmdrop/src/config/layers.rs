//! Per-layer attention: which layers attend through a sliding window and which globally, the
//! RoPE of each kind, the attention scale — read from an HF config (Gemma 3's
//! `layer_types` / `sliding_window_pattern`, `rope_parameters`, `query_pre_attn_scalar`).

use serde::Serialize;
use serde_json::Value;

use super::{check_scaling, parse_rope_scaling, Config, RopeScaling};
use crate::arch::{ArchSpec, SlidingWindow};

/// How one layer's attention sees the past.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AttnKind {
    /// Every earlier position (`full_attention`).
    Full,
    /// The last `sliding_window` positions (`sliding_attention`).
    Sliding,
}

impl AttnKind {
    /// The name in an HF config's `layer_types`.
    pub fn hf_name(self) -> &'static str {
        match self {
            Self::Full => "full_attention",
            Self::Sliding => "sliding_attention",
        }
    }
}

/// RoPE of the sliding layers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LocalRope {
    pub theta: f64,
    pub scaling: Option<RopeScaling>,
}

/// What [`read_per_layer`] finds.
pub(super) struct PerLayer {
    pub layer_types: Vec<AttnKind>,
    pub local_rope: Option<LocalRope>,
    pub query_pre_attn_scalar: Option<f64>,
}

/// transformers' default layer pattern (`sliding_window_pattern`): every 6th layer global.
const DEFAULT_PATTERN: usize = 6;
/// transformers' defaults for Gemma 3: local RoPE base, `query_pre_attn_scalar`.
const DEFAULT_LOCAL_THETA: f64 = 10000.0;
const DEFAULT_QUERY_PRE_ATTN_SCALAR: f64 = 256.0;

/// Layer `i` of `n` under a pattern of `p`: every `p`-th layer (1-based) is global, as
/// transformers' `layer_types` default and llama.cpp's gemma3 graph (`il % p == p - 1`).
pub(crate) fn pattern_layers(n: usize, p: usize) -> Vec<AttnKind> {
    (0..n)
        .map(|i| match (i + 1) % p {
            0 => AttnKind::Full,
            _ => AttnKind::Sliding,
        })
        .collect()
}

/// Logit soft-capping (Gemma 2) changes every score: a config that sets it is refused
/// rather than run without it.
pub(super) fn refuse_softcapping(v: &Value) -> Result<(), String> {
    for key in ["attn_logit_softcapping", "final_logit_softcapping"] {
        match v.get(key) {
            None | Some(Value::Null) => {}
            Some(x) => {
                return Err(format!(
                    "`{key}` = {x} is set: logit soft-capping (a Gemma 2 feature) is not supported"
                ))
            }
        }
    }
    Ok(())
}

/// The per-layer attention settings of a family whose layers mix sliding and global
/// attention; nothing for the others.
pub(super) fn read_per_layer(
    v: &Value,
    arch: &ArchSpec,
    num_layers: usize,
) -> Result<PerLayer, String> {
    if arch.sliding_window != SlidingWindow::PerLayer {
        return Ok(PerLayer {
            layer_types: vec![],
            local_rope: None,
            query_pre_attn_scalar: None,
        });
    }
    if v.get("use_bidirectional_attention")
        .and_then(Value::as_bool)
        == Some(true)
    {
        return Err(
            "use_bidirectional_attention = true is not supported (a decoder is causal)".into(),
        );
    }
    let layer_types = match v.get("layer_types") {
        Some(Value::Array(a)) => {
            if a.len() != num_layers {
                return Err(format!(
                    "`layer_types` has {} entries for num_hidden_layers {num_layers}",
                    a.len()
                ));
            }
            a.iter()
                .enumerate()
                .map(|(i, t)| match t.as_str() {
                    Some("full_attention") => Ok(AttnKind::Full),
                    Some("sliding_attention") => Ok(AttnKind::Sliding),
                    _ => Err(format!(
                        "`layer_types[{i}]` = {t} is not one of sliding_attention, full_attention"
                    )),
                })
                .collect::<Result<Vec<_>, _>>()?
        }
        Some(other) => return Err(format!("`layer_types` = {other} is not a list")),
        None => {
            let key = ["sliding_window_pattern", "_sliding_window_pattern"]
                .into_iter()
                .find(|k| v.get(k).is_some());
            let p = match key {
                Some(k) => v[k]
                    .as_u64()
                    .filter(|&p| p > 0)
                    .ok_or_else(|| format!("`{k}` = {} is not a positive integer", v[k]))?
                    as usize,
                None => DEFAULT_PATTERN,
            };
            pattern_layers(num_layers, p)
        }
    };
    let local = v
        .get("rope_parameters")
        .and_then(|r| r.get("sliding_attention"))
        .filter(|r| r.is_object());
    let local_rope = match local {
        Some(r) => LocalRope {
            theta: r
                .get("rope_theta")
                .and_then(Value::as_f64)
                .unwrap_or(DEFAULT_LOCAL_THETA),
            scaling: parse_rope_scaling(r)?,
        },
        None => LocalRope {
            theta: v
                .get("rope_local_base_freq")
                .and_then(Value::as_f64)
                .unwrap_or(DEFAULT_LOCAL_THETA),
            scaling: None,
        },
    };
    let scalar = match v.get("query_pre_attn_scalar") {
        None | Some(Value::Null) => DEFAULT_QUERY_PRE_ATTN_SCALAR,
        Some(x) => x
            .as_f64()
            .ok_or_else(|| format!("`query_pre_attn_scalar` = {x} is not a number"))?,
    };
    Ok(PerLayer {
        layer_types,
        local_rope: Some(local_rope),
        query_pre_attn_scalar: Some(scalar),
    })
}

impl Config {
    /// Layer `i`'s attention kind: from the per-layer list, else sliding for every layer
    /// when the family's window applies.
    pub fn attn_kind(&self, i: usize) -> AttnKind {
        match self.layer_types.get(i) {
            Some(&k) => k,
            None if self.sliding_window.is_some() => AttnKind::Sliding,
            None => AttnKind::Full,
        }
    }

    /// Layer `i`'s attention window in tokens (None: global).
    pub fn layer_window(&self, i: usize) -> Option<usize> {
        match self.attn_kind(i) {
            AttnKind::Sliding => self.sliding_window,
            AttnKind::Full => None,
        }
    }

    /// Whether layer `i` rotates with [`Config::local_rope`] rather than the global RoPE.
    pub fn uses_local_rope(&self, i: usize) -> bool {
        self.local_rope.is_some() && self.attn_kind(i) == AttnKind::Sliding
    }

    /// The factor attention scores are scaled by: `query_pre_attn_scalar^-0.5`, else
    /// `head_dim^-0.5`.
    pub fn attn_scale(&self) -> f64 {
        1.0 / self
            .query_pre_attn_scalar
            .unwrap_or(self.head_dim as f64)
            .sqrt()
    }

    /// The checks of the per-layer settings.
    pub(super) fn validate_layers(&self) -> Result<(), String> {
        if !self.layer_types.is_empty() && self.layer_types.len() != self.num_layers {
            return Err(format!(
                "{} layer types for {} layers",
                self.layer_types.len(),
                self.num_layers
            ));
        }
        if self.layer_types.contains(&AttnKind::Sliding) && self.sliding_window.is_none() {
            return Err("sliding layers need a `sliding_window`".into());
        }
        if let Some(r) = &self.local_rope {
            if !(r.theta.is_finite() && r.theta > 0.0) {
                return Err(format!("local rope theta {} must be positive", r.theta));
            }
            check_scaling(r.scaling.as_ref())?;
        }
        if let Some(s) = self.query_pre_attn_scalar {
            if !(s.is_finite() && s > 0.0) {
                return Err(format!("query_pre_attn_scalar {s} must be positive"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pattern_makes_every_sixth_layer_global() {
        let k = pattern_layers(18, 6);
        let global: Vec<usize> = (0..18).filter(|&i| k[i] == AttnKind::Full).collect();
        assert_eq!(global, vec![5, 11, 17]);
    }
}

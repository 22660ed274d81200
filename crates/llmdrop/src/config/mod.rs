//! The runtime model configuration, built from an HF config.json or GGUF metadata.

use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use crate::arch::{Activation, ArchSpec, SlidingWindow};
use crate::error::{Error, Result};
use crate::formats::nemotron;

pub(crate) mod layers;

pub(crate) use layers::pattern_layers;
pub use layers::{AttnKind, LocalRope};

/// RoPE frequency scaling, as HF's `rope_scaling` describes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum RopeScaling {
    /// Llama 3.x: low frequencies divided by `factor`, smooth ramp between.
    Llama3 {
        factor: f64,
        low_freq_factor: f64,
        high_freq_factor: f64,
        original_max_position_embeddings: usize,
    },
    /// Positions divided by `factor`.
    Linear { factor: f64 },
}

/// Everything the decoder needs to know about a model's shape.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    #[serde(serialize_with = "ser_arch")]
    pub arch: &'static ArchSpec,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    pub rope_scaling: Option<RopeScaling>,
    pub max_position_embeddings: usize,
    pub tie_word_embeddings: bool,
    /// Attention window in tokens, when the family applies one.
    pub sliding_window: Option<usize>,
    pub qkv_bias: bool,
    pub o_bias: bool,
    pub mlp_bias: bool,
    pub bos_token_id: Option<u32>,
    pub eos_token_ids: Vec<u32>,
    /// The MLP's gate activation.
    pub act: Activation,
    /// Attention scores are scaled by `query_pre_attn_scalar^-0.5` (Gemma); None:
    /// `head_dim^-0.5`.
    pub query_pre_attn_scalar: Option<f64>,
    /// Per-layer attention kind for families that mix sliding and global layers; empty
    /// when every layer is alike (then `sliding_window`, if set, applies to all).
    pub layer_types: Vec<AttnKind>,
    /// RoPE of the sliding layers when it differs from the global `rope_theta` /
    /// `rope_scaling` (Gemma 3: local base 10000, no scaling).
    pub local_rope: Option<LocalRope>,
}

/// Largest `config.json` read (real ones are a few KB; nemotron's `block_configs` tens of KB).
pub const MAX_CONFIG_BYTES: u64 = 16 << 20;
/// Upper bounds on a config's sizes: far above any real model, far below an overflow.
pub const MAX_LAYERS: usize = 1 << 20;
pub const MAX_HEADS: usize = 1 << 20;
/// RoPE tables are `max positions x head_dim / 2`, sized before any attention weight is
/// seen (and never checked against one when every attention layer is dropped): real heads
/// are at most a few hundred wide.
pub const MAX_HEAD_DIM: usize = 1 << 10;
pub const MAX_WIDTH: usize = 1 << 24;
pub const MAX_VOCAB: usize = 1 << 24;

fn ser_arch<S: serde::Serializer>(a: &&'static ArchSpec, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(a.name)
}

impl Config {
    /// Builds the config from a parsed HF config.json; `path` is only used in errors.
    pub fn from_hf_json(v: &Value, path: &Path) -> Result<Self> {
        let bad = |reason: String| Error::BadConfig {
            path: path.into(),
            reason,
        };
        let model_type = v
            .get("model_type")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("no `model_type`".into()))?;
        // nemotron-nas (DeciLM) is llama with per-layer shapes in `block_configs`
        let deci = if model_type == nemotron::MODEL_TYPE {
            let hidden = v
                .get("hidden_size")
                .and_then(Value::as_u64)
                .unwrap_or(0)
                .min(MAX_WIDTH as u64) as usize;
            Some(nemotron::read_shapes(v, hidden).map_err(&bad)?)
        } else {
            None
        };
        let model_type = if deci.is_some() { "llama" } else { model_type };
        if model_type == "gemma3" {
            return Err(bad(
                "model_type `gemma3` is the multimodal Gemma 3 (vision + text): only its text \
                 model is supported (`gemma3_text`, Gemma3ForCausalLM, as Gemma-3-270M/1B ship)"
                    .into(),
            ));
        }
        let arch = ArchSpec::from_model_type(model_type).ok_or_else(|| Error::UnknownArch {
            path: path.into(),
            arch: model_type.into(),
            supported: ArchSpec::supported(),
        })?;
        let usize_key = |k: &str| -> Result<usize> {
            v.get(k)
                .and_then(Value::as_u64)
                .map(|x| x as usize)
                .ok_or_else(|| bad(format!("`{k}` missing or not a non-negative integer")))
        };
        let opt_usize = |k: &str| v.get(k).and_then(Value::as_u64).map(|x| x as usize);
        let opt_bool = |k: &str| v.get(k).and_then(Value::as_bool);
        let act = match v
            .get("hidden_act")
            .or_else(|| v.get("hidden_activation"))
            .and_then(Value::as_str)
        {
            Some(name) => Activation::from_hf(name).ok_or_else(|| {
                bad(format!(
                    "hidden_act `{name}` is not supported (silu, gelu_pytorch_tanh)"
                ))
            })?,
            None => arch.default_act,
        };
        layers::refuse_softcapping(v).map_err(&bad)?;
        let hidden_size = usize_key("hidden_size")?;
        let num_heads = usize_key("num_attention_heads")?;
        let num_kv_heads = match deci {
            Some((Some(groups), _)) => num_heads / groups.max(1),
            _ => opt_usize("num_key_value_heads").unwrap_or(num_heads),
        };
        if num_heads == 0 || num_kv_heads == 0 || num_heads % num_kv_heads != 0 {
            return Err(bad(format!(
                "num_attention_heads {num_heads} is not a positive multiple of num_key_value_heads {num_kv_heads}"
            )));
        }
        let head_dim = match opt_usize("head_dim") {
            Some(d) => d,
            None if hidden_size % num_heads == 0 => hidden_size / num_heads,
            None => {
                return Err(bad(format!(
                    "hidden_size {hidden_size} is not divisible by num_attention_heads {num_heads}"
                )))
            }
        };
        let num_layers = usize_key("num_hidden_layers")?;
        let per_layer = layers::read_per_layer(v, arch, num_layers).map_err(&bad)?;
        // transformers 5 moves rope settings into `rope_parameters` (per layer type for
        // families with sliding and global layers: the global one is `full_attention`)
        let rope = v
            .get("rope_parameters")
            .filter(|r| r.is_object())
            .map(|r| r.get("full_attention").unwrap_or(r));
        let rope_theta = v
            .get("rope_theta")
            .or_else(|| rope.and_then(|r| r.get("rope_theta")))
            .and_then(Value::as_f64)
            .unwrap_or(10000.0);
        let scaling = v.get("rope_scaling").filter(|r| r.is_object()).or(rope);
        let rope_scaling = match scaling {
            Some(s) => parse_rope_scaling(s).map_err(bad)?,
            None => None,
        };
        let attention_bias =
            arch.config_attention_bias && opt_bool("attention_bias").unwrap_or(false);
        let sliding_window = match arch.sliding_window {
            SlidingWindow::Never => None,
            SlidingWindow::WhenSet => opt_usize("sliding_window"),
            SlidingWindow::WhenEnabled => {
                if opt_bool("use_sliding_window").unwrap_or(false) {
                    return Err(bad(
                        "use_sliding_window = true is not supported for this family yet".into(),
                    ));
                }
                None
            }
            SlidingWindow::PerLayer => match per_layer.layer_types.contains(&AttnKind::Sliding) {
                true => Some(usize_key("sliding_window")?),
                false => None,
            },
        };
        let eos_token_ids = match v.get("eos_token_id") {
            Some(Value::Number(n)) => n.as_u64().map(|x| vec![x as u32]).unwrap_or_default(),
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_u64)
                .map(|x| x as u32)
                .collect(),
            _ => vec![],
        };
        let cfg = Config {
            arch,
            vocab_size: usize_key("vocab_size")?,
            hidden_size,
            intermediate_size: match deci {
                Some((_, Some(i))) => i,
                _ => usize_key("intermediate_size")?,
            },
            num_layers,
            num_heads,
            num_kv_heads,
            head_dim,
            rms_norm_eps: v
                .get("rms_norm_eps")
                .and_then(Value::as_f64)
                .unwrap_or(1e-6),
            rope_theta,
            rope_scaling,
            max_position_embeddings: opt_usize("max_position_embeddings").unwrap_or(4096),
            tie_word_embeddings: opt_bool("tie_word_embeddings").unwrap_or(false),
            sliding_window,
            qkv_bias: arch.qkv_bias || attention_bias,
            o_bias: attention_bias,
            mlp_bias: opt_bool("mlp_bias").unwrap_or(false),
            bos_token_id: v
                .get("bos_token_id")
                .and_then(Value::as_u64)
                .map(|x| x as u32),
            eos_token_ids,
            act,
            query_pre_attn_scalar: per_layer.query_pre_attn_scalar,
            layer_types: per_layer.layer_types,
            local_rope: per_layer.local_rope,
        };
        cfg.validate().map_err(bad)?;
        Ok(cfg)
    }

    /// Sanity checks shared by every source: every size positive and below a bound no real
    /// model comes near, so that nothing sized from them overflows or asks for absurd memory
    /// before the tensors are checked against them. (`max_position_embeddings` is left as
    /// is: nothing is sized from it up front.)
    pub(crate) fn validate(&self) -> std::result::Result<(), String> {
        for (name, x, max) in [
            ("vocab_size", self.vocab_size, MAX_VOCAB),
            ("hidden_size", self.hidden_size, MAX_WIDTH),
            ("intermediate_size", self.intermediate_size, MAX_WIDTH),
            ("num_hidden_layers", self.num_layers, MAX_LAYERS),
            ("num_attention_heads", self.num_heads, MAX_HEADS),
            ("num_key_value_heads", self.num_kv_heads, MAX_HEADS),
            ("head_dim", self.head_dim, MAX_HEAD_DIM),
        ] {
            if x == 0 {
                return Err(format!("`{name}` must be positive"));
            }
            if x > max {
                return Err(format!("`{name}` = {x} is larger than {max}"));
            }
        }
        if !self.head_dim.is_multiple_of(2) {
            return Err(format!("head_dim {} must be even for RoPE", self.head_dim));
        }
        if !self.num_heads.is_multiple_of(self.num_kv_heads) {
            return Err(format!(
                "num_attention_heads {} is not a multiple of num_key_value_heads {}",
                self.num_heads, self.num_kv_heads
            ));
        }
        if self.num_heads * self.head_dim > MAX_WIDTH {
            return Err(format!(
                "num_attention_heads {} x head_dim {} is larger than {MAX_WIDTH}",
                self.num_heads, self.head_dim
            ));
        }
        if let Some(w) = self.sliding_window {
            if w == 0 {
                return Err("`sliding_window` must be positive".into());
            }
        }
        check_scaling(self.rope_scaling.as_ref())?;
        if self.rms_norm_eps <= 0.0 || !self.rms_norm_eps.is_finite() {
            return Err(format!(
                "rms_norm_eps {} must be positive",
                self.rms_norm_eps
            ));
        }
        if self.rope_theta <= 0.0 || !self.rope_theta.is_finite() {
            return Err(format!("rope_theta {} must be positive", self.rope_theta));
        }
        self.validate_layers()
    }

    /// Query heads per key/value head.
    pub fn gqa_groups(&self) -> usize {
        self.num_heads / self.num_kv_heads
    }
}

/// Checks the factors of a RoPE scaling.
pub(crate) fn check_scaling(scaling: Option<&RopeScaling>) -> std::result::Result<(), String> {
    match scaling {
        Some(RopeScaling::Linear { factor }) if !(factor.is_finite() && *factor > 0.0) => {
            return Err(format!("rope scaling factor {factor} must be positive"));
        }
        Some(RopeScaling::Llama3 {
            factor,
            low_freq_factor,
            high_freq_factor,
            original_max_position_embeddings,
        }) => {
            let positive = |x: f64| x.is_finite() && x > 0.0;
            if !positive(*factor)
                || !positive(*low_freq_factor)
                || !positive(*high_freq_factor)
                || low_freq_factor >= high_freq_factor
                || *original_max_position_embeddings == 0
            {
                return Err(format!(
                    "llama3 rope scaling needs positive factors with low_freq_factor < high_freq_factor and a positive original_max_position_embeddings (got {factor}, {low_freq_factor}, {high_freq_factor}, {original_max_position_embeddings})"
                ));
            }
        }
        _ => {}
    }
    Ok(())
}

pub(crate) fn parse_rope_scaling(s: &Value) -> std::result::Result<Option<RopeScaling>, String> {
    let kind = s
        .get("rope_type")
        .or_else(|| s.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("default");
    let f = |k: &str| {
        s.get(k)
            .and_then(Value::as_f64)
            .ok_or_else(|| format!("rope scaling `{kind}` needs `{k}`"))
    };
    match kind {
        "default" => Ok(None),
        "linear" => Ok(Some(RopeScaling::Linear {
            factor: f("factor")?,
        })),
        "llama3" => Ok(Some(RopeScaling::Llama3 {
            factor: f("factor")?,
            low_freq_factor: f("low_freq_factor")?,
            high_freq_factor: f("high_freq_factor")?,
            original_max_position_embeddings: f("original_max_position_embeddings")? as usize,
        })),
        other => Err(format!("rope scaling type `{other}` is not supported")),
    }
}

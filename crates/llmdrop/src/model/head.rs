//! The output head: the final norm and the output projection (`lm_head.weight`, or the
//! embedding matrix when the config ties them). The in-memory [`Decoder`](super::Decoder)
//! and the layer-streamed passes load it and compute logits with the same code.

use candle_core::{DType, Tensor};

use super::linear::Linear;
use super::matrix::MatrixWeight;
use super::norm::RmsNorm;
use super::weights::Weights;
use crate::config::Config;
use crate::error::{Error, Result};

pub(crate) const EMBED: &str = "model.embed_tokens.weight";

/// The final norm and the output projection.
#[derive(Debug, Clone)]
pub struct OutputHead {
    pub(crate) norm: RmsNorm,
    pub(crate) lm_head: Linear,
}

impl OutputHead {
    /// Loads the head of `cfg` from `w`. A tied head is `embed` where the caller holds the
    /// embedding matrix already, else the matrix is loaded here as
    /// [`Decoder`](super::Decoder) loads its embedding (the same call, the same bits).
    pub(crate) fn load(w: &Weights, cfg: &Config, embed: Option<&MatrixWeight>) -> Result<Self> {
        Ok(Self {
            norm: load_norm(w, cfg)?,
            lm_head: load_projection(w, cfg, embed)?,
        })
    }

    /// f32 logits (`[b, t, vocab]`) of the residual stream `x` (`[b, t, hidden]`).
    pub fn logits(&self, x: &Tensor) -> Result<Tensor> {
        logits(&self.norm, &self.lm_head, x)
    }

    /// Bytes the head holds (norm and projection).
    pub fn bytes(&self) -> usize {
        self.lm_head.bytes()
            + self.norm.weight.elem_count() * self.norm.weight.dtype().size_in_bytes()
    }
}

pub(crate) fn load_norm(w: &Weights, cfg: &Config) -> Result<RmsNorm> {
    RmsNorm::load(w, "model.norm.weight", cfg.hidden_size, cfg.rms_norm_eps)
}

/// The output projection: `lm_head.weight`, or the embedding matrix when tied (`embed`,
/// loaded when None).
pub(crate) fn load_projection(
    w: &Weights,
    cfg: &Config,
    embed: Option<&MatrixWeight>,
) -> Result<Linear> {
    let (v, h) = (cfg.vocab_size, cfg.hidden_size);
    let name = projection_name(w, cfg)?;
    let weight = match embed {
        Some(e) if name == EMBED => e.clone(),
        _ => w.matrix(name, v, h, true)?,
    };
    Ok(Linear { weight, bias: None })
}

/// The stored matrix the output projection is: `lm_head.weight`, or the embedding
/// matrix when the config ties them.
pub(crate) fn projection_name(w: &Weights, cfg: &Config) -> Result<&'static str> {
    if !cfg.tie_word_embeddings && w.has("lm_head.weight") {
        Ok("lm_head.weight")
    } else if cfg.tie_word_embeddings {
        Ok(EMBED)
    } else {
        Err(Error::MissingTensor {
            path: w.src.path().into(),
            name: "lm_head.weight".into(),
            hint: " (the config says tie_word_embeddings = false)".into(),
        })
    }
}

/// The head's step: final norm, projection, f32.
pub(crate) fn logits(norm: &RmsNorm, lm_head: &Linear, x: &Tensor) -> Result<Tensor> {
    Ok(exact_logits(norm, lm_head, x)?.to_dtype(DType::F32)?)
}

/// The head's step with the logits in f32, or in f64 when computing in f64 (the reference
/// precision keeps its last digits).
pub(crate) fn exact_logits(norm: &RmsNorm, lm_head: &Linear, x: &Tensor) -> Result<Tensor> {
    let y = lm_head.forward(&norm.forward(x)?)?;
    Ok(match y.dtype() {
        DType::F64 => y,
        _ => y.to_dtype(DType::F32)?,
    })
}

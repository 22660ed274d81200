//! Dense linear layers and RMSNorm.

use candle_core::{Module, Tensor};

use super::weights::Weights;
use crate::error::Result;

/// `y = x W^T + b`, `W` stored `[out, in]` as in HF checkpoints.
#[derive(Debug, Clone)]
pub struct Linear {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
}

impl Linear {
    pub fn load(
        w: &Weights,
        prefix: &str,
        in_dim: usize,
        out_dim: usize,
        bias: bool,
    ) -> Result<Self> {
        let weight = w.get(&format!("{prefix}.weight"), &[out_dim, in_dim])?;
        let bias = if bias {
            Some(w.get(&format!("{prefix}.bias"), &[out_dim])?)
        } else {
            None
        };
        Ok(Self { weight, bias })
    }

    /// Bytes of weight and bias.
    pub fn bytes(&self) -> usize {
        let t = |x: &Tensor| x.elem_count() * x.dtype().size_in_bytes();
        t(&self.weight) + self.bias.as_ref().map_or(0, t)
    }

    /// `x`: `[..., in]` -> `[..., out]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims();
        let in_dim = dims[dims.len() - 1];
        let rows = x.elem_count() / in_dim;
        let y = x.reshape((rows, in_dim))?.matmul(&self.weight.t()?)?;
        let y = match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        };
        let mut out = dims.to_vec();
        *out.last_mut().expect("x has at least one dim") = self.weight.dim(0)?;
        Ok(y.reshape(out)?)
    }
}

/// RMSNorm over the last dimension: `x / sqrt(mean(x²) + eps) * weight`, computed in f32.
#[derive(Debug, Clone)]
pub struct RmsNorm {
    pub weight: Tensor,
    pub eps: f32,
}

impl RmsNorm {
    pub fn load(w: &Weights, name: &str, dim: usize, eps: f64) -> Result<Self> {
        Ok(Self {
            weight: w.get(name, &[dim])?,
            eps: eps as f32,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = if x.is_contiguous() {
            x.clone()
        } else {
            x.contiguous()?
        };
        Ok(candle_nn::ops::rms_norm(&x, &self.weight, self.eps)?)
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        Linear::forward(self, x).map_err(candle_core::Error::wrap)
    }
}

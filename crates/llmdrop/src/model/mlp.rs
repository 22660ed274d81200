//! The gated SiLU MLP: `down(silu(gate(x)) * up(x))`.

use candle_core::{DType, Tensor};

use super::linear::Linear;
use super::vexp::silu_mul;
use super::weights::Weights;
use crate::config::Config;
use crate::error::Result;

#[derive(Debug, Clone)]
pub struct Mlp {
    gate: Linear,
    up: Linear,
    down: Linear,
}

impl Mlp {
    /// Loads `model.layers.{i}.mlp.*`.
    pub fn load(w: &Weights, cfg: &Config, prefix: &str) -> Result<Self> {
        let (h, i, b) = (cfg.hidden_size, cfg.intermediate_size, cfg.mlp_bias);
        Ok(Self {
            gate: Linear::load(w, &format!("{prefix}.gate_proj"), h, i, b)?,
            up: Linear::load(w, &format!("{prefix}.up_proj"), h, i, b)?,
            down: Linear::load(w, &format!("{prefix}.down_proj"), i, h, b)?,
        })
    }

    /// Bytes of the three projections.
    pub fn weight_bytes(&self) -> usize {
        self.gate.bytes() + self.up.bytes() + self.down.bytes()
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (g, u) = (self.gate.forward(x)?, self.up.forward(x)?);
        let h = if g.dtype() == DType::F32 && g.device().is_cpu() {
            silu_mul(&g, &u)?
        } else {
            (g.silu()? * u)?
        };
        self.down.forward(&h)
    }
}

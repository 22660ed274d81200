//! The gated MLP: `down(act(gate(x)) * up(x))`, act SiLU (llama, qwen) or GELU-tanh
//! (Gemma).

use std::sync::Arc;

use candle_core::{DType, Tensor};
use llmdrop_kernels::gemm::GatedPair;
use llmdrop_kernels::vexp::silu_mul;

use super::linear::Linear;
use super::matrix::MatrixWeight;
use super::product_op::{product, QGated};
use super::weights::Weights;
use crate::arch::Activation;
use crate::config::Config;
use crate::error::Result;

#[derive(Debug, Clone)]
pub struct Mlp {
    gate_up: GateUp,
    down: Linear,
    act: Activation,
}

/// The gate and up projections.
#[derive(Debug, Clone)]
enum GateUp {
    Separate {
        gate: Linear,
        up: Linear,
    },
    /// Both packed f32 without bias, SiLU: one product with SiLU applied in cache.
    Paired(Arc<GatedPair>),
    /// Both quantized without bias, SiLU: the same, on the integer kernels.
    QuantPaired(Arc<QGated>),
}

impl Mlp {
    /// Loads `model.layers.{i}.mlp.*`.
    pub fn load(w: &Weights, cfg: &Config, prefix: &str) -> Result<Self> {
        let (h, i, b) = (cfg.hidden_size, cfg.intermediate_size, cfg.mlp_bias);
        let gate = Linear::load(w, &format!("{prefix}.gate_proj"), h, i, b)?;
        let up = Linear::load(w, &format!("{prefix}.up_proj"), h, i, b)?;
        let gate_up = match (&gate.weight, &up.weight, &gate.bias, &up.bias) {
            (MatrixWeight::Packed(g), MatrixWeight::Packed(u), None, None)
                if cfg.act == Activation::Silu =>
            {
                GateUp::Paired(Arc::new(GatedPair::new(g, u)))
            }
            (MatrixWeight::Quant(g), MatrixWeight::Quant(u), None, None)
                if cfg.act == Activation::Silu && (g.rows(), g.cols()) == (u.rows(), u.cols()) =>
            {
                GateUp::QuantPaired(Arc::new(QGated {
                    gate: g.clone(),
                    up: u.clone(),
                }))
            }
            _ => GateUp::Separate { gate, up },
        };
        Ok(Self {
            gate_up,
            down: Linear::load(w, &format!("{prefix}.down_proj"), i, h, b)?,
            act: cfg.act,
        })
    }

    /// Bytes of the three projections.
    pub fn weight_bytes(&self) -> usize {
        let gate_up = match &self.gate_up {
            GateUp::Separate { gate, up } => gate.bytes() + up.bytes(),
            GateUp::Paired(p) => p.bytes(),
            GateUp::QuantPaired(p) => p.gate.bytes() + p.up.bytes(),
        };
        gate_up + self.down.bytes()
    }

    /// Whether a projection is a dense candle tensor (see [`Linear::is_dense`]).
    pub(crate) fn has_dense(&self) -> bool {
        let gate_up = match &self.gate_up {
            GateUp::Separate { gate, up } => gate.is_dense() || up.is_dense(),
            GateUp::Paired(_) | GateUp::QuantPaired(_) => false,
        };
        gate_up || self.down.is_dense()
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = match &self.gate_up {
            GateUp::Paired(p) => product(p.as_ref(), x)?,
            GateUp::QuantPaired(p) => product(p.as_ref(), x)?,
            GateUp::Separate { gate, up } => {
                let (g, u) = (gate.forward(x)?, up.forward(x)?);
                match self.act {
                    Activation::Silu if g.dtype() == DType::F32 && g.device().is_cpu() => {
                        silu_mul(&g, &u)?
                    }
                    Activation::Silu => (g.silu()? * u)?,
                    // candle's `gelu` is the tanh approximation (`gelu_pytorch_tanh`)
                    Activation::GeluTanh => (g.gelu()? * u)?,
                }
            }
        };
        self.down.forward(&h)
    }
}

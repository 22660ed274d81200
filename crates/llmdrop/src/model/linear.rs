//! Linear layers: dense, packed f32, packed bf16 or quantized weights.

use candle_core::{DType, Module, Tensor};

use super::matrix::MatrixWeight;
use super::product_op::product;
use super::weights::Weights;
use crate::error::Result;

/// Whether a product of `rows` input rows with dense `w` runs as two halves on two threads:
/// decode-sized inputs (candle's gemm keeps them on one thread) against large matrices.
fn split_matvec(rows: usize, w: &Tensor) -> bool {
    rows <= 4 && w.elem_count() >= 1 << 18 && rayon::current_num_threads() > 1
}

/// `y = x W^T + b`, `W` stored `[out, in]` as in HF checkpoints.
#[derive(Debug, Clone)]
pub struct Linear {
    pub weight: MatrixWeight,
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
        let weight = w.matrix(&format!("{prefix}.weight"), out_dim, in_dim, false)?;
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
        self.weight.bytes() + self.bias.as_ref().map_or(0, t)
    }

    /// Whether the weight is a dense candle tensor: its products may round a row
    /// differently with other rows beside it (the packed and quantized kernels do not).
    pub(crate) fn is_dense(&self) -> bool {
        matches!(self.weight, MatrixWeight::Dense(_))
    }

    /// `x`: `[..., in]` -> `[..., out]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims();
        let in_dim = dims[dims.len() - 1];
        let rows = x.elem_count() / in_dim;
        let x = x.reshape((rows, in_dim))?;
        let y = match &self.weight {
            MatrixWeight::Dense(w) if split_matvec(rows, w) => {
                // candle multiplies one row on one thread: halve the weight rows instead
                let n = w.dim(0)?;
                let half = n / 2;
                let (a, b) = rayon::join(
                    || x.matmul(&w.narrow(0, 0, half)?.t()?),
                    || x.matmul(&w.narrow(0, half, n - half)?.t()?),
                );
                Tensor::cat(&[a?, b?], 1)?
            }
            MatrixWeight::Dense(w) => x.matmul(&w.t()?)?,
            MatrixWeight::Packed(p) => product(p.as_ref(), &x)?,
            // bf16 activations widen exactly; the f32 sums are rounded to the input's dtype
            MatrixWeight::Bf16(b) => {
                product(b.as_ref(), &x.to_dtype(DType::F32)?)?.to_dtype(x.dtype())?
            }
            MatrixWeight::Quant(q) => product(q.as_ref(), &x)?,
        };
        let y = self.add_bias(y)?;
        let mut out = dims.to_vec();
        *out.last_mut().expect("x has at least one dim") = self.weight.rows()?;
        Ok(y.reshape(out)?)
    }

    /// `y` (`[..., rows]`, this layer's product) plus the bias, if there is one.
    pub(crate) fn add_bias(&self, y: Tensor) -> Result<Tensor> {
        Ok(match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        })
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        Linear::forward(self, x).map_err(candle_core::Error::wrap)
    }
}

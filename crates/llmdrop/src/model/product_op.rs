//! llmdrop's own matrix products ([`PackedMatrix`], [`Bf16Matrix`], [`QMatrix`],
//! [`GatedPair`]) as candle operations on f32 tensors, without copying the input.

use std::sync::Arc;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};
use llmdrop_kernels::gemm::bf16::{self, Bf16Matrix};
use llmdrop_kernels::gemm::{self, GatedPair, PackedMatrix};
use llmdrop_kernels::quant::{self, QMatrix};
use llmdrop_kernels::Kernel;

use crate::error::Result;
use crate::tensor_values::with_f32;

/// A `[rows, cols]` weight matrix that computes `x Wᵀ` for row-major f32 `x`.
pub trait Product {
    fn rows(&self) -> usize;
    fn cols(&self) -> usize;
    /// `x`: `[m, cols]` -> `[m, rows]`.
    fn product(&self, x: &[f32]) -> Vec<f32>;
}

impl Product for PackedMatrix {
    fn rows(&self) -> usize {
        PackedMatrix::rows(self)
    }
    fn cols(&self) -> usize {
        PackedMatrix::cols(self)
    }
    fn product(&self, x: &[f32]) -> Vec<f32> {
        gemm::matmul(self, x, Kernel::Auto)
    }
}

/// Activations rounded to bf16 at the product's input, f32 sums and outputs.
impl Product for Bf16Matrix {
    fn rows(&self) -> usize {
        Bf16Matrix::rows(self)
    }
    fn cols(&self) -> usize {
        Bf16Matrix::cols(self)
    }
    fn product(&self, x: &[f32]) -> Vec<f32> {
        // the op passes whole rows of `cols` values (checked in `cpu_fwd`), the only input
        // the kernel refuses
        bf16::matmul(self, x, Kernel::Auto).expect("the op checked the input width")
    }
}

/// `silu(x Gᵀ) · (x Uᵀ)`: `rows` are the intermediate outputs.
impl Product for GatedPair {
    fn rows(&self) -> usize {
        self.outputs()
    }
    fn cols(&self) -> usize {
        GatedPair::cols(self)
    }
    fn product(&self, x: &[f32]) -> Vec<f32> {
        GatedPair::product(self, x, Kernel::Auto)
    }
}

/// `silu(x Gᵀ) · (x Uᵀ)` on quantized gate and up matrices of one shape
/// ([`quant::gated`]): `rows` are the intermediate outputs.
#[derive(Debug)]
pub struct QGated {
    pub gate: Arc<QMatrix>,
    pub up: Arc<QMatrix>,
}

impl Product for QGated {
    fn rows(&self) -> usize {
        self.gate.rows()
    }
    fn cols(&self) -> usize {
        self.gate.cols()
    }
    fn product(&self, x: &[f32]) -> Vec<f32> {
        quant::gated(&self.gate, &self.up, x, Kernel::Auto)
    }
}

impl Product for QMatrix {
    fn rows(&self) -> usize {
        QMatrix::rows(self)
    }
    fn cols(&self) -> usize {
        QMatrix::cols(self)
    }
    fn product(&self, x: &[f32]) -> Vec<f32> {
        quant::matmul(self, x, Kernel::Auto)
    }
}

struct Op<'a, W>(&'a W);

impl<W: Product> CustomOp1 for Op<'_, W> {
    fn name(&self) -> &'static str {
        "llmdrop-matmul"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(v) = s else {
            candle_core::bail!("llmdrop's matmul needs f32 input, got {:?}", s.dtype())
        };
        let Some((start, end)) = l.contiguous_offsets() else {
            candle_core::bail!("llmdrop's matmul needs a contiguous input")
        };
        let mut dims = l.dims().to_vec();
        let k = dims.last().copied().unwrap_or(0);
        if k != self.0.cols() {
            candle_core::bail!("input width {k} != matrix columns {}", self.0.cols())
        }
        let y = self.0.product(&v[start..end]);
        *dims.last_mut().expect("k checked above") = self.0.rows();
        Ok((CpuStorage::F32(y), Shape::from(dims)))
    }
}

/// `x`: f32 `[..., cols]` -> `[..., rows]` (`x Wᵀ`).
pub fn product<W: Product>(w: &W, x: &Tensor) -> Result<Tensor> {
    let x = if x.is_contiguous() {
        x.clone()
    } else {
        x.contiguous()?
    };
    Ok(x.apply_op1_no_bwd(&Op(w))?)
}

/// `x Wᵢᵀ` for quantized matrices of `x`'s width (a layer's query, key and value
/// projections): `x` (f32 on the CPU, `[..., cols]`) is quantized once and the products
/// share one parallel section ([`quant::matmul_shared`]); each output is what
/// [`product`] gives for its matrix alone.
pub fn quant_products(ws: &[&QMatrix], x: &Tensor) -> Result<Vec<Tensor>> {
    let k = x.dims().last().copied().unwrap_or(0);
    if let Some(w) = ws.iter().find(|w| w.cols() != k) {
        return Err(crate::Error::unsupported(
            "quantized products",
            format!("input width {k} != matrix columns {}", w.cols()),
        ));
    }
    let ys = with_f32(x, |v| quant::matmul_shared(ws, v, Kernel::Auto))?;
    ys.into_iter()
        .zip(ws)
        .map(|(y, w)| {
            let mut dims = x.dims().to_vec();
            *dims.last_mut().expect("x has a width") = w.rows();
            Ok(Tensor::from_vec(y, dims, x.device())?)
        })
        .collect()
}

//! [`PackedMatrix`] products on candle tensors.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};

use super::kernel::{matmul, Kernel};
use super::packed::PackedMatrix;
use crate::error::Result;

struct PackedMatMul<'a>(&'a PackedMatrix);

impl CustomOp1 for PackedMatMul<'_> {
    fn name(&self) -> &'static str {
        "llmdrop-packed-matmul"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(v) = s else {
            candle_core::bail!("packed matmul needs f32 input, got {:?}", s.dtype())
        };
        let Some((start, end)) = l.contiguous_offsets() else {
            candle_core::bail!("packed matmul needs a contiguous input")
        };
        let mut dims = l.dims().to_vec();
        let k = dims.last().copied().unwrap_or(0);
        if k != self.0.cols() {
            candle_core::bail!("input width {k} != matrix columns {}", self.0.cols())
        }
        let y = matmul(self.0, &v[start..end], Kernel::Auto);
        *dims.last_mut().expect("k checked above") = self.0.rows();
        Ok((CpuStorage::F32(y), Shape::from(dims)))
    }
}

/// `x`: f32 `[..., cols]` -> `[..., rows]` (`x Wᵀ`).
pub fn packed_matmul(w: &PackedMatrix, x: &Tensor) -> Result<Tensor> {
    let x = if x.is_contiguous() {
        x.clone()
    } else {
        x.contiguous()?
    };
    Ok(x.apply_op1_no_bwd(&PackedMatMul(w))?)
}

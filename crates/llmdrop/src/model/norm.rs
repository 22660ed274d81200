//! RMSNorm over the last dimension, with a vectorized f32 pass on the CPU.
//!
//! candle-nn's CPU RMSNorm sums each row's squares in one sequential chain (the order
//! Rust's `sum` fixes), 576 dependent adds a row for the default model: ~3% of a scoring
//! pass. Here they go through [`dot`]'s 16 running sums, a fixed order that vectorizes.

use std::mem::MaybeUninit;

use candle_core::{CpuStorage, CustomOp2, DType, Layout, Shape, Tensor};
use llmdrop_kernels::dot::dot;
use rayon::prelude::*;

use super::weights::Weights;
use crate::error::Result;

/// Rows per parallel task.
const ROWS_PER_TASK: usize = 64;

/// `x / sqrt(mean(x²) + eps) * weight` over the last dimension, computed in f32 (in f64
/// for f64 inputs).
#[derive(Debug, Clone)]
pub struct RmsNorm {
    pub weight: Tensor,
    /// As the config gives it; rounded to f32 for the f32 computation.
    pub eps: f64,
}

impl RmsNorm {
    pub fn load(w: &Weights, name: &str, dim: usize, eps: f64) -> Result<Self> {
        let weight = if w.arch.norm_plus_one {
            // x · (1 + w), as transformers computes it: 1 added in f32
            let dt = w.dtype;
            let f = Weights {
                dtype: DType::F32,
                ..*w
            };
            f.get(name, &[dim])?.affine(1.0, 1.0)?.to_dtype(dt)?
        } else {
            w.get(name, &[dim])?
        };
        Ok(Self { weight, eps })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = if x.is_contiguous() {
            x.clone()
        } else {
            x.contiguous()?
        };
        if x.dtype() == DType::F32 && x.device().is_cpu() && self.weight.dtype() == DType::F32 {
            return Ok(x.apply_op2_no_bwd(
                &self.weight,
                &RmsNormOp {
                    eps: self.eps as f32,
                },
            )?);
        }
        if x.dtype() == DType::F64 {
            // the reference precision: plain tensor ops (candle-nn has no f64 RMSNorm)
            let ms = x.sqr()?.mean_keepdim(candle_core::D::Minus1)?;
            let inv = (ms + self.eps)?.sqrt()?.recip()?;
            return Ok(x.broadcast_mul(&inv)?.broadcast_mul(&self.weight)?);
        }
        Ok(candle_nn::ops::rms_norm(&x, &self.weight, self.eps as f32)?)
    }
}

/// `out = x · (1 / sqrt(mean(x²) + eps)) · w` for each row of `x` (`w.len()` values), into
/// a buffer that may be unwritten: every value of `out` is written (`out` is as long as
/// `x`, asserted).
fn rms_norm_rows(x: &[f32], w: &[f32], eps: f32, out: &mut [MaybeUninit<f32>]) {
    assert_eq!(x.len(), out.len(), "rms_norm: output length");
    let dim = w.len().max(1);
    let row = |(x, o): (&[f32], &mut [MaybeUninit<f32>])| {
        let inv = 1.0 / (dot(x, x) / dim as f32 + eps).sqrt();
        for ((o, &v), &w) in o.iter_mut().zip(x).zip(w) {
            o.write(v * inv * w);
        }
    };
    if x.len() >= ROWS_PER_TASK * dim * 2 && rayon::current_num_threads() > 1 {
        x.par_chunks(dim)
            .zip(out.par_chunks_mut(dim))
            .with_min_len(ROWS_PER_TASK)
            .for_each(row);
    } else {
        x.chunks(dim).zip(out.chunks_mut(dim)).for_each(row);
    }
}

struct RmsNormOp {
    eps: f32,
}

impl CustomOp2 for RmsNormOp {
    fn name(&self) -> &'static str {
        "llmdrop-rms-norm"
    }

    fn cpu_fwd(
        &self,
        sx: &CpuStorage,
        lx: &Layout,
        sw: &CpuStorage,
        lw: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (CpuStorage::F32(x), CpuStorage::F32(w)) = (sx, sw) else {
            candle_core::bail!("rms_norm needs f32 inputs")
        };
        let (Some((x0, x1)), Some((w0, w1))) = (lx.contiguous_offsets(), lw.contiguous_offsets())
        else {
            candle_core::bail!("rms_norm needs contiguous inputs")
        };
        let dim = *lx.dims().last().unwrap_or(&0);
        if lw.dims() != [dim] {
            candle_core::bail!("rms_norm: weight {:?} for rows of {dim}", lw.dims())
        }
        let (x, w) = (&x[x0..x1], &w[w0..w1]);
        if dim == 0 {
            return Ok((CpuStorage::F32(vec![0f32; x.len()]), lx.shape().clone()));
        }
        // SAFETY: rows of `dim` values (the weight's length, checked above) cover `x`, and
        // `out` is as long: every row of `out` is written
        let out = unsafe {
            llmdrop_kernels::written::written(x.len(), |o| rms_norm_rows(x, w, self.eps, o))
        };
        Ok((CpuStorage::F32(out), lx.shape().clone()))
    }
}

//! Per-token cosine similarity in f32, and running sums in f64.

use candle_core::{DType, Device, Tensor, D};
use llmdrop_kernels::dot::dot;
use rayon::prelude::*;

use crate::error::Result;
use crate::tensor_values::with_f32;

/// Rows per parallel task (each row's result is computed alone, so the split never
/// changes a value).
const ROWS_PER_TASK: usize = 64;

/// Norms below this count as zero: cos(a, b) = a·b / (max(|a|, EPS) · max(|b|, EPS)), as
/// torch's `cosine_similarity` (a zero vector has similarity 0 with anything).
pub const EPS: f64 = 1e-8;

/// Hidden states as `[tokens, hidden]` f32 rows (the decoder's tensor itself where it is
/// already that: no copy), with each row's inverse norm (1 / max(|row|, EPS)) computed
/// once and reused by every similarity it enters.
pub struct Rows {
    t: Tensor,
    pub hidden: usize,
    pub inv_norm: Vec<f32>,
}

impl Rows {
    /// `[…, hidden]` in any float dtype, on any device.
    pub fn new(h: &Tensor) -> Result<Self> {
        let hidden = h.dim(D::Minus1)?;
        let t = h
            .to_dtype(DType::F32)?
            .to_device(&Device::Cpu)?
            .reshape(((), hidden))?
            .contiguous()?;
        let inv_norm = with_f32(&t, |data| {
            data.par_chunks_exact(hidden.max(1))
                .with_min_len(ROWS_PER_TASK)
                .map(|r| 1.0 / (dot(r, r).sqrt() as f64).max(EPS) as f32)
                .collect()
        })?;
        Ok(Self {
            t,
            hidden,
            inv_norm,
        })
    }

    pub fn tokens(&self) -> usize {
        self.inv_norm.len()
    }

    /// Per-row cosine similarity with `other`.
    pub fn cosines(&self, other: &Rows) -> Result<Vec<f32>> {
        with_f32(&self.t, |a| {
            with_f32(&other.t, |b| {
                a.par_chunks_exact(self.hidden.max(1))
                    .zip(b.par_chunks_exact(other.hidden.max(1)))
                    .zip(self.inv_norm.par_iter().zip(&other.inv_norm))
                    .with_min_len(ROWS_PER_TASK)
                    .map(|((a, b), (ia, ib))| dot(a, b) * ia * ib)
                    .collect()
            })
        })?
    }

    /// Writes the rows scaled to unit length into `out` (`tokens * hidden` values).
    pub fn write_units(&self, out: &mut [f32]) -> Result<()> {
        with_f32(&self.t, |data| {
            out.par_chunks_exact_mut(self.hidden.max(1))
                .zip(data.par_chunks_exact(self.hidden.max(1)))
                .zip(&self.inv_norm)
                .with_min_len(ROWS_PER_TASK)
                .for_each(|((u, r), &s)| u.iter_mut().zip(r).for_each(|(u, x)| *u = x * s));
        })
    }
}

/// Per-row cosine similarity of two `[tokens, hidden]` tensors.
#[cfg(test)]
pub fn row_cosines(a: &Tensor, b: &Tensor) -> Result<Vec<f32>> {
    Rows::new(a)?.cosines(&Rows::new(b)?)
}

/// Running mean of per-token similarities.
#[derive(Debug, Clone, Copy, Default)]
pub struct CosSum {
    pub sum: f64,
    pub count: u64,
}

impl CosSum {
    pub fn add(&mut self, cos: &[f32]) {
        self.sum += cos.iter().map(|&c| c as f64).sum::<f64>();
        self.count += cos.len() as u64;
    }

    /// Adds another running sum's observations.
    pub fn merge(&mut self, o: &CosSum) {
        self.sum += o.sum;
        self.count += o.count;
    }

    /// The mean; 1 (the module changes nothing) when nothing was observed, i.e. the
    /// module is dropped.
    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            1.0
        } else {
            self.sum / self.count as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosines_and_zero_rows() {
        let a = Tensor::new(&[[1f32, 0.0], [3.0, 4.0], [0.0, 0.0]], &Device::Cpu).unwrap();
        let b = Tensor::new(&[[0f32, 2.0], [6.0, 8.0], [1.0, 1.0]], &Device::Cpu).unwrap();
        let c = row_cosines(&a, &b).unwrap();
        assert!((c[0] - 0.0).abs() < 1e-7);
        assert!((c[1] - 1.0).abs() < 1e-6);
        assert_eq!(c[2], 0.0);
        let mut s = CosSum::default();
        assert_eq!(s.mean(), 1.0);
        s.add(&c);
        assert!((s.mean() - 1.0 / 3.0).abs() < 1e-6);
    }
}

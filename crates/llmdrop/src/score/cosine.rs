//! Per-token cosine similarity in f32, and running sums in f64.

use candle_core::{DType, Tensor, D};

use rayon::prelude::*;

use crate::error::Result;

/// Rows per parallel task (each row's result is computed alone, so the split never
/// changes a value).
const ROWS_PER_TASK: usize = 64;

/// Norms below this count as zero: cos(a, b) = a·b / (max(|a|, EPS) · max(|b|, EPS)), as
/// torch's `cosine_similarity` (a zero vector has similarity 0 with anything).
pub const EPS: f64 = 1e-8;

/// `[…, hidden]` -> `[tokens, hidden]` in f32.
pub fn rows_f32(h: &Tensor) -> Result<Tensor> {
    let hidden = h.dim(D::Minus1)?;
    Ok(h.to_dtype(DType::F32)?.reshape(((), hidden))?)
}

/// Rows scaled to unit length (rows with norm < EPS are scaled by 1/EPS, as torch does).
pub fn unit_rows(x: &Tensor) -> Result<Tensor> {
    let norm = x.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(EPS, f64::INFINITY)?;
    Ok(x.broadcast_div(&norm)?)
}

/// Hidden states on the host, `[tokens, hidden]` row-major f32, with each row's inverse
/// norm (1 / max(|row|, EPS)) computed once and reused by every similarity it enters.
pub struct Rows {
    pub data: Vec<f32>,
    pub hidden: usize,
    pub inv_norm: Vec<f32>,
}

impl Rows {
    /// `[…, hidden]` in any float dtype.
    pub fn new(h: &Tensor) -> Result<Self> {
        let hidden = h.dim(D::Minus1)?;
        let data = h.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        let inv_norm = data
            .par_chunks_exact(hidden.max(1))
            .with_min_len(ROWS_PER_TASK)
            .map(|r| 1.0 / (dot(r, r).sqrt() as f64).max(EPS) as f32)
            .collect();
        Ok(Self {
            data,
            hidden,
            inv_norm,
        })
    }

    pub fn tokens(&self) -> usize {
        self.inv_norm.len()
    }

    /// Per-row cosine similarity with `other`.
    pub fn cosines(&self, other: &Rows) -> Vec<f32> {
        self.data
            .par_chunks_exact(self.hidden.max(1))
            .zip(other.data.par_chunks_exact(other.hidden.max(1)))
            .zip(self.inv_norm.par_iter().zip(&other.inv_norm))
            .with_min_len(ROWS_PER_TASK)
            .map(|((a, b), (ia, ib))| dot(a, b) * ia * ib)
            .collect()
    }

    /// The rows scaled to unit length, as a `[tokens, hidden]` tensor.
    pub fn unit_tensor(&self, device: &candle_core::Device) -> Result<Tensor> {
        let mut v = vec![0f32; self.data.len()];
        v.par_chunks_exact_mut(self.hidden.max(1))
            .zip(self.data.par_chunks_exact(self.hidden.max(1)))
            .zip(&self.inv_norm)
            .with_min_len(ROWS_PER_TASK)
            .for_each(|((u, r), &s)| u.iter_mut().zip(r).for_each(|(u, x)| *u = x * s));
        Ok(Tensor::from_vec(v, (self.tokens(), self.hidden), device)?)
    }
}

/// Dot product with 8 independent f32 accumulators (vectorises; order fixed, so results
/// are reproducible).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

/// Per-row cosine similarity of two `[tokens, hidden]` f32 tensors.
pub fn row_cosines(a: &Tensor, b: &Tensor) -> Result<Vec<f32>> {
    Ok(Rows::new(a)?.cosines(&Rows::new(b)?))
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
    use candle_core::Device;

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

//! Activations quantized per 32-element block to i8, as the kernels consume them.

use super::matrix::BLOCK;

/// `rows` activation rows of `cols` values: `x ≈ d * q` per block, and `s = d * Σq`
/// (the block sum the Q4 offset and the Q8 unsigned shift need).
#[derive(Debug, Clone)]
pub struct QActs {
    pub(crate) cols: usize,
    pub(crate) q: Vec<i8>,
    pub(crate) d: Vec<f32>,
    pub(crate) s: Vec<f32>,
}

impl QActs {
    /// Quantizes row-major `x` (`rows * cols` values, `cols` a multiple of 32) with
    /// `d = amax / 127` per block, rounded to nearest. A block holding NaN or infinity gets
    /// a NaN scale, so the outputs it feeds are NaN as they would be in f32.
    pub fn quantize(x: &[f32], cols: usize) -> Self {
        debug_assert!(cols % BLOCK == 0 && x.len() % cols == 0);
        let blocks = x.len() / BLOCK;
        let mut q = vec![0i8; x.len()];
        let mut d = vec![0f32; blocks];
        let mut s = vec![0f32; blocks];
        for (b, (xb, qb)) in x
            .chunks_exact(BLOCK)
            .zip(q.chunks_exact_mut(BLOCK))
            .enumerate()
        {
            let amax = xb.iter().fold(0f32, |a, v| a.max(v.abs()));
            let db = amax / 127.0;
            let id = if db > 0.0 { 1.0 / db } else { 0.0 };
            let mut sum = 0i32;
            for (o, v) in qb.iter_mut().zip(xb) {
                let r = (v * id).round() as i32;
                *o = r as i8;
                sum += r;
            }
            // a NaN or infinity poisons its block's outputs, as it would in f32
            let finite = amax.is_finite() && !xb.iter().any(|v| v.is_nan());
            d[b] = if finite { db } else { f32::NAN };
            s[b] = d[b] * sum as f32;
        }
        Self { cols, q, d, s }
    }

    /// The values the quants stand for, row-major.
    pub fn dequantize(&self) -> Vec<f32> {
        self.q
            .chunks_exact(BLOCK)
            .zip(&self.d)
            .flat_map(|(qb, &d)| qb.iter().map(move |&q| d * q as f32))
            .collect()
    }

    pub fn rows(&self) -> usize {
        self.q.len() / self.cols
    }
}

//! A weight matrix as held: dense, packed f32, or quantized blocks; its row lookups.

use std::sync::Arc;

use candle_core::Tensor;
use llmdrop_kernels::gemm::PackedMatrix;
use llmdrop_kernels::quant::QMatrix;

use crate::error::Result;

/// A `[out, in]` weight matrix: a dense tensor, f32 packed for the AVX-512 kernel, or
/// quantized blocks (the latter two shared, so a tied lm_head and embedding hold one copy).
#[derive(Debug, Clone)]
pub enum MatrixWeight {
    Dense(Tensor),
    Packed(Arc<PackedMatrix>),
    Quant(Arc<QMatrix>),
}

impl MatrixWeight {
    pub fn rows(&self) -> Result<usize> {
        Ok(match self {
            MatrixWeight::Dense(t) => t.dim(0)?,
            MatrixWeight::Packed(p) => p.rows(),
            MatrixWeight::Quant(q) => q.rows(),
        })
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        match self {
            MatrixWeight::Dense(t) => t.elem_count() * t.dtype().size_in_bytes(),
            MatrixWeight::Packed(p) => p.bytes(),
            MatrixWeight::Quant(q) => q.bytes(),
        }
    }

    /// Rows `ids` (`[n]`, u32) as `[n, cols]`: the embedding lookup.
    pub fn rows_of(&self, ids: &Tensor) -> Result<Tensor> {
        match self {
            MatrixWeight::Dense(t) => Ok(t.embedding(ids)?),
            MatrixWeight::Packed(p) => gather(ids, p.rows(), p.cols(), |i, r| p.row(i, r)),
            MatrixWeight::Quant(q) => {
                gather(ids, q.rows(), q.cols(), |i, r| q.dequantize_row(i, r))
            }
        }
    }
}

/// Rows `ids` of a `[rows, cols]` matrix whose row `i` `fill(i, out)` writes.
fn gather(
    ids: &Tensor,
    rows: usize,
    cols: usize,
    fill: impl Fn(usize, &mut [f32]),
) -> Result<Tensor> {
    let device = ids.device().clone();
    let ids = ids.to_vec1::<u32>()?;
    let mut out = vec![0f32; ids.len() * cols];
    for (&i, row) in ids.iter().zip(out.chunks_mut(cols.max(1))) {
        if i as usize >= rows {
            return Err(crate::Error::TokenOutOfRange {
                id: i.into(),
                vocab: rows,
            });
        }
        fill(i as usize, row);
    }
    Ok(Tensor::from_vec(out, (ids.len(), cols), &device)?)
}

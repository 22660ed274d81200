//! A weight matrix as held: dense, packed f32, packed bf16, or quantized blocks; its row
//! lookups.

use std::sync::Arc;

use candle_core::{DType, Tensor};
use llmdrop_kernels::gemm::bf16::Bf16Matrix;
use llmdrop_kernels::gemm::PackedMatrix;
use llmdrop_kernels::quant::QMatrix;

use crate::error::Result;

/// A `[out, in]` weight matrix: a dense tensor, f32 packed for the AVX-512 kernel, bf16
/// packed for the AVX-512 BF16 kernel (`--dtype bf16`), or quantized blocks (the latter
/// three shared, so a tied lm_head and embedding hold one copy).
#[derive(Debug, Clone)]
pub enum MatrixWeight {
    Dense(Tensor),
    Packed(Arc<PackedMatrix>),
    Bf16(Arc<Bf16Matrix>),
    Quant(Arc<QMatrix>),
}

impl MatrixWeight {
    pub fn rows(&self) -> Result<usize> {
        Ok(match self {
            MatrixWeight::Dense(t) => t.dim(0)?,
            MatrixWeight::Packed(p) => p.rows(),
            MatrixWeight::Bf16(b) => b.rows(),
            MatrixWeight::Quant(q) => q.rows(),
        })
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        match self {
            MatrixWeight::Dense(t) => t.elem_count() * t.dtype().size_in_bytes(),
            MatrixWeight::Packed(p) => p.bytes(),
            MatrixWeight::Bf16(b) => b.bytes(),
            MatrixWeight::Quant(q) => q.bytes(),
        }
    }

    /// Rows `ids` (`[n]`, u32) as `[n, cols]`: the embedding lookup (bf16 rows as bf16,
    /// the others as f32).
    pub fn rows_of(&self, ids: &Tensor) -> Result<Tensor> {
        match self {
            MatrixWeight::Dense(t) => Ok(t.embedding(ids)?),
            MatrixWeight::Packed(p) => gather(ids, p.rows(), p.cols(), |i, r| p.row(i, r)),
            MatrixWeight::Bf16(b) => {
                let mut row = vec![half::bf16::ZERO; b.cols()];
                let rows = gather(ids, b.rows(), b.cols(), |i, out| {
                    b.row(i, &mut row);
                    for (o, v) in out.iter_mut().zip(&row) {
                        *o = v.to_f32();
                    }
                })?;
                // widened and narrowed again: the stored values
                Ok(rows.to_dtype(DType::BF16)?)
            }
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
    mut fill: impl FnMut(usize, &mut [f32]),
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

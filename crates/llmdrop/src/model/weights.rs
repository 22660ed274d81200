//! Checked access to a [`WeightSource`]: every tensor's shape is checked against the config.

use std::sync::Arc;

use candle_core::{CpuStorage, DType, Device, Storage, Tensor};

use super::linear::MatrixWeight;
use crate::error::{Error, Result};
use crate::gemm::{self, PackedMatrix};
use crate::io::WeightSource;
use crate::quant::{QKind, QMatrix, QuantMode, Stored};

/// A weight source plus the dtype and device tensors are loaded to, and the quantized
/// kind matrices are held in (if any).
pub struct Weights<'a> {
    pub src: &'a dyn WeightSource,
    pub dtype: DType,
    pub device: &'a Device,
    pub quant: Option<QuantMode>,
}

impl Weights<'_> {
    /// Loads the `[rows, cols]` matrix `name`, quantized as the mode asks. GGUF blocks
    /// of the kind asked for are repacked as stored; anything else is read as f32 and
    /// quantized. `head`: the embedding / lm_head matrix.
    pub fn matrix(&self, name: &str, rows: usize, cols: usize, head: bool) -> Result<MatrixWeight> {
        let mode = match self.quant {
            Some(m) if QMatrix::fits(cols) => m,
            _ => return self.dense(name, rows, cols),
        };
        let stored = self.src.ggml_type(name).map_or(Stored::Float, Stored::of);
        let Some(kind) = mode.kind(stored, head) else {
            return self.dense(name, rows, cols);
        };
        // blocks of the kind asked for are kept as stored
        let same = matches!(
            (kind, stored),
            (QKind::Q8, Stored::Q8) | (QKind::Q4, Stored::Q4)
        );
        if same {
            if let Some(q) = self.stored_blocks(name, rows, cols)? {
                return Ok(q);
            }
        }
        let t = self.get(name, &[rows, cols])?.to_dtype(DType::F32)?;
        if mode == QuantMode::Q4K && kind == QKind::Q4 && cols.is_multiple_of(256) {
            use candle_core::quantized::{GgmlDType, QTensor};
            let g = QTensor::quantize(&t, GgmlDType::Q4K)?;
            let q = QMatrix::from_ggml(GgmlDType::Q4K, &g.data()?, rows, cols, None)
                .map_err(|e| self.bad(name, e))?
                .ok_or_else(|| self.bad(name, Error::Input("Q4_K blocks did not repack".into())))?;
            return Ok(MatrixWeight::Quant(Arc::new(q)));
        }
        let q = QMatrix::quantize(kind, &t.flatten_all()?.to_vec1::<f32>()?, rows, cols)
            .map_err(|e| self.bad(name, e))?;
        Ok(MatrixWeight::Quant(Arc::new(q)))
    }

    /// A `[rows, cols]` table only looked up by row (embeddings without an output head):
    /// GGUF blocks that repack exactly stay as stored, anything else loads as
    /// [`Weights::matrix`] does.
    pub fn rows_table(&self, name: &str, rows: usize, cols: usize) -> Result<MatrixWeight> {
        // quantized rows come out f32: kept as stored only where f32 is the compute type
        if QMatrix::fits(cols) && self.device.is_cpu() && self.dtype == DType::F32 {
            if let Some(q) = self.stored_blocks(name, rows, cols)? {
                return Ok(q);
            }
        }
        self.matrix(name, rows, cols, true)
    }

    /// The GGUF blocks of `name` repacked as stored (data read once, never dequantized),
    /// if the file stores it `[rows, cols]` in a type that repacks exactly.
    fn stored_blocks(&self, name: &str, rows: usize, cols: usize) -> Result<Option<MatrixWeight>> {
        if self.src.shape(name).as_deref() != Some(&[rows, cols][..]) {
            return Ok(None);
        }
        let Some(g) = self.src.load_ggml(name)? else {
            return Ok(None);
        };
        let q = QMatrix::from_ggml(g.dtype, &g.data, rows, cols, g.row_order.as_deref())
            .map_err(|e| self.bad(name, e))?;
        Ok(q.map(|q| MatrixWeight::Quant(Arc::new(q))))
    }

    /// A float matrix: packed for the AVX-512 kernel when it is f32 and the CPU has one,
    /// else a candle tensor.
    fn dense(&self, name: &str, rows: usize, cols: usize) -> Result<MatrixWeight> {
        let t = self.get(name, &[rows, cols])?;
        if t.dtype() != DType::F32 || !self.device.is_cpu() || !gemm::available() {
            return Ok(MatrixWeight::Dense(t));
        }
        // packed straight from the loaded tensor's storage (no intermediate copy)
        let packed = {
            let (storage, layout) = t.storage_and_layout();
            match (&*storage, layout.contiguous_offsets()) {
                (Storage::Cpu(CpuStorage::F32(v)), Some((a, b))) => {
                    PackedMatrix::pack(&v[a..b], rows, cols)
                }
                _ => PackedMatrix::pack(&t.flatten_all()?.to_vec1::<f32>()?, rows, cols),
            }
        };
        drop(t);
        Ok(MatrixWeight::Packed(Arc::new(packed)))
    }

    fn bad(&self, name: &str, e: Error) -> Error {
        Error::BadTensor {
            path: self.src.path().into(),
            name: name.into(),
            reason: e.to_string(),
        }
    }

    /// Loads `name`, which must have shape `shape`.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let found = self.src.shape(name).ok_or_else(|| self.missing(name))?;
        if found != shape {
            return Err(Error::TensorShape {
                path: self.src.path().into(),
                name: name.into(),
                expected: shape.to_vec(),
                found,
            });
        }
        self.src.load(name, self.dtype, self.device)
    }

    /// Loads `name` if the source has it.
    pub fn get_opt(&self, name: &str, shape: &[usize]) -> Result<Option<Tensor>> {
        if self.src.shape(name).is_some() {
            self.get(name, shape).map(Some)
        } else {
            Ok(None)
        }
    }

    pub fn has(&self, name: &str) -> bool {
        self.src.shape(name).is_some()
    }

    fn missing(&self, name: &str) -> Error {
        // "did you mean": the stored name sharing the longest suffix with the wanted one.
        let names = self.src.tensors();
        let best = names
            .iter()
            .map(|t| {
                let common = t
                    .name
                    .chars()
                    .rev()
                    .zip(name.chars().rev())
                    .take_while(|(a, b)| a == b)
                    .count();
                (common, &t.name)
            })
            .max_by_key(|(c, _)| *c)
            .filter(|(c, _)| *c >= 6);
        Error::MissingTensor {
            path: self.src.path().into(),
            name: name.into(),
            hint: best
                .map(|(_, n)| format!(" (did you mean `{n}`?)"))
                .unwrap_or_default(),
        }
    }
}

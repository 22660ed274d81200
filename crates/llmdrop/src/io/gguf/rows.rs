//! Reading some rows of a GGUF matrix (the embedding rows of the calibration tokens), and
//! letting the page cache drop what a layer-streamed pass has read.

use std::os::unix::fs::FileExt;

use candle_core::{DType, Device, Tensor};

use super::GgufSource;
use crate::error::{Error, Result};
use crate::io::GgmlRows;

impl GgufSource {
    /// The whole tensor `gguf_name`, dequantized to f32.
    pub(super) fn read_f32(&self, gguf_name: &str) -> Result<Tensor> {
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        let q = self
            .content
            .tensor(&mut *file, gguf_name, &Device::Cpu)
            .map_err(|e| Error::BadTensor {
                path: self.path.clone(),
                name: gguf_name.into(),
                reason: e.to_string(),
            })?;
        Ok(q.dequantize(&Device::Cpu)?)
    }

    /// Rows `ids` of the matrix `name` as stored, read alone from the file; None where
    /// the rows cannot be read alone (a q/k projection whose rows the converter permuted,
    /// a tensor that is not a matrix of whole blocks per row).
    pub(super) fn read_rows(&self, name: &str, ids: &[usize]) -> Result<Option<GgmlRows>> {
        if self.qk_heads(name).is_some() {
            return Ok(None);
        }
        let g = self.gguf_name(name)?;
        let info = &self.content.tensor_infos[&g];
        let &[rows, cols] = info.shape.dims() else {
            return Ok(None);
        };
        let dtype = info.ggml_dtype;
        if !cols.is_multiple_of(dtype.block_size()) {
            return Ok(None);
        }
        let n = cols / dtype.block_size() * dtype.type_size();
        let start = self.content.tensor_data_offset + info.offset;
        let file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        let mut data = vec![0u8; ids.len() * n];
        // consecutive rows (a slice of the output head): one read
        let run = ids.windows(2).all(|p| p[1] == p[0] + 1);
        if let (true, Some(&a), Some(&b)) = (run, ids.first(), ids.last()) {
            if b < rows {
                file.read_exact_at(&mut data, start + (a * n) as u64)
                    .map_err(|e| Error::io(&self.path, e))?;
                return Ok(Some(GgmlRows {
                    dtype,
                    rows: ids.len(),
                    cols,
                    data,
                    row_order: None,
                }));
            }
        }
        for (&i, out) in ids.iter().zip(data.chunks_mut(n.max(1))) {
            if i >= rows {
                return Err(Error::TokenOutOfRange {
                    id: i as u64,
                    vocab: rows,
                });
            }
            file.read_exact_at(out, start + (i * n) as u64)
                .map_err(|e| Error::io(&self.path, e))?;
        }
        Ok(Some(GgmlRows {
            dtype,
            rows: ids.len(),
            cols,
            data,
            row_order: None,
        }))
    }

    /// Rows `ids` of `name` converted as [`crate::io::WeightSource::load`] converts the
    /// whole matrix: dequantized block by block, so each row is the same values.
    pub(super) fn rows_as(
        &self,
        name: &str,
        ids: &[usize],
        dtype: DType,
        device: &Device,
    ) -> Result<Tensor> {
        let Some(r) = self.read_rows(name, ids)? else {
            use crate::io::WeightSource;
            return crate::io::select_rows(self.load(name, dtype, device)?, ids);
        };
        let q = candle_core::quantized::ggml_file::qtensor_from_ggml(
            r.dtype,
            &r.data,
            vec![r.rows, r.cols],
            &Device::Cpu,
        )?;
        let mut t = q.dequantize(&Device::Cpu)?;
        if self.stored_plus_one(name) {
            t = t.affine(1.0, -1.0)?;
        }
        Ok(t.to_dtype(dtype)?.to_device(device)?)
    }

    /// Asks the page cache to let the stored bytes of `names` go.
    pub(super) fn drop_cached(&self, names: &[String]) {
        let file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        for name in names {
            let Some(info) = crate::io::names::hf_to_gguf(self.arch, name)
                .and_then(|g| self.content.tensor_infos.get(&g))
            else {
                continue;
            };
            let d = info.ggml_dtype;
            let bytes = info.shape.elem_count() / d.block_size() * d.type_size();
            let start = self.content.tensor_data_offset + info.offset;
            crate::io::release::drop_cached(&file, start, bytes as u64);
        }
    }
}

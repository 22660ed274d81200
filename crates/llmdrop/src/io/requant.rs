//! A float model's weights as a GGUF export stores them: every tensor quantized to its
//! GGUF type ([`crate::formats::gguf_types::stored_type`]) and dequantized back, in memory,
//! a tensor (or the rows asked for) at a time. The export's reload check runs this view to
//! know the logits the written file must give, exactly; types quantize row by row, so rows
//! read alone are the whole tensor's rows, and GGUF's q/k row order (a permutation of
//! whole rows) changes nothing.

use std::path::Path;

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};

use super::{TensorMeta, WeightSource};
use crate::error::{Error, Result};
use crate::formats::gguf_types::stored_type;

/// f32 bytes of the rows rounded at once.
const SLICE_BYTES: usize = 64 << 20;

/// `base`'s tensors, each rounded through the GGUF type a `quant` export stores it as.
pub(crate) struct RequantView<W> {
    pub base: W,
    pub quant: Option<GgmlDType>,
}

impl<W: WeightSource> RequantView<W> {
    /// `t` (f32, `shape` the tensor's whole shape) quantized and dequantized.
    fn round(&self, name: &str, shape: &[usize], t: Tensor) -> Result<Tensor> {
        let dt = stored_type(shape, self.quant);
        if dt == GgmlDType::F32 {
            return Ok(t);
        }
        let q = QTensor::quantize(&t, dt).map_err(|e| Error::BadTensor {
            path: self.base.path().into(),
            name: name.into(),
            reason: format!("does not quantize as {dt:?}: {e}"),
        })?;
        Ok(q.dequantize(&Device::Cpu)?)
    }

    /// The `[rows, cols]` matrix `name` rounded about `slice_bytes` of f32 rows at a time.
    fn rounded_matrix(
        &self,
        name: &str,
        rows: usize,
        cols: usize,
        slice_bytes: usize,
    ) -> Result<Tensor> {
        let step = (slice_bytes / (4 * cols.max(1))).max(1);
        let mut out = Vec::with_capacity(rows * cols);
        for start in (0..rows).step_by(step) {
            let ids: Vec<usize> = (start..(start + step).min(rows)).collect();
            let part = self.base.load_rows(name, &ids, DType::F32, &Device::Cpu)?;
            let part = self.round(name, &[rows, cols], part)?;
            out.extend(part.flatten_all()?.to_vec1::<f32>()?);
        }
        Ok(Tensor::from_vec(out, (rows, cols), &Device::Cpu)?)
    }

    fn shape_of(&self, name: &str) -> Result<Vec<usize>> {
        self.base.shape(name).ok_or_else(|| Error::MissingTensor {
            path: self.base.path().into(),
            name: name.into(),
            hint: String::new(),
        })
    }
}

impl<W: WeightSource> WeightSource for RequantView<W> {
    fn path(&self) -> &Path {
        self.base.path()
    }
    fn tensors(&self) -> Vec<TensorMeta> {
        self.base.tensors()
    }
    fn shape(&self, name: &str) -> Option<Vec<usize>> {
        self.base.shape(name)
    }
    /// A matrix is rounded a slice of rows at a time into the result: memory holds the
    /// result and one slice, not the f32 tensor, its blocks and its rounding at once.
    fn load(&self, name: &str, dtype: DType, device: &Device) -> Result<Tensor> {
        let shape = self.shape_of(name)?;
        let t = match shape.as_slice() {
            &[rows, cols] => self.rounded_matrix(name, rows, cols, SLICE_BYTES)?,
            _ => {
                let t = self.base.load(name, DType::F32, &Device::Cpu)?;
                self.round(name, &shape, t)?
            }
        };
        Ok(t.to_dtype(dtype)?.to_device(device)?)
    }
    fn load_rows(
        &self,
        name: &str,
        ids: &[usize],
        dtype: DType,
        device: &Device,
    ) -> Result<Tensor> {
        let shape = self.shape_of(name)?;
        let t = self.base.load_rows(name, ids, DType::F32, &Device::Cpu)?;
        Ok(self
            .round(name, &shape, t)?
            .to_dtype(dtype)?
            .to_device(device)?)
    }
    fn release(&self, names: &[String]) {
        self.base.release(names)
    }

    fn prefetch(&self, names: &[String]) {
        self.base.prefetch(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::safetensors::SafetensorsSource;

    /// Slices of a few rows round to the whole matrix's rounding, bit for bit, and rows
    /// read alone are its rows; vectors stay as stored (f32).
    #[test]
    fn slices_and_rows_round_as_the_whole_tensor() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tiny/qwen2");
        let view = RequantView {
            base: SafetensorsSource::open_dir(&dir).unwrap(),
            quant: Some(GgmlDType::Q4_0),
        };
        let bits = |t: &Tensor| -> Vec<u32> {
            t.flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
                .iter()
                .map(|x| x.to_bits())
                .collect()
        };
        let name = "model.layers.0.mlp.down_proj.weight";
        let &[rows, cols] = view.shape(name).unwrap().as_slice() else {
            panic!()
        };
        let whole = view.base.load(name, DType::F32, &Device::Cpu).unwrap();
        let want = QTensor::quantize(&whole, GgmlDType::Q4_0)
            .unwrap()
            .dequantize(&Device::Cpu)
            .unwrap();
        assert_ne!(bits(&want), bits(&whole), "Q4_0 rounds");
        for slice in [4 * cols, 4 * cols * 3, 1 << 30] {
            let got = view.rounded_matrix(name, rows, cols, slice).unwrap();
            assert_eq!(bits(&got), bits(&want), "slices of {slice} bytes");
        }
        let rows_got = view
            .load_rows(name, &[5, 1], DType::F32, &Device::Cpu)
            .unwrap();
        let rows_want = crate::io::select_rows(want, &[5, 1]).unwrap();
        assert_eq!(bits(&rows_got), bits(&rows_want));
        let norm = "model.norm.weight";
        let n = view.load(norm, DType::F32, &Device::Cpu).unwrap();
        assert_eq!(
            bits(&n),
            bits(&view.base.load(norm, DType::F32, &Device::Cpu).unwrap())
        );
    }
}

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
    fn load(&self, name: &str, dtype: DType, device: &Device) -> Result<Tensor> {
        let shape = self.shape_of(name)?;
        let t = self.base.load(name, DType::F32, &Device::Cpu)?;
        Ok(self
            .round(name, &shape, t)?
            .to_dtype(dtype)?
            .to_device(device)?)
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
}

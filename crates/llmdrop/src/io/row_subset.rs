//! A view of a weight source in which one `[rows, cols]` matrix holds only some of its
//! rows: the embedding table of a layer-streamed pass, read for the calibration tokens
//! alone and then loaded by the same code as the whole table (the same conversion, the
//! same packing, so each row is bit for bit the row the whole table gives).

use std::path::Path;

use candle_core::{DType, Device, Tensor};

use super::{GgmlRows, TensorMeta, WeightSource};
use crate::error::Result;

/// `inner`, with the matrix `name` (of shape `[rows, cols]`) cut to rows `ids`.
pub(crate) struct RowSubset<'a> {
    pub inner: &'a dyn WeightSource,
    pub name: &'a str,
    /// The matrix's full shape, as the config implies it.
    pub full: [usize; 2],
    pub ids: &'a [usize],
}

impl WeightSource for RowSubset<'_> {
    fn path(&self) -> &Path {
        self.inner.path()
    }

    fn tensors(&self) -> Vec<TensorMeta> {
        self.inner.tensors()
    }

    fn shape(&self, name: &str) -> Option<Vec<usize>> {
        let s = self.inner.shape(name)?;
        // a matrix of another shape stays as stored: the load reports the mismatch
        Some(match name == self.name && s == self.full {
            true => vec![self.ids.len(), self.full[1]],
            false => s,
        })
    }

    fn load(&self, name: &str, dtype: DType, device: &Device) -> Result<Tensor> {
        match name == self.name {
            true => self.inner.load_rows(name, self.ids, dtype, device),
            false => self.inner.load(name, dtype, device),
        }
    }

    fn ggml_type(&self, name: &str) -> Option<candle_core::quantized::GgmlDType> {
        self.inner.ggml_type(name)
    }

    fn load_ggml(&self, name: &str) -> Result<Option<GgmlRows>> {
        match name == self.name {
            true => self.inner.load_ggml_rows(name, self.ids),
            false => self.inner.load_ggml(name),
        }
    }

    fn release(&self, names: &[String]) {
        self.inner.release(names)
    }

    fn prefetch(&self, names: &[String]) {
        self.inner.prefetch(names)
    }
}

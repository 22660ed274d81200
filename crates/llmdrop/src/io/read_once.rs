//! A view of a weight source whose every read hands the tensor's stored pages back to the
//! kernel as soon as the tensor is converted: a layer-streamed load holds, besides the
//! layer as converted, at most one tensor's mapped file pages (not the whole layer's).

use std::path::Path;

use candle_core::{DType, Device, Tensor};

use super::{GgmlRows, TensorMeta, WeightSource};
use crate::error::Result;

/// `0`, each tensor released ([`WeightSource::release`]) once read. Every read copies
/// (a loaded tensor or stored blocks own their data), so a release never changes a value
/// already read, and a second read of the same tensor reads the file again.
pub(crate) struct ReadOnce<'a>(pub &'a dyn WeightSource);

impl ReadOnce<'_> {
    fn after<T>(&self, name: &str, read: Result<T>) -> Result<T> {
        self.0.release(&[name.to_string()]);
        read
    }
}

impl WeightSource for ReadOnce<'_> {
    fn path(&self) -> &Path {
        self.0.path()
    }

    fn tensors(&self) -> Vec<TensorMeta> {
        self.0.tensors()
    }

    fn shape(&self, name: &str) -> Option<Vec<usize>> {
        self.0.shape(name)
    }

    fn load(&self, name: &str, dtype: DType, device: &Device) -> Result<Tensor> {
        self.after(name, self.0.load(name, dtype, device))
    }

    fn ggml_type(&self, name: &str) -> Option<candle_core::quantized::GgmlDType> {
        self.0.ggml_type(name)
    }

    fn load_ggml(&self, name: &str) -> Result<Option<GgmlRows>> {
        self.after(name, self.0.load_ggml(name))
    }

    fn load_rows(
        &self,
        name: &str,
        ids: &[usize],
        dtype: DType,
        device: &Device,
    ) -> Result<Tensor> {
        self.after(name, self.0.load_rows(name, ids, dtype, device))
    }

    fn load_ggml_rows(&self, name: &str, ids: &[usize]) -> Result<Option<GgmlRows>> {
        self.after(name, self.0.load_ggml_rows(name, ids))
    }

    fn release(&self, names: &[String]) {
        self.0.release(names)
    }

    fn prefetch(&self, names: &[String]) {
        self.0.prefetch(names)
    }
}

//! Reading model files: safetensors (HF directories), GGUF, tokenizers, hashes.
//!
//! Every weight source yields tensors under HF names and in HF layout, whatever the
//! file calls them or however it stores them.

pub mod file_kind;
pub mod gguf;
pub mod gguf_check;
pub mod hash;
pub mod layers;
pub mod names;
pub mod safetensors;
pub mod source;
mod spm;
pub mod summary;
pub mod text;
pub mod tokenizer;

use std::path::Path;

use candle_core::{DType, Device, Tensor};

use crate::error::Result;

/// A tensor as stored in a file: its HF name, shape and storage type.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TensorMeta {
    pub name: String,
    pub shape: Vec<usize>,
    /// Storage type as the file names it (`F32`, `BF16`, `Q4_1`, …).
    pub dtype: String,
    /// Bytes the tensor occupies in its file.
    pub bytes: u64,
}

/// A 2-D GGUF tensor as stored: `rows` rows of `cols` elements in `dtype`.
pub struct GgmlRows {
    pub dtype: candle_core::quantized::GgmlDType,
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<u8>,
    /// `row_order[i]` is the stored row that is HF row `i` (None: the same order).
    pub row_order: Option<Vec<usize>>,
}

/// Anything that yields named weights in HF layout.
pub trait WeightSource: Send + Sync {
    /// The file or directory the weights come from (used in errors).
    fn path(&self) -> &Path;
    /// Every tensor the source holds, under HF names, sorted by name.
    fn tensors(&self) -> Vec<TensorMeta>;
    /// Shape of one tensor, if present.
    fn shape(&self, name: &str) -> Option<Vec<usize>>;
    /// Reads one tensor, converted to `dtype` on `device`.
    fn load(&self, name: &str, dtype: DType, device: &Device) -> Result<Tensor>;
    /// The GGUF type a tensor is stored in (from the header, no data read). None for
    /// sources that store floats.
    fn ggml_type(&self, _name: &str) -> Option<candle_core::quantized::GgmlDType> {
        None
    }
    /// A GGUF matrix's stored blocks with rows in HF order, for repacking without
    /// dequantizing. None for sources that store floats.
    fn load_ggml(&self, _name: &str) -> Result<Option<GgmlRows>> {
        Ok(None)
    }
    /// The stored bytes of a safetensors tensor (type, shape, data), for byte-exact copies.
    fn raw_safetensors(&self, _name: &str) -> Option<(::safetensors::Dtype, Vec<usize>, &[u8])> {
        None
    }
}

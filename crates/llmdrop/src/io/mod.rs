//! Reading model files: safetensors (HF directories), GGUF, tokenizers, hashes.
//!
//! Every weight source yields tensors under HF names and in HF layout, whatever the
//! file calls them or however it stores them.

pub(crate) mod file_kind;
pub(crate) mod gguf;
pub(crate) mod gguf_check;
pub(crate) mod hash;
pub(crate) mod layers;
pub(crate) mod names;
pub(crate) mod read_once;
pub(crate) mod release;
pub(crate) mod requant;
pub(crate) mod row_subset;
pub(crate) mod safetensors;
pub(crate) mod source;
pub(crate) mod spm;
pub(crate) mod summary;
pub(crate) mod text;
pub(crate) mod tokenizer;

pub use gguf::GgufSource;
pub use hash::{model_sha256, sha256_bytes, sha256_file};
pub use names::{gguf_to_hf, hf_to_gguf};
pub use source::{Format, ModelSource};
pub use summary::{summarize, FileSummary, LayerSummary, ModelSummary};
pub use text::{read_utf8, read_utf8_limited, MAX_JSON_BYTES, MAX_TEXT_BYTES};
pub use tokenizer::Tokenizer;

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
    /// Rows `ids` of the matrix `name` as `[ids.len(), cols]`, each the same values as that
    /// row of [`WeightSource::load`]. Sources that can read rows alone override this; the
    /// default loads the whole matrix.
    fn load_rows(
        &self,
        name: &str,
        ids: &[usize],
        dtype: DType,
        device: &Device,
    ) -> Result<Tensor> {
        select_rows(self.load(name, dtype, device)?, ids)
    }
    /// Rows `ids` of a GGUF matrix's stored blocks, in HF row order (see
    /// [`WeightSource::load_ggml`]). The default reads the whole matrix.
    fn load_ggml_rows(&self, name: &str, ids: &[usize]) -> Result<Option<GgmlRows>> {
        self.load_ggml(name)?.map(|g| g.select(ids)).transpose()
    }
    /// Advice that the stored bytes of the tensors `names` are not needed again soon
    /// (layer-streamed passes, once a layer is converted). Never changes what a later read
    /// returns; the default does nothing.
    fn release(&self, _names: &[String]) {}
    /// Advice that the stored bytes of the tensors `names` will be read soon (a
    /// layer-streamed pass, for the next layer while this one computes): the file's bytes
    /// may be read ahead in the background. Never changes what a read returns; the default
    /// does nothing.
    fn prefetch(&self, _names: &[String]) {}
}

/// Rows `ids` of the matrix `t`.
pub(crate) fn select_rows(t: Tensor, ids: &[usize]) -> Result<Tensor> {
    let rows = t.dim(0)?;
    if let Some(&bad) = ids.iter().find(|&&i| i >= rows) {
        return Err(crate::Error::TokenOutOfRange {
            id: bad as u64,
            vocab: rows,
        });
    }
    let idx: Vec<u32> = ids.iter().map(|&i| i as u32).collect();
    Ok(t.index_select(&Tensor::new(idx.as_slice(), t.device())?, 0)?)
}

impl GgmlRows {
    /// Bytes of one row.
    pub fn row_bytes(&self) -> usize {
        self.cols / self.dtype.block_size() * self.dtype.type_size()
    }

    /// Rows `ids` (HF order) alone, as a matrix of `ids.len()` rows in that order.
    pub fn select(&self, ids: &[usize]) -> Result<GgmlRows> {
        let n = self.row_bytes();
        let mut data = Vec::with_capacity(ids.len() * n);
        for &i in ids {
            let stored = match &self.row_order {
                Some(o) => o.get(i).copied(),
                None => Some(i),
            };
            let row = stored
                .filter(|&r| r < self.rows)
                .and_then(|r| self.data.get(r * n..(r + 1) * n))
                .ok_or(crate::Error::TokenOutOfRange {
                    id: i as u64,
                    vocab: self.rows,
                })?;
            data.extend_from_slice(row);
        }
        Ok(GgmlRows {
            dtype: self.dtype,
            rows: ids.len(),
            cols: self.cols,
            data,
            row_order: None,
        })
    }
}

#[cfg(test)]
mod tests {
    /// The default model and the fixture GGUFs pass the header walk at a cost of a small
    /// multiple of their header bytes, and open.
    #[test]
    fn default_model_and_fixture_ggufs_pass_the_header_walk() {
        let tiny =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tiny");
        let files = [
            crate::assets::default_model().unwrap_or_else(|e| panic!("{e}")),
            tiny.join("llama/model.gguf"),
            tiny.join("qwen2/model.gguf"),
        ];
        for p in files {
            let mut f = std::fs::File::open(&p).unwrap();
            let layout = super::gguf_check::check(&p, &mut f).unwrap();
            eprintln!("{}: {layout:?}", p.display());
            assert!(matches!(layout.version, 2 | 3), "{}", p.display());
            // a real header costs a small multiple of its bytes
            assert!(
                layout.parse_cost < 6 * layout.header_bytes + (1 << 20),
                "{}: {layout:?}",
                p.display()
            );
            let src = super::ModelSource::open(&p).unwrap();
            assert!(src.config().num_layers >= 2, "{}", p.display());
            src.tokenizer().unwrap();
        }
    }
}

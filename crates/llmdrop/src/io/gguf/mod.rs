//! GGUF files (v2/v3): metadata -> [`Config`], tensors -> HF names and layout.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::Seek;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::{DType, Device, Tensor};

use super::names::{gguf_to_hf, hf_to_gguf};
use super::{TensorMeta, WeightSource};
use crate::arch::ArchSpec;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::formats::deci_gguf;

mod layers;
mod meta;
mod qk_order;
mod rows;

pub(crate) use meta::{meta_bool, meta_f64, meta_per_layer, meta_str, meta_u64, meta_uniform};
pub use qk_order::{permute_qk, unpermute_qk};

/// An open GGUF file.
pub struct GgufSource {
    path: PathBuf,
    content: Content,
    file: Mutex<File>,
    arch: &'static ArchSpec,
    /// `general.architecture` as written (`llama`, `qwen2`, `deci`).
    arch_name: String,
    num_heads: usize,
    num_kv_heads: usize,
}

impl GgufSource {
    /// Opens and parses the header of a GGUF file; no tensor data is read. The header is
    /// walked first ([`super::gguf_check::check`]): candle parses only a file whose counts,
    /// types, dims and offsets agree with its size.
    pub(crate) fn open(path: &Path) -> Result<Self> {
        let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
        super::gguf_check::check(path, &mut file)?;
        file.rewind().map_err(|e| Error::io(path, e))?;
        // buffered: candle reads each of a vocabulary's 262k strings in small reads
        let content =
            Content::read(&mut std::io::BufReader::new(&mut file)).map_err(|e| Error::BadFile {
                path: path.into(),
                reason: format!("invalid GGUF: {e}"),
            })?;
        let arch_name =
            meta_str(&content, "general.architecture").ok_or_else(|| Error::BadFile {
                path: path.into(),
                reason: "GGUF has no `general.architecture`".into(),
            })?;
        // llama.cpp's `deci` is llama with per-layer head counts and FFN sizes
        let family = if arch_name == deci_gguf::ARCH {
            deci_gguf::FAMILY
        } else {
            arch_name.as_str()
        };
        let arch = ArchSpec::from_gguf_arch(family).ok_or_else(|| Error::UnknownArch {
            path: path.into(),
            arch: arch_name.clone(),
            supported: format!("{}, deci", ArchSpec::supported_gguf()),
        })?;
        let get = |k: &str| meta_uniform(&content, &format!("{arch_name}.{k}"));
        let num_heads = get("attention.head_count").unwrap_or(0) as usize;
        let num_kv_heads = get("attention.head_count_kv").unwrap_or(num_heads as u64) as usize;
        Ok(Self {
            path: path.into(),
            content,
            file: Mutex::new(file),
            arch,
            arch_name,
            num_heads,
            num_kv_heads,
        })
    }

    /// The parsed header: metadata and tensor directory.
    pub fn content(&self) -> &Content {
        &self.content
    }

    /// `general.architecture` as written in the file.
    pub fn arch_name(&self) -> &str {
        &self.arch_name
    }

    /// Modules a `deci` file marks as absent: head count 0 (attention) or feed-forward
    /// length 0 (MLP) in the per-layer arrays, which must have `num_layers` entries. A scalar
    /// describes every layer alike and marks nothing absent.
    pub fn stored_plan(&self, num_layers: usize) -> Result<crate::plan::DropPlan> {
        let a = &self.arch_name;
        let zeros = |k: &str| -> Result<Vec<usize>> {
            let key = format!("{a}.{k}");
            let Some(Value::Array(_)) = self.content.metadata.get(&key) else {
                return Ok(vec![]);
            };
            let v = meta_per_layer(&self.content, &key)
                .ok_or_else(|| self.bad_meta(&key, "must hold non-negative integers"))?;
            if v.len() != num_layers {
                return Err(self.bad_meta(
                    &key,
                    &format!("has {} entries for {num_layers} layers", v.len()),
                ));
            }
            Ok(deci_gguf::absent_layers(&v))
        };
        let mut plan = crate::plan::DropPlan::new(
            zeros("attention.head_count")?,
            zeros("feed_forward_length")?,
        );
        plan.mlp.extend(self.zero_ffn_layers());
        plan.validate(num_layers).map_err(|e| Error::BadConfig {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        Ok(plan)
    }

    fn bad_meta(&self, key: &str, what: &str) -> Error {
        Error::BadConfig {
            path: self.path.clone(),
            reason: format!("GGUF metadata `{key}` {what}"),
        }
    }

    /// Layers llmdrop wrote with a zero FFN in place of a dropped MLP.
    fn zero_ffn_layers(&self) -> BTreeSet<usize> {
        deci_gguf::zero_ffn_layers(&self.content)
    }

    /// The stored bytes of a tensor (by GGUF name): type, dims (rows first), data.
    pub fn raw_tensor(&self, gguf_name: &str) -> Result<candle_core::quantized::QTensor> {
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        self.content
            .tensor(&mut *file, gguf_name, &Device::Cpu)
            .map_err(|e| Error::BadTensor {
                path: self.path.clone(),
                name: gguf_name.into(),
                reason: e.to_string(),
            })
    }

    /// The runtime config described by the metadata.
    pub fn config(&self) -> Result<Config> {
        let c = &self.content;
        let a = self.arch_name.as_str();
        let bad = |reason: String| Error::BadConfig {
            path: self.path.clone(),
            reason,
        };
        let req = |k: &str| -> Result<usize> {
            meta_uniform(c, &format!("{a}.{k}"))
                .map(|x| x as usize)
                .ok_or_else(|| bad(format!("GGUF metadata `{a}.{k}` missing")))
        };
        let hidden_size = req("embedding_length")?;
        // a deci file whose every attention is dropped has only zeros in the per-layer
        // arrays; llmdrop's exporter records the original counts beside them
        let heads = |k: &str| {
            meta_uniform(c, &format!("{a}.{k}"))
                .or_else(|| meta_u64(c, &deci_gguf::original_key(k)))
                .map(|x| x as usize)
        };
        let num_heads = heads("attention.head_count")
            .ok_or_else(|| bad(format!("GGUF metadata `{a}.attention.head_count` missing")))?;
        let num_kv_heads = heads("attention.head_count_kv").unwrap_or(num_heads);
        if num_heads == 0 || num_kv_heads == 0 || num_heads % num_kv_heads != 0 {
            return Err(bad(format!(
                "head_count {num_heads} is not a positive multiple of head_count_kv {num_kv_heads}"
            )));
        }
        let head_dim = meta_u64(c, &format!("{a}.attention.key_length"))
            .map(|x| x as usize)
            .unwrap_or(hidden_size / num_heads);
        let vocab_size = match meta_u64(c, &format!("{a}.vocab_size")) {
            Some(v) => v as usize,
            None => match c.metadata.get("tokenizer.ggml.tokens") {
                Some(Value::Array(t)) => t.len(),
                _ => self
                    .content
                    .tensor_infos
                    .get("token_embd.weight")
                    .and_then(|t| t.shape.dims().first().copied())
                    .ok_or_else(|| bad("cannot tell the vocabulary size".into()))?,
            },
        };
        let eps = meta_f64(c, &format!("{a}.attention.layer_norm_rms_epsilon")).unwrap_or(1e-5);
        // per-layer FFN lengths: ignore dropped (0) and zero-FFN layers
        let ffn_key = format!("{a}.feed_forward_length");
        let intermediate_size = match c.metadata.get(&ffn_key) {
            Some(Value::Array(_)) => {
                let skip = self.zero_ffn_layers();
                let v = meta_per_layer(c, &ffn_key).unwrap_or_default();
                let mut sizes = v
                    .iter()
                    .enumerate()
                    .filter(|(i, &x)| x != 0 && !skip.contains(i))
                    .map(|(_, &x)| x);
                let first = sizes.next().unwrap_or(0);
                if !sizes.all(|x| x == first) {
                    return Err(bad(
                        "per-layer feed-forward lengths differ: not supported".into()
                    ));
                }
                first as usize
            }
            _ => req("feed_forward_length")?,
        };
        let num_layers = req("block_count")?;
        let layers = self.per_layer(num_layers, hidden_size, num_heads, head_dim)?;
        let cfg = Config {
            arch: self.arch,
            vocab_size,
            hidden_size,
            intermediate_size: intermediate_size.max(1),
            num_layers,
            num_heads,
            num_kv_heads,
            head_dim,
            rms_norm_eps: eps,
            rope_theta: meta_f64(c, &format!("{a}.rope.freq_base")).unwrap_or(10000.0),
            rope_scaling: self.rope_scaling()?,
            max_position_embeddings: req("context_length").unwrap_or(4096),
            tie_word_embeddings: !self.content.tensor_infos.contains_key("output.weight"),
            sliding_window: layers.sliding_window,
            qkv_bias: self.arch.qkv_bias
                || self.content.tensor_infos.contains_key("blk.0.attn_q.bias"),
            o_bias: self
                .content
                .tensor_infos
                .contains_key("blk.0.attn_output.bias"),
            mlp_bias: false,
            bos_token_id: meta_u64(c, "tokenizer.ggml.bos_token_id").map(|x| x as u32),
            eos_token_ids: meta_u64(c, "tokenizer.ggml.eos_token_id")
                .map(|x| vec![x as u32])
                .unwrap_or_default(),
            act: self.arch.default_act,
            query_pre_attn_scalar: layers.query_pre_attn_scalar,
            layer_types: layers.layer_types,
            local_rope: layers.local_rope,
        };
        if self.content.tensor_infos.contains_key("rope_freqs.weight") {
            return Err(bad(
                "GGUF carries `rope_freqs.weight` (llama3 rope scaling), not supported yet".into(),
            ));
        }
        cfg.validate().map_err(bad)?;
        Ok(cfg)
    }
}

impl WeightSource for GgufSource {
    fn path(&self) -> &Path {
        &self.path
    }

    fn tensors(&self) -> Vec<TensorMeta> {
        let mut out: Vec<TensorMeta> = self
            .content
            .tensor_infos
            .iter()
            .map(|(name, info)| {
                let elems = info.shape.elem_count();
                let bytes = elems / info.ggml_dtype.block_size() * info.ggml_dtype.type_size();
                TensorMeta {
                    name: gguf_to_hf(self.arch, name).unwrap_or_else(|| name.clone()),
                    shape: info.shape.dims().to_vec(),
                    dtype: format!("{:?}", info.ggml_dtype),
                    bytes: bytes as u64,
                }
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    fn shape(&self, name: &str) -> Option<Vec<usize>> {
        let g = hf_to_gguf(self.arch, name)?;
        self.content
            .tensor_infos
            .get(&g)
            .map(|i| i.shape.dims().to_vec())
    }

    fn load(&self, name: &str, dtype: DType, device: &Device) -> Result<Tensor> {
        let g = self.gguf_name(name)?;
        let mut t = self.read_f32(&g)?;
        if let Some(h) = self.qk_heads(name) {
            t = unpermute_qk(&t, h).map_err(|e| self.bad_tensor(&g, e))?;
        }
        if self.stored_plus_one(name) {
            // HF layout: the norm's `w`, as transformers reads these files (in f32)
            t = t.affine(1.0, -1.0)?;
        }
        Ok(t.to_dtype(dtype)?.to_device(device)?)
    }

    fn ggml_type(&self, name: &str) -> Option<candle_core::quantized::GgmlDType> {
        let g = hf_to_gguf(self.arch, name)?;
        Some(self.content.tensor_infos.get(&g)?.ggml_dtype)
    }

    fn load_ggml(&self, name: &str) -> Result<Option<super::GgmlRows>> {
        let g = self.gguf_name(name)?;
        let q = self.raw_tensor(&g)?;
        let &[rows, cols] = q.shape().dims() else {
            return Ok(None);
        };
        let row_order = match self.qk_heads(name) {
            Some(h) => {
                let idx = Tensor::arange(0u32, rows as u32, &Device::Cpu)?.reshape((rows, 1))?;
                let idx = unpermute_qk(&idx, h).map_err(|e| self.bad_tensor(&g, e))?;
                Some(
                    idx.flatten_all()?
                        .to_vec1::<u32>()?
                        .into_iter()
                        .map(|i| i as usize)
                        .collect(),
                )
            }
            None => None,
        };
        Ok(Some(super::GgmlRows {
            dtype: q.dtype(),
            rows,
            cols,
            data: q.data()?.into_owned(),
            row_order,
        }))
    }

    fn load_rows(
        &self,
        name: &str,
        ids: &[usize],
        dtype: DType,
        device: &Device,
    ) -> Result<Tensor> {
        self.rows_as(name, ids, dtype, device)
    }

    fn load_ggml_rows(&self, name: &str, ids: &[usize]) -> Result<Option<super::GgmlRows>> {
        match self.read_rows(name, ids)? {
            Some(r) => Ok(Some(r)),
            None => self.load_ggml(name)?.map(|g| g.select(ids)).transpose(),
        }
    }

    fn release(&self, names: &[String]) {
        self.drop_cached(names)
    }
}

impl GgufSource {
    /// The GGUF name of an HF tensor name the file holds.
    fn gguf_name(&self, name: &str) -> Result<String> {
        hf_to_gguf(self.arch, name)
            .filter(|g| self.content.tensor_infos.contains_key(g))
            .ok_or_else(|| Error::MissingTensor {
                path: self.path.clone(),
                name: format!(
                    "{name} (GGUF: {})",
                    hf_to_gguf(self.arch, name).unwrap_or_default()
                ),
                hint: String::new(),
            })
    }

    /// Heads of a q/k projection whose rows llama.cpp's converter permuted.
    fn qk_heads(&self, name: &str) -> Option<usize> {
        if !self.arch.gguf_qk_permuted {
            None
        } else if name.ends_with("q_proj.weight") || name.ends_with("q_proj.bias") {
            Some(self.num_heads)
        } else if name.ends_with("k_proj.weight") || name.ends_with("k_proj.bias") {
            Some(self.num_kv_heads)
        } else {
            None
        }
    }

    fn bad_tensor(&self, gguf_name: &str, e: impl std::fmt::Display) -> Error {
        Error::BadTensor {
            path: self.path.clone(),
            name: gguf_name.into(),
            reason: e.to_string(),
        }
    }
}

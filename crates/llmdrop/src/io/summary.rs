//! What a model is made of: parameters per layer and module, storage types, files.

use std::collections::BTreeMap;

use serde::Serialize;

use super::hash::sha256_file;
use super::names::split_layer_name;
use super::source::{Format, ModelSource};
use crate::config::Config;
use crate::error::{Error, Result};

#[derive(Debug, Clone, Serialize)]
pub struct LayerSummary {
    pub layer: usize,
    pub attn_params: u64,
    pub mlp_params: u64,
    /// Storage types of the attention / MLP weights (e.g. `Q4_1`).
    pub attn_dtypes: Vec<String>,
    pub mlp_dtypes: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FileSummary {
    pub path: String,
    pub bytes: u64,
    pub sha256: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ModelSummary {
    pub path: String,
    pub format: Format,
    pub config: Config,
    /// All parameters stored (a tied embedding counts once).
    pub params: u64,
    pub embedding_params: u64,
    pub layers: Vec<LayerSummary>,
    /// Number of tensors per storage type.
    pub tensor_dtypes: BTreeMap<String, usize>,
    pub files: Vec<FileSummary>,
}

/// Summarises `src`; hashes its files when `hash` (reads every byte).
pub fn summarize(src: &ModelSource, hash: bool) -> Result<ModelSummary> {
    let cfg = src.config();
    let mut layers: Vec<LayerSummary> = (0..cfg.num_layers)
        .map(|layer| LayerSummary {
            layer,
            attn_params: 0,
            mlp_params: 0,
            attn_dtypes: vec![],
            mlp_dtypes: vec![],
        })
        .collect();
    let mut params = 0u64;
    let mut embedding_params = 0u64;
    let mut tensor_dtypes = BTreeMap::new();
    for t in src.weights().tensors() {
        let n: u64 = t.shape.iter().map(|&d| d as u64).product();
        params += n;
        *tensor_dtypes.entry(t.dtype.clone()).or_insert(0) += 1;
        if t.name == "model.embed_tokens.weight" {
            embedding_params = n;
        }
        if let Some((i, suffix)) = split_layer_name(&t.name) {
            let Some(l) = layers.get_mut(i) else { continue };
            let attn = suffix.starts_with("self_attn.") || suffix.starts_with("input_layernorm");
            let (p, dts) = if attn {
                (&mut l.attn_params, &mut l.attn_dtypes)
            } else {
                (&mut l.mlp_params, &mut l.mlp_dtypes)
            };
            *p += n;
            if t.shape.len() == 2 && !dts.contains(&t.dtype) {
                dts.push(t.dtype.clone());
            }
        }
    }
    let mut files = Vec::new();
    for f in src.files() {
        let bytes = std::fs::metadata(&f).map_err(|e| Error::io(&f, e))?.len();
        files.push(FileSummary {
            path: f.display().to_string(),
            bytes,
            sha256: if hash { Some(sha256_file(&f)?) } else { None },
        });
    }
    Ok(ModelSummary {
        path: src.path().display().to_string(),
        format: src.format(),
        config: cfg.clone(),
        params,
        embedding_params,
        layers,
        tensor_dtypes,
        files,
    })
}

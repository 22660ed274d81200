//! Opening a model path: an HF directory or a GGUF file.

use std::path::{Path, PathBuf};

use super::file_kind;
use super::gguf::GgufSource;
use super::layers::check_layers;
use super::requant::RequantView;
use super::safetensors::SafetensorsSource;
use super::tokenizer::Tokenizer;
use super::WeightSource;
use crate::config::{Config, MAX_CONFIG_BYTES};
use crate::error::{Error, Result};
use crate::formats::{hf_llmdrop, nemotron};
use crate::plan::DropPlan;

/// The on-disk format of a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// HF directory: config.json + safetensors.
    HfDir,
    /// One GGUF file.
    Gguf,
}

enum Inner {
    Hf(SafetensorsSource),
    Gguf(GgufSource),
    /// An HF directory's weights as a GGUF export of it stores them (the reload check's
    /// reference for a quantized export).
    Requant(RequantView<SafetensorsSource>),
}

/// An opened model: its config and a source of its weights. No tensor data is read yet.
pub struct ModelSource {
    path: PathBuf,
    format: Format,
    config: Config,
    /// Modules the files say are already dropped (`drop_attn_list` / `drop_mlp_list`).
    stored_plan: DropPlan,
    inner: Inner,
}

impl ModelSource {
    /// Opens `path`: a directory with config.json, or a GGUF file. Anything else (a FIFO,
    /// a device) is refused without being opened. The layer count the header states is
    /// checked against the tensors present before anything is sized from it.
    pub fn open(path: &Path) -> Result<Self> {
        if file_kind::kind(path)? == file_kind::Kind::Dir {
            let cfg_path = path.join("config.json");
            let config = Config::from_hf_file(&cfg_path)?;
            let stored_plan = stored_plan_of(&cfg_path, config.num_layers)?;
            let st = SafetensorsSource::open_dir(path)?;
            check_layers(
                &st,
                &cfg_path,
                "num_hidden_layers",
                "model.layers.",
                &config,
                &stored_plan,
            )?;
            Ok(Self {
                path: path.into(),
                format: Format::HfDir,
                config,
                stored_plan,
                inner: Inner::Hf(st),
            })
        } else {
            let g = GgufSource::open(path)?;
            let config = g.config()?;
            let stored_plan = g.stored_plan(config.num_layers)?;
            let key = format!("{}.block_count", g.arch_name());
            check_layers(&g, path, &key, "blk.", &config, &stored_plan)?;
            Ok(Self {
                path: path.into(),
                format: Format::Gguf,
                config,
                stored_plan,
                inner: Inner::Gguf(g),
            })
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn format(&self) -> Format {
        self.format
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The modules the model files say are dropped (empty for an unpruned model).
    pub fn stored_plan(&self) -> &DropPlan {
        &self.stored_plan
    }

    pub fn weights(&self) -> &dyn WeightSource {
        match &self.inner {
            Inner::Hf(s) => s,
            Inner::Gguf(g) => g,
            Inner::Requant(v) => v,
        }
    }

    /// This HF model with every weight rounded as a GGUF export with `quant` stores it
    /// (quantized to its type and dequantized, as read): the model the written file must
    /// run as. A GGUF model is refused (its export copies the stored blocks).
    pub(crate) fn requantized(
        self,
        quant: Option<candle_core::quantized::GgmlDType>,
    ) -> Result<Self> {
        let base = match self.inner {
            Inner::Hf(s) => s,
            _ => {
                return Err(Error::unsupported(
                    "requantizing",
                    "applies to safetensors models only",
                ))
            }
        };
        Ok(Self {
            inner: Inner::Requant(RequantView { base, quant }),
            ..self
        })
    }

    /// The files that make up the model (for sizes and hashes).
    pub fn files(&self) -> Vec<PathBuf> {
        match &self.inner {
            Inner::Hf(s) | Inner::Requant(RequantView { base: s, .. }) => {
                let mut f = vec![self.path.join("config.json")];
                f.extend(s.files());
                f
            }
            Inner::Gguf(_) => vec![self.path.clone()],
        }
    }

    /// The model's tokenizer: tokenizer.json of a directory, or built from GGUF metadata.
    pub fn tokenizer(&self) -> Result<Tokenizer> {
        match &self.inner {
            Inner::Hf(_) | Inner::Requant(_) => Tokenizer::from_hf_dir(
                &self.path,
                self.config.bos_token_id,
                self.config.eos_token_ids.clone(),
            ),
            Inner::Gguf(g) => Tokenizer::from_gguf(g.content(), &self.path),
        }
    }

    /// The GGUF source, when the model is one.
    pub fn gguf(&self) -> Option<&GgufSource> {
        match &self.inner {
            Inner::Gguf(g) => Some(g),
            Inner::Hf(_) | Inner::Requant(_) => None,
        }
    }
}

// Reading config.json from disk is io's (the file checks); parsing it is config's.
impl Config {
    /// Reads an HF `config.json` (a regular file of at most [`crate::config::MAX_CONFIG_BYTES`]).
    pub fn from_hf_file(path: &Path) -> Result<Self> {
        let text = file_kind::read_text(path, MAX_CONFIG_BYTES)?;
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::BadConfig {
            path: path.into(),
            reason: format!("not valid JSON: {e}"),
        })?;
        Self::from_hf_json(&v, path)
    }
}

/// `drop_attn_list` / `drop_mlp_list` of an HF config.json (LLM-Drop's keys).
fn stored_plan_of(cfg_path: &Path, num_layers: usize) -> Result<DropPlan> {
    let text = file_kind::read_text(cfg_path, MAX_CONFIG_BYTES)?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::BadConfig {
        path: cfg_path.into(),
        reason: e.to_string(),
    })?;
    let bad = |reason: String| Error::BadConfig {
        path: cfg_path.into(),
        reason,
    };
    let mut plan = hf_llmdrop::read_plan(&v).map_err(bad)?;
    // nemotron-nas: no-op attention / FFN blocks
    nemotron::read_plan_into(&v, &mut plan);
    plan.validate(num_layers).map_err(|e| Error::BadConfig {
        path: cfg_path.into(),
        reason: e.to_string(),
    })?;
    Ok(plan)
}

impl std::fmt::Debug for ModelSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelSource")
            .field("path", &self.path)
            .field("format", &self.format)
            .field("arch", &self.config.arch.name)
            .field("stored_plan", &self.stored_plan)
            .finish()
    }
}

//! Opening a model path: an HF directory or a GGUF file.

use std::path::{Path, PathBuf};

use super::gguf::GgufSource;
use super::safetensors::SafetensorsSource;
use super::tokenizer::Tokenizer;
use super::WeightSource;
use crate::config::Config;
use crate::error::{Error, Result};

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
}

/// An opened model: its config and a source of its weights. No tensor data is read yet.
pub struct ModelSource {
    path: PathBuf,
    format: Format,
    config: Config,
    inner: Inner,
}

impl ModelSource {
    /// Opens `path`: a directory with config.json, or a GGUF file.
    pub fn open(path: &Path) -> Result<Self> {
        let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        if meta.is_dir() {
            let config = Config::from_hf_file(&path.join("config.json"))?;
            let st = SafetensorsSource::open_dir(path)?;
            Ok(Self {
                path: path.into(),
                format: Format::HfDir,
                config,
                inner: Inner::Hf(st),
            })
        } else {
            let g = GgufSource::open(path)?;
            let config = g.config()?;
            Ok(Self {
                path: path.into(),
                format: Format::Gguf,
                config,
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

    pub fn weights(&self) -> &dyn WeightSource {
        match &self.inner {
            Inner::Hf(s) => s,
            Inner::Gguf(g) => g,
        }
    }

    /// The files that make up the model (for sizes and hashes).
    pub fn files(&self) -> Vec<PathBuf> {
        match &self.inner {
            Inner::Hf(s) => {
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
            Inner::Hf(_) => Tokenizer::from_hf_dir(
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
            Inner::Hf(_) => None,
        }
    }
}

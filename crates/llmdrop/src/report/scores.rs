//! `scores.json`: a score table with everything needed to know when it can be reused.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::score::ScoreTable;

/// Current `scores.json` schema.
pub const SCORES_SCHEMA: u32 = 1;

/// What the scores depend on besides the model and the data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScoreSettings {
    pub samples: usize,
    pub seq_len: usize,
    pub shuffle: bool,
    pub seed: u64,
    pub residual: bool,
    pub dtype: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScoreReport {
    pub schema_version: u32,
    pub llmdrop_version: String,
    pub model_path: String,
    pub model_sha256: String,
    pub data_path: String,
    /// sha256 of the exact calibration token blocks.
    pub data_sha256: String,
    pub settings: ScoreSettings,
    pub threads: usize,
    pub seconds: f64,
    pub tokens_per_sec: f64,
    /// Forward-pass arithmetic per second (see `bench::forward_flops`).
    #[serde(default)]
    pub gflops_per_sec: f64,
    /// Peak resident memory of the scoring process.
    #[serde(default)]
    pub peak_rss_bytes: Option<u64>,
    pub table: ScoreTable,
}

impl ScoreReport {
    /// Whether this report was computed from the same model, data and settings.
    pub fn matches(&self, model_sha256: &str, data_sha256: &str, settings: &ScoreSettings) -> bool {
        self.schema_version == SCORES_SCHEMA
            && self.model_sha256 == model_sha256
            && self.data_sha256 == data_sha256
            && &self.settings == settings
    }

    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        serde_json::from_str(&text)
            .map_err(|e| Error::Input(format!("{}: not a scores file: {e}", path.display())))
    }

    /// Writes the report (to a temporary file renamed into place).
    pub fn write(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(|e| Error::Input(e.to_string()))?;
        write_atomic(path, text.as_bytes())
    }
}

/// Writes `bytes` to `path` through a temporary file in the same directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}

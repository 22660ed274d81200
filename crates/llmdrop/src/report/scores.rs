//! `scores.json`: a score table with everything needed to know when it can be reused.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::json_f64;
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
    #[serde(with = "json_f64")]
    pub seconds: f64,
    #[serde(with = "json_f64")]
    pub tokens_per_sec: f64,
    /// Forward-pass arithmetic per second (see `bench::forward_flops`).
    #[serde(default, with = "json_f64")]
    pub gflops_per_sec: f64,
    /// Peak resident memory of the scoring process.
    #[serde(default)]
    pub peak_rss_bytes: Option<u64>,
    /// How the model was run (held or layer-streamed) and the memory estimate it was
    /// chosen on; None in reports of older versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<crate::budget::MemoryChoice>,
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

    /// Reads a report [`ScoreReport::write`] wrote (every value as written, NaN and the
    /// infinities included); its table must be whole.
    pub fn read(path: &Path) -> Result<Self> {
        let text = crate::io::text::read_utf8_limited(path, crate::io::text::MAX_JSON_BYTES)?;
        let r: Self = serde_json::from_str(&text)
            .map_err(|e| Error::data(path, None, format!("not a scores file: {e}")))?;
        r.table
            .validate()
            .map_err(|e| Error::data(path, None, e.to_string()))?;
        Ok(r)
    }

    /// Writes the report through staging. An existing file at `path` is replaced only when
    /// it is a scores file llmdrop wrote; `path` may not overlap `inputs`.
    pub fn write(&self, path: &Path, inputs: &crate::dest::Inputs) -> Result<()> {
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| Error::context("serializing the scores", e))?;
        crate::dest::write_file(path, crate::dest::Kind::ScoresFile, inputs, text.as_bytes())
    }
}

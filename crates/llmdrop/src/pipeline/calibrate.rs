//! Calibration text -> token blocks, and the settings that identify a score table.

use std::path::PathBuf;

use crate::calib::{pack, read_documents, CalibBlocks, PackOptions, TextSource};
use crate::error::{Error, Result};
use crate::io::tokenizer::Tokenizer;
use crate::quant::Precision;
use crate::report::ScoreSettings;

/// Calibration blocks per scoring run, unless asked otherwise.
pub const DEFAULT_SAMPLES: usize = 64;
/// Tokens per calibration block, unless asked otherwise.
pub const DEFAULT_SEQ_LEN: usize = 512;

/// Which text calibrates the scores, and how it is cut into blocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalibOptions {
    /// A .txt file, a .jsonl file or a folder of them; `None`: the cached docutils
    /// documentation ([`crate::assets::default_calibration_text`]).
    pub data: Option<PathBuf>,
    /// JSON Lines field holding the text.
    pub field: String,
    /// Calibration blocks.
    pub samples: usize,
    /// Tokens per block.
    pub seq_len: usize,
    /// Pick the blocks at random (with `seed`) instead of the first ones.
    pub shuffle: bool,
    pub seed: u64,
    /// Attention / MLP similarity with the residual (false: cos(LN(x), module(LN(x)))).
    pub residual: bool,
}

impl Default for CalibOptions {
    fn default() -> Self {
        Self {
            data: None,
            field: "text".into(),
            samples: DEFAULT_SAMPLES,
            seq_len: DEFAULT_SEQ_LEN,
            shuffle: false,
            seed: 0,
            residual: true,
        }
    }
}

impl CalibOptions {
    /// The calibration text's path: `data`, or the default text when it is cached.
    pub fn data_path(&self) -> Result<PathBuf> {
        match &self.data {
            Some(p) => Ok(p.clone()),
            None => crate::assets::default_calibration_text(),
        }
    }
}

/// The calibration blocks and the settings that identify a score table.
#[derive(Debug, Clone)]
pub struct Calibration {
    pub data_path: PathBuf,
    pub blocks: CalibBlocks,
    pub settings: ScoreSettings,
}

/// Reads the calibration text and packs it into blocks of `tok`'s ids; `dtype` is what
/// the model is scored in (recorded in the settings).
pub fn calibrate(opts: &CalibOptions, dtype: Precision, tok: &Tokenizer) -> Result<Calibration> {
    let data_path = opts.data_path()?;
    let src = TextSource {
        path: data_path.clone(),
        field: opts.field.clone(),
    };
    let docs = read_documents(&src)?;
    let pack_opts = PackOptions {
        seq_len: opts.seq_len,
        samples: opts.samples,
        shuffle: opts.shuffle,
        seed: opts.seed,
    };
    let blocks = pack(&docs, tok, &pack_opts)
        .map_err(|e| Error::context(format!("calibration data {}", data_path.display()), e))?;
    Ok(Calibration {
        data_path,
        blocks,
        settings: ScoreSettings {
            samples: opts.samples,
            seq_len: opts.seq_len,
            shuffle: opts.shuffle,
            seed: opts.seed,
            residual: opts.residual,
            dtype: dtype.name().into(),
        },
    })
}

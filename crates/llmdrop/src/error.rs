//! The library's error type: every variant names the file, tensor or setting at fault.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {cause}")]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("{path}: not a readable model: {reason}")]
    BadFile { path: PathBuf, reason: String },
    /// A path that is not a file llmdrop reads (a pipe, a device, a folder, too large).
    #[error("{path}: {reason}")]
    Unreadable { path: PathBuf, reason: String },
    #[error("{path}: invalid config: {reason}")]
    BadConfig { path: PathBuf, reason: String },
    #[error("{path}: unknown architecture `{arch}` (supported: {supported})")]
    UnknownArch {
        path: PathBuf,
        arch: String,
        supported: String,
    },
    #[error("{path}: tensor `{name}` is missing{hint}")]
    MissingTensor {
        path: PathBuf,
        name: String,
        hint: String,
    },
    #[error("{path}: tensor `{name}` has shape {found:?}, the config implies {expected:?}")]
    TensorShape {
        path: PathBuf,
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("{path}: tensor `{name}`: {reason}")]
    BadTensor {
        path: PathBuf,
        name: String,
        reason: String,
    },
    #[error("{path}: tokenizer: {reason}")]
    Tokenizer { path: PathBuf, reason: String },
    #[error("{path}: not valid UTF-8 text (first bad byte at offset {offset})")]
    NotUtf8 { path: PathBuf, offset: usize },
    /// An output path that llmdrop refuses to write (it overlaps an input, or replacing it
    /// could destroy something llmdrop did not write).
    #[error("{path}: output refused: {reason}")]
    Output { path: PathBuf, reason: String },
    /// An export was written but does not load back as the model llmdrop evaluated
    /// ("checked and failed"); nothing was moved into place.
    #[error("{0}")]
    ReloadMismatch(String),
    #[error("drop plan: {0}")]
    Plan(String),
    #[error("{0}")]
    Input(String),
    #[error("{what}: {reason}. Fetch it with `{fetch}`")]
    MissingAsset {
        what: String,
        reason: String,
        fetch: String,
    },
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// A matrix the kernels' quantized layout cannot hold or read (transparent, so the
    /// message is the kernels' own, printed once).
    #[error(transparent)]
    Kernel(#[from] llmdrop_kernels::Error),
    /// What was being done (a file, a task) when `source` happened.
    #[error("{what}")]
    Context {
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// `source`, said to have happened while doing `what` (shown as `what: source`).
    pub fn context(
        what: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::Context {
            what: what.into(),
            source: Box::new(source),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            cause: source,
        }
    }
}

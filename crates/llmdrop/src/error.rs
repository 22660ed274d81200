//! The library's error type: every variant names the file, tensor, option or plan at fault.
//!
//! Messages name library options (`keep_first`, `force`), never command-line flags: a front
//! end matches the variant ([`Error::Argument`], [`Error::Exists`], [`StrategyError`], …) to
//! say which of its own flags to change.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("{path}: {cause}")]
    Io {
        path: PathBuf,
        #[source]
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
    /// Calibration text, a task file, a scores or plan file that is not what it should be;
    /// `line` (1-based) when one line is at fault.
    #[error("{}: {reason}", at(path, *line))]
    Data {
        path: PathBuf,
        line: Option<usize>,
        reason: String,
    },
    /// Data that is readable but too little, or empty, for what was asked (no path: it may
    /// come from several files or from memory).
    #[error("{what}: {reason}")]
    NotEnough { what: String, reason: String },
    /// An output path that llmdrop refuses to write (it overlaps an input, or it is not a
    /// path llmdrop can write).
    #[error("{path}: output refused: {reason}")]
    Output { path: PathBuf, reason: String },
    /// An output that exists: replaceable with the `force` option when llmdrop wrote it
    /// (`own`), never replaced when it did not.
    #[error("{path}: output refused: {}", exists(noun, *own))]
    Exists {
        path: PathBuf,
        /// What llmdrop would have written there (`a GGUF export`, `a scores file`).
        noun: String,
        own: bool,
    },
    /// An export was written but does not load back as the model llmdrop evaluated
    /// ("checked and failed"); nothing was moved into place.
    #[error("{0}")]
    ReloadMismatch(String),
    /// A drop plan that does not fit the model, or a layer list that does not parse.
    #[error("drop plan: {0}")]
    Plan(PlanError),
    /// A strategy that cannot choose what was asked of it.
    #[error("{0}")]
    Strategy(StrategyError),
    /// A name (strategy, format, dtype, task, layout) that is not one llmdrop knows.
    #[error("unknown {what} `{name}` ({expected})")]
    Unknown {
        what: &'static str,
        name: String,
        /// The names it knows, or where to look them up.
        expected: String,
    },
    /// An option value the library refuses; `option` is the options struct's field
    /// (`seq_len`, `quant`, `reps`).
    #[error("`{option}` {reason}")]
    Argument {
        option: &'static str,
        reason: String,
    },
    /// Two output options that name the same path.
    #[error("`{first}` and `{second}` are the same path {}", path.display())]
    SamePath {
        first: &'static str,
        second: &'static str,
        path: PathBuf,
    },
    /// A score table whose parts do not agree on the layer count.
    #[error("score table: {reason}")]
    ScoreTable { reason: String },
    /// More positions than the model has.
    #[error("{what} exceed the model's maximum of {max} positions")]
    TooLong { what: String, max: usize },
    /// A token id at or beyond the vocabulary size.
    #[error("token id {id} is outside the vocabulary (size {vocab})")]
    TokenOutOfRange { id: u64, vocab: usize },
    /// Less memory than the smallest way to run needs (layer-streamed: one layer plus the
    /// hidden states); `need` and `budget` in bytes, `detail` what the need is made of.
    #[error("the run needs {need} bytes even layer-streamed ({detail}), but {budget_from} allows {budget} bytes")]
    MemoryBudget {
        need: u64,
        budget: u64,
        /// What set the budget (`max_memory`, or the memory available), for people.
        budget_from: String,
        detail: String,
    },
    /// Layer-streamed scoring spills the unit hidden states to disk, and `dir`'s file
    /// system has less free than that (bytes).
    #[error("{}: spilling the hidden states to disk needs {need} bytes, but only {free} are free there; free some space or spill elsewhere (`spill_dir`)", dir.display())]
    SpillSpace { dir: PathBuf, need: u64, free: u64 },
    /// Writing the spilled hidden states failed (a full disk, a file size limit); the
    /// spill folder is removed and nothing is written.
    #[error("{}: spilling the hidden states to disk ({need} bytes in all) failed: {cause}", path.display())]
    SpillWrite {
        path: PathBuf,
        need: u64,
        #[source]
        cause: std::io::Error,
    },
    /// Writing a checkpoint failed (a full disk, a file size limit): the file being written
    /// is removed, and the checkpoint of the layer before (if any) is the one a rerun
    /// resumes from.
    #[error("{}: writing the checkpoint of {layer} layers done ({bytes} bytes) failed: {cause}", path.display())]
    CheckpointWrite {
        path: PathBuf,
        /// Layers done, the checkpoint's count.
        layer: usize,
        bytes: u64,
        #[source]
        cause: std::io::Error,
    },
    /// The caller asked the work to stop ([`crate::progress::Progress::cancelled`]) and it
    /// did, with `done` of `total` steps (layers) done; `checkpoint` resumes it from there.
    #[error("stopped as asked with {done} of {total} layers done{}", resume_hint(checkpoint.as_deref()))]
    Cancelled {
        done: usize,
        total: usize,
        checkpoint: Option<PathBuf>,
    },
    /// Something this model, tokenizer or output format cannot do.
    #[error("{what}: {reason}")]
    Unsupported { what: String, reason: String },
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

/// Why a drop plan does not fit, or a layer list does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// `module` is `attention` or `MLP`.
    #[error("{module} layer {layer} does not exist: the model has {num_layers} layers (0..{})", num_layers.saturating_sub(1))]
    NoSuchLayer {
        module: &'static str,
        layer: usize,
        num_layers: usize,
    },
    #[error("layer {layer} is beyond any model (at most {max} layers)")]
    BeyondAnyModel { layer: usize, max: usize },
    #[error("`{part}` is not a layer index or range a-b")]
    NotALayerList { part: String },
    #[error("the plan removes all {layers} layers: nothing would be left to export")]
    RemovesEverything { layers: usize },
    /// A nemotron-nas export whose first layer with a kept module has no attention, which
    /// vLLM cannot run (see [`crate::export::first_attn_hazard`]); the
    /// `allow_first_attn_drop` option writes it anyway.
    #[error("format nemotron-nas: attention {layer} is dropped, and layer {layer} is the first layer the plan keeps anything of: vLLM's DeciLM decoder layer then calls its fused residual RMSNorm with residual = None and fails; keep that attention, or set `allow_first_attn_drop` to write the export anyway (llmdrop and transformers, with the export's own modeling file, run it)")]
    FirstAttentionDropped { layer: usize },
    /// A plan file recorded for another model (by sha256).
    #[error("{}: the plan was made for another model (sha256 {want}), not {} ({found})", plan_file.display(), model.display())]
    OtherModel {
        plan_file: PathBuf,
        want: String,
        model: PathBuf,
        found: String,
    },
}

/// Why a strategy cannot choose what was asked of it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum StrategyError {
    /// `keep_first + keep_last` exceed the layer count.
    #[error("keep_first {keep_first} and keep_last {keep_last} protect more than the model's {num_layers} layers")]
    Protected {
        keep_first: usize,
        keep_last: usize,
        num_layers: usize,
    },
    #[error("cannot drop {n} with strategy {strategy}: only {available} candidates (after keep_first/keep_last)")]
    TooMany {
        strategy: String,
        n: usize,
        available: usize,
    },
    /// The next most redundant candidate's similarity is NaN or infinite.
    #[error("cannot drop more with strategy {strategy}: the next candidate, {module} {layer}, has similarity {value}, which is not finite (the model overflows or has non-finite weights); only modules with finite similarities are dropped")]
    NotFinite {
        strategy: String,
        module: &'static str,
        layer: usize,
        value: f64,
    },
    #[error("cannot drop {n} consecutive layers: no allowed start has a finite similarity (the model overflows or has non-finite weights)")]
    NoFiniteRun { n: usize },
    #[error("these scores have no consecutive matrix; score again with it")]
    NoConsecutiveScores,
    /// Iterative selection asked of the consecutive strategy.
    #[error("iterative selection does not apply to the consecutive strategy")]
    IterativeConsecutive,
    /// A sweep asked to cover the consecutive strategy.
    #[error("the sweep covers block, attn, mlp and joint, not consecutive")]
    SweepConsecutive,
    #[error("re-scoring gave {got} layers, the model has {num_layers}")]
    Rescored { got: usize, num_layers: usize },
}

fn at(path: &std::path::Path, line: Option<usize>) -> String {
    match line {
        Some(n) => format!("{}:{n}", path.display()),
        None => path.display().to_string(),
    }
}

fn resume_hint(checkpoint: Option<&std::path::Path>) -> String {
    match checkpoint {
        Some(p) => format!(
            "; the checkpoint {} resumes the run from there: run it again with the same model, data, settings and output",
            p.display()
        ),
        None => String::new(),
    }
}

fn exists(noun: &str, own: bool) -> String {
    if own {
        format!("exists ({noun} written by llmdrop); replacing it needs `force`")
    } else {
        format!(
            "exists and is not {noun} written by llmdrop; it is never replaced, even with \
             `force`: choose another path"
        )
    }
}

impl From<PlanError> for Error {
    fn from(e: PlanError) -> Self {
        Error::Plan(e)
    }
}

impl From<StrategyError> for Error {
    fn from(e: StrategyError) -> Self {
        Error::Strategy(e)
    }
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

    pub(crate) fn argument(option: &'static str, reason: impl Into<String>) -> Self {
        Error::Argument {
            option,
            reason: reason.into(),
        }
    }

    pub(crate) fn data(
        path: impl Into<PathBuf>,
        line: Option<usize>,
        reason: impl Into<String>,
    ) -> Self {
        Error::Data {
            path: path.into(),
            line,
            reason: reason.into(),
        }
    }

    pub(crate) fn unsupported(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Unsupported {
            what: what.into(),
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_keep_their_cause_as_source() {
        let e = Error::io("m.gguf", std::io::Error::from(std::io::ErrorKind::NotFound));
        let src = std::error::Error::source(&e).expect("a source");
        assert_eq!(
            src.to_string(),
            std::io::Error::from(std::io::ErrorKind::NotFound).to_string()
        );
        assert!(e.to_string().starts_with("m.gguf: "), "{e}");
    }

    #[test]
    fn messages_name_options_not_flags() {
        let e: Error = StrategyError::Protected {
            keep_first: 3,
            keep_last: 4,
            num_layers: 6,
        }
        .into();
        assert!(!e.to_string().contains("--"), "{e}");
        let e = Error::Exists {
            path: "x".into(),
            noun: "a scores file".into(),
            own: true,
        };
        assert!(e.to_string().contains("needs `force`"), "{e}");
    }
}

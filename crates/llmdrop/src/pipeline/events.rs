//! What a workflow tells its caller while it runs, besides progress.

use std::path::Path;

use crate::progress::{NoProgress, Progress};

/// Something a caller may want to say or act on; the library itself never prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event<'a> {
    /// The scores file was computed from this model, data and settings: it is used as is.
    ScoresReused { path: &'a Path },
    /// The scores file is from another model, data or settings: the model is scored again.
    ScoresStale { path: &'a Path },
    /// Iterative selection re-scores the model with these many modules dropped.
    Rescoring { attn: usize, mlp: usize },
    /// Staging left by an interrupted run beside an output, removed before writing.
    StaleRemoved { path: &'a Path },
    /// A sweep point starts: `index` of `total` (from 1).
    SweepPoint {
        index: usize,
        total: usize,
        label: &'a str,
    },
    /// Scoring runs the model as `choice` says (held or layer-streamed), spilling
    /// `choice.spill_bytes` into `spill_dir` when streamed.
    ScoringMode {
        choice: crate::budget::MemoryChoice,
        spill_dir: Option<&'a Path>,
    },
    /// Perplexity runs the model as `choice` says; layer-streamed, `group` windows pass
    /// through the layers at once, and the output head is read `head_rows` vocabulary rows
    /// at a time.
    PplMode {
        choice: crate::budget::MemoryChoice,
        group: Option<usize>,
        head_rows: Option<usize>,
    },
    /// Evaluation runs `model` as `choice` says (held, or its layers streamed for every
    /// task and the perplexity).
    EvalMode {
        choice: crate::budget::MemoryChoice,
        model: &'a str,
    },
    /// Layer-streamed scoring saves its progress in `path` after every layer; a run stopped
    /// (or killed) is resumed from there by the same call (same model, data, settings).
    Checkpointing { path: &'a Path },
    /// A checkpoint of this very scoring was found: the run continues after `layer` of
    /// `layers` layers (every layer before it is not run again).
    Resuming {
        layer: usize,
        layers: usize,
        path: &'a Path,
    },
    /// A checkpoint of the same output for another model, data, settings or llmdrop
    /// version was removed.
    CheckpointStale { path: &'a Path },
    /// A checkpoint of this scoring was removed because the run was asked to start over.
    CheckpointDiscarded { path: &'a Path },
    /// A checkpoint that cannot be trusted (damaged, cut short, of another format) was
    /// cleared; the run starts from the first layer.
    CheckpointIgnored { path: &'a Path, reason: &'a str },
    /// The run failed after saving `layer` of `layers` layers in `path`, which stays: the
    /// same call, once the cause is fixed, resumes from there.
    CheckpointKept {
        layer: usize,
        layers: usize,
        path: &'a Path,
    },
    /// An export's reload check runs both models as `choice` says: held side by side, or
    /// each layer-streamed.
    ExportCheckMode { choice: crate::budget::MemoryChoice },
    /// A large, short-lived structure (the tokenizer, a load's copies) was just freed: a
    /// good moment for a process to hand memory back to the OS.
    Freed,
}

/// Receives a workflow's progress and events. Both default to doing nothing.
pub trait Observer: Progress {
    /// Something happened (see [`Event`]).
    fn event(&mut self, _event: Event<'_>) {}
}

impl Observer for NoProgress {}

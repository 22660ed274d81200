//! Progress bars on stderr, only when it is a terminal and output is neither JSON nor
//! `--quiet`; the informational lines on stderr, unless `--quiet`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressStyle};
use llmdrop::pipeline::{Event, Observer};
use llmdrop::progress::Progress;

use crate::args::Ctx;

pub struct Bars {
    enabled: bool,
    bar: Option<ProgressBar>,
}

impl Bars {
    pub fn new(ctx: Ctx) -> Self {
        Self {
            enabled: !ctx.json && !ctx.quiet && std::io::stderr().is_terminal(),
            bar: None,
        }
    }
}

impl Progress for Bars {
    fn start(&mut self, label: &str, total: u64) {
        if !self.enabled {
            return;
        }
        let b = ProgressBar::new(total);
        b.set_style(
            ProgressStyle::with_template(
                "{msg:>12} [{bar:30}] {pos}/{len} {elapsed_precise} eta {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        b.set_message(label.to_string());
        self.bar = Some(b);
    }

    fn start_at(&mut self, label: &str, total: u64, done: u64) {
        self.start(label, total);
        if let Some(b) = &self.bar {
            // the rate (and so the ETA) counts this run's steps only
            b.set_position(done);
            b.reset_eta();
        }
    }

    fn advance(&mut self, n: u64) {
        if let Some(b) = &self.bar {
            b.inc(n);
        }
    }

    fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}

/// What the commands show of a workflow: its bars, and its events as the log lines on
/// stderr (the ones a JSON run would interleave with nothing are kept under `--json` too;
/// none under `--quiet`).
pub struct Console {
    bars: Bars,
    json: bool,
    quiet: bool,
}

impl Console {
    pub fn new(ctx: Ctx) -> Self {
        Self {
            bars: Bars::new(ctx),
            json: ctx.json,
            quiet: ctx.quiet,
        }
    }
}

impl Progress for Console {
    fn start(&mut self, label: &str, total: u64) {
        self.bars.start(label, total);
    }

    fn start_at(&mut self, label: &str, total: u64, done: u64) {
        self.bars.start_at(label, total, done);
    }

    fn advance(&mut self, n: u64) {
        self.bars.advance(n);
    }

    fn finish(&mut self) {
        self.bars.finish();
    }

    fn cancelled(&self) -> bool {
        STOP.load(Ordering::SeqCst) != 0
    }
}

/// The checkpoint of the layer-streamed scoring under way (set by its event), for the
/// signal thread: while there is one, a first signal asks the run to stop after the
/// layer it is on ([`request_stop`]).
static CHECKPOINT: Mutex<Option<PathBuf>> = Mutex::new(None);
/// The signal that asked the run to stop (0: none).
static STOP: AtomicI32 = AtomicI32::new(0);

fn checkpoint() -> std::sync::MutexGuard<'static, Option<PathBuf>> {
    CHECKPOINT.lock().unwrap_or_else(|p| p.into_inner())
}

/// The checkpointed run is over (done or failed): signals end the process again.
pub fn checkpoint_done() {
    *checkpoint() = None;
}

/// Called by the signal thread: while a checkpointed run is under way, the first signal
/// asks it to stop after the layer it is on, saved (true); a second one, or any without
/// such a run, is left to the caller, which exits at once (false).
pub fn request_stop(sig: i32) -> bool {
    let guard = checkpoint();
    let Some(dir) = guard.as_ref() else {
        return false;
    };
    if STOP
        .compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst)
        .is_err()
    {
        return false;
    }
    eprintln!(
        "\nllmdrop: stopping after this layer, saved in {} for the same command to resume \
         from; a second signal stops at once",
        crate::output::printable(&dir.display().to_string())
    );
    true
}

/// The signal a stopped run was asked to stop by.
pub fn stop_signal() -> Option<i32> {
    Some(STOP.load(Ordering::SeqCst)).filter(|&s| s != 0)
}

/// Where the run under way saves its progress (for the line a signal prints).
pub fn checkpoint_path() -> Option<PathBuf> {
    checkpoint().clone()
}

impl Observer for Console {
    fn event(&mut self, event: Event<'_>) {
        if let Event::Checkpointing { path } = event {
            *checkpoint() = Some(path.to_path_buf());
        }
        if let Event::PplMode { choice, .. } | Event::EvalMode { choice, .. } = event {
            streamed_memory(&choice);
        }
        if self.quiet {
            if let Event::Freed = event {
                crate::memory::release_freed();
            }
            return;
        }
        match event {
            Event::ScoresReused { path } => eprintln!("reusing scores from {}", path.display()),
            Event::ScoresStale { path } => eprintln!(
                "{} is from another model, data or settings: scoring again",
                path.display()
            ),
            Event::Rescoring { attn, mlp } if !self.json => {
                eprintln!("re-scoring with {attn} attention / {mlp} MLP layers dropped")
            }
            Event::StaleRemoved { path } => eprintln!(
                "llmdrop: removed {}, left by an interrupted run",
                crate::output::printable(&path.display().to_string())
            ),
            Event::SweepPoint {
                index,
                total,
                label,
            } if !self.json => eprintln!("[{index}/{total}] {label}"),
            Event::ScoringMode { choice, spill_dir } => {
                eprintln!("{}", scoring_mode(&choice, spill_dir))
            }
            Event::PplMode {
                choice,
                group,
                head_rows,
            } => eprintln!("{}", ppl_mode(&choice, group, head_rows)),
            Event::EvalMode { choice, model } => eprintln!("{}", eval_mode(&choice, model)),
            Event::Checkpointing { path } => eprintln!(
                "checkpointing after every layer in {}: an interrupted run resumes from there \
                 when run again (--no-resume starts over)",
                shown(path)
            ),
            Event::Resuming {
                layer,
                layers,
                path,
            } => eprintln!("resuming at layer {layer} of {layers} from {}", shown(path)),
            Event::CheckpointStale { path } => eprintln!(
                "removed {}, the checkpoint of this output for another model, data, settings \
                 or llmdrop version",
                shown(path)
            ),
            Event::CheckpointDiscarded { path } => {
                eprintln!("removed the checkpoint {}: starting over", shown(path))
            }
            Event::CheckpointIgnored { path, reason } => eprintln!(
                "llmdrop: warning: the checkpoint in {} cannot be trusted ({}); cleared, \
                 starting over",
                shown(path),
                crate::output::printable(reason)
            ),
            Event::CheckpointKept {
                layer,
                layers,
                path,
            } => eprintln!(
                "llmdrop: {layer} of {layers} layers are saved in {}: once the error below is \
                 fixed, the same command resumes from there",
                shown(path)
            ),
            Event::ExportCheckMode { choice } => eprintln!("{}", export_check_mode(&choice)),
            Event::Freed => crate::memory::release_freed(),
            _ => {}
        }
    }
}

fn shown(p: &Path) -> String {
    crate::output::printable(&p.display().to_string()).into_owned()
}

/// The line that says how scoring runs the model, and why.
fn scoring_mode(c: &llmdrop::budget::MemoryChoice, spill_dir: Option<&std::path::Path>) -> String {
    use llmdrop::budget::format_size;
    let why = why(c);
    let spill = match (c.spill_bytes, spill_dir) {
        (Some(b), Some(d)) => format!(
            ", spilling {} of unit hidden states to {}",
            format_size(b),
            d.display()
        ),
        _ => String::new(),
    };
    format!(
        "scoring {}{why}: needs about {} for weights and hidden states{spill}",
        c.mode.name(),
        format_size(c.need_bytes)
    )
}

/// Why the mode of `c` was chosen: forced, or the budget it fits.
fn why(c: &llmdrop::budget::MemoryChoice) -> String {
    match (c.forced, c.budget_bytes) {
        (true, _) => " (--stream)".to_string(),
        (false, Some(b)) => format!(" (budget {})", llmdrop::budget::format_size(b)),
        (false, None) => String::new(),
    }
}

/// The line that says how an export's reload check runs the two models, and why.
fn export_check_mode(c: &llmdrop::budget::MemoryChoice) -> String {
    let how = match c.mode {
        llmdrop::budget::ScoreMode::InMemory => "both models held",
        llmdrop::budget::ScoreMode::Streamed => "each model layer-streamed",
    };
    format!(
        "reload check: {how}{}: needs about {}",
        why(c),
        llmdrop::budget::format_size(c.need_bytes)
    )
}

/// The line that says how perplexity runs the model, and why.
fn ppl_mode(
    c: &llmdrop::budget::MemoryChoice,
    group: Option<usize>,
    head_rows: Option<usize>,
) -> String {
    let group = group.map_or(String::new(), |g| {
        format!(", {g} windows through each layer at once")
    });
    format!(
        "perplexity {}{}: needs about {} for weights, hidden states and logits{group}{}",
        c.mode.name(),
        why(c),
        llmdrop::budget::format_size(c.need_bytes),
        head(head_rows),
    )
}

/// `, the output head N vocabulary rows at a time` (streamed).
fn head(rows: Option<usize>) -> String {
    rows.map_or(String::new(), |r| {
        format!(", the output head {r} vocabulary rows at a time")
    })
}

/// The line that says how evaluation runs a model, and why.
fn eval_mode(c: &llmdrop::budget::MemoryChoice, model: &str) -> String {
    format!(
        "evaluating {model} {}{}: needs about {} for weights, hidden states and logits",
        c.mode.name(),
        why(c),
        llmdrop::budget::format_size(c.need_bytes)
    )
}

/// A layer-streamed perplexity or evaluation is held to its budget: freed blocks go back
/// to the OS ([`crate::memory::map_large_blocks`]).
fn streamed_memory(c: &llmdrop::budget::MemoryChoice) {
    if c.mode == llmdrop::budget::ScoreMode::Streamed {
        crate::memory::map_large_blocks();
    }
}

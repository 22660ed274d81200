//! Progress bars on stderr, only when it is a terminal and output is neither JSON nor
//! `--quiet`; the informational lines on stderr, unless `--quiet`.

use std::io::IsTerminal;

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

    fn advance(&mut self, n: u64) {
        self.bars.advance(n);
    }

    fn finish(&mut self) {
        self.bars.finish();
    }
}

impl Observer for Console {
    fn event(&mut self, event: Event<'_>) {
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
            Event::Freed => crate::memory::release_freed(),
            _ => {}
        }
    }
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

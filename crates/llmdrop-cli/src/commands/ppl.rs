use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use llmdrop::eval::PplOptions;
use llmdrop::pipeline::ppl_model;
use serde::Serialize;

use crate::args::{threads, Ctx, DropArgs, ModelArgs};
use crate::memory_args::BudgetArgs;
use crate::output;
use crate::progress::Console;

#[derive(Args)]
pub struct PplArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    drop: DropArgs,
    /// UTF-8 text file to score.
    #[arg(long)]
    data: PathBuf,
    /// Window length in tokens.
    #[arg(long, default_value_t = 512)]
    seq_len: usize,
    /// Score at most this many windows.
    #[arg(long)]
    max_windows: Option<usize>,
    /// Score only the second half of each window, as llama.cpp's llama-perplexity does.
    #[arg(long)]
    second_half: bool,
    #[command(flatten)]
    memory: BudgetArgs,
}

#[derive(Serialize)]
struct PplReport {
    #[serde(flatten)]
    result: llmdrop::eval::PplResult,
    data: String,
    data_sha256: String,
    model: String,
    dtype: String,
    threads: usize,
    plan: llmdrop::DropPlan,
    second_half: bool,
    /// How the model was run (held or layer-streamed) and the memory it was estimated at.
    memory: llmdrop::budget::MemoryChoice,
    /// Layer-streamed: the windows run through each layer at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    windows_at_once: Option<usize>,
    /// Layer-streamed: the output head's vocabulary rows held at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    head_rows_at_once: Option<usize>,
    /// The process's peak resident memory (Linux), bytes.
    peak_rss_bytes: Option<u64>,
}

pub fn run(a: PplArgs, ctx: Ctx) -> anyhow::Result<ExitCode> {
    let plan = a.drop.plan();
    let text = llmdrop::io::read_utf8(&a.data)?;
    let src = a.model.open()?;
    a.model.note_requantized(&src, ctx);
    let opts = PplOptions {
        seq_len: a.seq_len,
        max_windows: a.max_windows,
        second_half: a.second_half,
        bos: None,
    };
    let run = ppl_model(
        &src,
        a.model.dtype,
        &plan,
        &text,
        &opts,
        &a.memory.policy(),
        &mut Console::new(ctx),
    )?;
    let r = run.result;
    let failed = r.non_finite();
    if ctx.json {
        output::print_json(
            "ppl",
            &PplReport {
                result: r,
                data: a.data.display().to_string(),
                data_sha256: llmdrop::io::sha256_bytes(text.as_bytes()),
                model: src.path().display().to_string(),
                dtype: a.model.dtype.name().to_string(),
                threads: threads(),
                plan,
                second_half: a.second_half,
                memory: run.memory,
                windows_at_once: run.group,
                head_rows_at_once: run.head_rows,
                peak_rss_bytes: llmdrop::bench::peak_rss_bytes(),
            },
        )?;
    } else {
        output::print_text(&format!(
            "ppl {:.4}  (nll {:.3} over {} tokens, {} windows of {})\n",
            r.ppl, r.nll, r.tokens_scored, r.windows, r.seq_len
        ))?;
    }
    Ok(output::checked(failed))
}

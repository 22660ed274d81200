use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use llmdrop::eval::{perplexity, PplOptions};
use llmdrop::progress::NoProgress;
use serde::Serialize;

use crate::args::{threads, Ctx, DropArgs, ModelArgs};
use crate::output;

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
}

pub fn run(a: PplArgs, ctx: Ctx) -> anyhow::Result<ExitCode> {
    let plan = a.drop.plan();
    let text = llmdrop::io::read_utf8(&a.data)?;
    let (src, dec, tok) = a.model.load(&plan, ctx)?;
    let ids = tok.encode(&text)?;
    let opts = PplOptions {
        seq_len: a.seq_len,
        max_windows: a.max_windows,
        second_half: a.second_half,
        bos: tok.sequence_bos(),
    };
    let r = perplexity(&dec, &ids, &opts, &mut NoProgress)?;
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

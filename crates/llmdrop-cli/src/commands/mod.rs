//! One file per command.

mod bench;
mod drop;
mod eval;
mod export;
mod generate;
mod inspect;
mod logits;
mod ppl;
mod score;
pub mod serve;
mod sweep;

use std::process::ExitCode;

use clap::Subcommand;

use crate::args::Ctx;

#[derive(Subcommand)]
pub enum Command {
    /// Architecture, parameters per layer, tensor types, files and hashes.
    Inspect(inspect::InspectArgs),
    /// Generate text from a prompt (greedy unless --temperature).
    Generate(generate::GenerateArgs),
    /// Perplexity of a text file over non-overlapping windows.
    Ppl(ppl::PplArgs),
    /// Score every block, attention and MLP layer on calibration text.
    Score(score::ScoreArgs),
    /// Choose what to drop with a strategy and write the pruned model.
    Drop(drop::DropArgs),
    /// Write a pruned model in a format engines load (hf-llmdrop, hf, nemotron-nas, gguf).
    Export(export::ExportArgs),
    /// Multiple-choice accuracy and perplexity of the model and its pruned variants.
    Eval(eval::EvalArgs),
    /// Quality against modules dropped for each strategy: the paper's curves.
    Sweep(sweep::SweepArgs),
    /// Logits of every position as JSON (to compare with other engines).
    Logits(logits::LogitsArgs),
    /// Prefill and decode speed, KV-cache bytes.
    Bench(bench::BenchArgs),
    /// OpenAI-compatible HTTP server (completions with echo log-probs, chat, tokenizer).
    Serve(serve::ServeArgs),
}

/// Runs `cmd` with the global flags in `ctx`.
pub fn run(cmd: Command, ctx: Ctx) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Inspect(a) => inspect::run(a, ctx),
        Command::Generate(a) => generate::run(a, ctx),
        Command::Ppl(a) => ppl::run(a, ctx),
        Command::Score(a) => score::run(a, ctx),
        Command::Drop(a) => drop::run(a, ctx),
        Command::Export(a) => export::run(a, ctx),
        Command::Eval(a) => eval::run(a, ctx),
        Command::Sweep(a) => sweep::run(a, ctx),
        Command::Logits(a) => logits::run(a, ctx),
        Command::Bench(a) => bench::run(a, ctx),
        Command::Serve(a) => serve::run(a, ctx),
    }
}

//! One file per command.

mod bench;
mod generate;
mod inspect;
mod ppl;

use std::process::ExitCode;

use clap::Subcommand;

#[derive(Subcommand)]
pub enum Command {
    /// Architecture, parameters per layer, tensor types, files and hashes.
    Inspect(inspect::InspectArgs),
    /// Generate text from a prompt (greedy unless --temperature).
    Generate(generate::GenerateArgs),
    /// Perplexity of a text file over non-overlapping windows.
    Ppl(ppl::PplArgs),
    /// Prefill and decode speed, KV-cache bytes.
    Bench(bench::BenchArgs),
}

pub fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Inspect(a) => inspect::run(a),
        Command::Generate(a) => generate::run(a),
        Command::Ppl(a) => ppl::run(a),
        Command::Bench(a) => bench::run(a),
    }
}

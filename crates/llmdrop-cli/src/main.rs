//! `llmdrop`: score, drop and measure the layers of decoder-only LLMs.
//!
//! main only parses and dispatches; each command lives in `commands/`.
//! Exit codes: 0 success, 1 checked and failed, 2 error.

mod args;
mod commands;
mod output;
mod progress;

use std::process::ExitCode;

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "llmdrop",
    version,
    about = "Find and remove the redundant layers of an LLM, and measure what it costs"
)]
struct Cli {
    #[command(subcommand)]
    command: commands::Command,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match commands::run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            if output::is_broken_pipe(&e) {
                return ExitCode::SUCCESS;
            }
            eprintln!("llmdrop: {e:#}");
            ExitCode::from(2)
        }
    }
}

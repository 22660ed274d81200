//! `llmdrop`: score, drop and measure the layers of decoder-only LLMs.
//!
//! main only parses and dispatches; each command lives in `commands/`.
//! Exit codes: 0 success, 1 checked and failed, 2 error.

mod args;
mod commands;
mod memory;
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
    single_candle_elementwise_thread();
    if let Err(e) = clean_up_on_signals() {
        eprintln!("llmdrop: installing the signal handler: {e}");
        return ExitCode::from(2);
    }
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
            eprintln!("llmdrop: {}", output::printable(&format!("{e:#}")));
            ExitCode::from(2)
        }
    }
}

/// On SIGINT, SIGTERM or SIGHUP: remove this run's staging (a half-written output never
/// stays behind), then exit 128 + the signal number (130 for Ctrl-C, 143 for SIGTERM).
fn clean_up_on_signals() -> std::io::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                llmdrop::dest::abandon_all();
                eprintln!("\nllmdrop: interrupted; unfinished outputs removed");
                std::process::exit(128 + sig);
            }
        })?;
    Ok(())
}

/// candle runs large elementwise ops on its own spinning thread pool, beside rayon's (which
/// runs llmdrop's kernels and candle's matmuls). On a machine with as many cores as rayon
/// threads, the spinning workers take cores from the matmuls: with 2 threads, prefill ran
/// 1.5x faster with candle's pool off (measured with `llmdrop bench`). Unless the user sets
/// `CANDLE_NUM_THREADS`, the elementwise ops run on the calling thread.
fn single_candle_elementwise_thread() {
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        // still single-threaded here: nothing else reads the environment yet
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
}

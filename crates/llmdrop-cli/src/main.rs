//! `llmdrop`: score, drop and measure the layers of decoder-only LLMs.
//!
//! main only parses and dispatches; each command lives in `commands/`.
//! Exit codes: 0 success, 1 checked and failed, 2 error (see [`EXIT_CODES`]).

mod args;
mod commands;
mod memory;
mod memory_args;
mod output;
mod progress;

use std::process::ExitCode;

use clap::Parser;

/// The exit codes, as `llmdrop --help` states them.
const EXIT_CODES: &str = "\
Exit codes:
  0    success
  1    checked and failed: a result that is not a number (perplexity, accuracy, a sweep
       point; the results on stdout), or an export that does not reload as the pruned
       model (nothing moved into place); the reason is on stderr
  2    error: bad arguments or input, a failed write
  130  interrupted (Ctrl-C), 143 terminated: unfinished outputs are removed; layer-streamed
       scoring stops after the layer it is on and resumes from it when run again";

#[derive(Parser)]
#[command(
    name = "llmdrop",
    version,
    about = "Find and remove the redundant layers of an LLM, and measure what it costs",
    after_help = EXIT_CODES
)]
struct Cli {
    #[command(flatten)]
    global: args::GlobalArgs,
    #[command(subcommand)]
    command: commands::Command,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => return output::usage_error(&e),
    };
    // the kernels chosen while no other thread exists: Linux grants AMX's tile state
    // (llmdrop_kernels::Caps::amx_bf16) only where every thread's signal stack can hold it
    llmdrop_kernels::caps();
    // a measurement setting the kernels would ignore: refused, not quietly measured past
    if let Some(e) = llmdrop_kernels::gemm::Blocking::env_error() {
        eprintln!("llmdrop: {}", output::printable(&e));
        return ExitCode::from(2);
    }
    // still single-threaded here: nothing else reads the environment yet
    set_threads(cli.global.threads);
    single_candle_elementwise_thread();
    if let Err(e) = clean_up_on_signals() {
        eprintln!("llmdrop: installing the signal handler: {e}");
        return ExitCode::from(2);
    }
    match commands::run(cli.command, cli.global.ctx()) {
        Ok(code) => code,
        Err(e) => output::error(&e),
    }
}

/// `--threads N`: rayon's global pool (llmdrop's kernels, candle's matmuls) gets N threads,
/// and so does what candle and the reports count (`candle_core::utils::get_num_threads`
/// reads `RAYON_NUM_THREADS`). Without the flag, `RAYON_NUM_THREADS` or one thread per
/// core, as before.
fn set_threads(threads: Option<u16>) {
    if let Some(n) = threads {
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    }
}

/// On SIGINT, SIGTERM or SIGHUP: remove this run's staging (a half-written output never
/// stays behind), then exit 128 + the signal number (130 for Ctrl-C, 143 for SIGTERM).
/// `serve` first drains its open requests, then exits with the same code; checkpointed
/// scoring first finishes and saves the layer it is on (a second signal exits at once, the
/// last saved layer kept).
fn clean_up_on_signals() -> std::io::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                // a running server drains on the first signal (and exits here on a second)
                if commands::serve::drain(sig) {
                    continue;
                }
                // a checkpointed scoring run stops after its layer on the first signal
                if progress::request_stop(sig) {
                    continue;
                }
                llmdrop::dest::abandon_all();
                match progress::checkpoint_path() {
                    Some(dir) => eprintln!(
                        "\nllmdrop: interrupted; unfinished outputs removed; the layers saved in \
                         {} resume the run when the same command runs again",
                        output::printable(&dir.display().to_string())
                    ),
                    None => eprintln!("\nllmdrop: interrupted; unfinished outputs removed"),
                }
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
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
}

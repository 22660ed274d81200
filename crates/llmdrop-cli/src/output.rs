//! The one way out: results to stdout (text or JSON), errors to stderr as
//! `llmdrop: <context>: <cause>`, and the exit code; a closed stdout (`llmdrop … | head`)
//! ends the run quietly with success.

use std::io::Write;
use std::process::ExitCode;

use serde::Serialize;

/// Version of the JSON documents the commands print.
pub const SCHEMA_VERSION: u32 = 1;

/// Prints `value` as pretty JSON with a `schema_version` field first and a `machine`
/// field last (the CPU model, cores and caches the figures in it come from), after an
/// `f32_gemm` field where f32 products ran (their call and how it was chosen).
pub fn print_json<T: Serialize>(kind: &str, value: &T) -> anyhow::Result<()> {
    let mut v = serde_json::to_value(value)?;
    let mut doc = serde_json::Map::new();
    doc.insert("schema_version".into(), SCHEMA_VERSION.into());
    doc.insert("kind".into(), kind.into());
    doc.insert("llmdrop_version".into(), llmdrop::VERSION.into());
    if let Some(obj) = v.as_object_mut() {
        doc.append(obj);
    }
    // the f32 call this run's products used and how it was chosen, where they ran
    if let Some(choice) = llmdrop_kernels::gemm::Blocking::choice() {
        doc.entry("f32_gemm")
            .or_insert(serde_json::to_value(choice)?);
    }
    doc.entry("machine").or_insert(serde_json::to_value(
        llmdrop_kernels::machine::Machine::detect(),
    )?);
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, &doc)?;
    writeln!(out)?;
    Ok(())
}

/// Prints text to stdout, control characters escaped (see [`printable`]).
pub fn print_text(s: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(printable(s).as_bytes())?;
    out.flush()?;
    Ok(())
}

/// Writes streamed text (tokens as they are generated) to stdout, escaped as
/// [`print_text`] does. An error here is a closed or failed stdout: the caller stops.
pub fn stream_text(s: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(printable(s).as_bytes())?;
    out.flush()
}

/// The exit code of a command that failed: quiet success when stdout was closed, else the
/// error on stderr and 1 for an export that failed its reload check, 2 for any other error.
pub fn error(e: &anyhow::Error) -> ExitCode {
    if is_broken_pipe(e) {
        return ExitCode::SUCCESS;
    }
    eprintln!("llmdrop: {}", printable(&message(e)));
    let stopped = e.chain().any(|c| {
        matches!(
            c.downcast_ref::<llmdrop::Error>(),
            Some(llmdrop::Error::Cancelled { .. })
        )
    });
    if stopped {
        // stopped by a signal: 128 + its number, as if it had ended the process
        let sig = crate::progress::stop_signal().unwrap_or(2);
        return ExitCode::from((128 + sig).clamp(0, 255) as u8);
    }
    let checked_and_failed = e.chain().any(|c| {
        matches!(
            c.downcast_ref::<llmdrop::Error>(),
            Some(llmdrop::Error::ReloadMismatch(_))
        )
    });
    ExitCode::from(if checked_and_failed { 1 } else { 2 })
}

/// The error as the user reads it: its chain joined by `: ` (a cause whose text its parent
/// already ends with is not repeated: `Error::Io` shows its `io::Error` and also gives it as
/// the source), with the library's option names said as this command line's flags.
pub fn message(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut parent = String::new();
    for c in e.chain() {
        let own = c.to_string();
        if !parent.is_empty() && parent.ends_with(&own) {
            continue;
        }
        parts.push(match c.downcast_ref::<llmdrop::Error>() {
            Some(l) => with_flags(l),
            None => own.clone(),
        });
        parent = own;
    }
    parts.join(": ")
}

/// The CLI flag that sets a library option (`keep_first` -> `--keep-first`).
fn flag(option: &str) -> String {
    format!("--{}", option.replace('_', "-"))
}

/// A library error's message, naming the flag to change where the library names an option.
fn with_flags(e: &llmdrop::Error) -> String {
    use llmdrop::{Error, StrategyError};
    match e {
        Error::Exists {
            path,
            noun,
            own: true,
        } => format!(
            "{}: output refused: exists ({noun} written by llmdrop); use --force to replace it",
            path.display()
        ),
        Error::Exists {
            path,
            noun,
            own: false,
        } => format!(
            "{}: output refused: exists and is not {noun} written by llmdrop; it is never \
             replaced, even with --force: choose another path",
            path.display()
        ),
        Error::Argument { option, reason } => format!("{} {reason}", flag(option)),
        Error::MemoryBudget { .. } => e.to_string().replace("`max_memory`", "--max-memory"),
        Error::SpillSpace { .. } => e.to_string().replace("`spill_dir`", "--spill-dir"),
        Error::Cancelled {
            done,
            total,
            checkpoint: Some(dir),
        } => format!(
            "interrupted with {done} of {total} layers done; run the same command again to \
             resume from there (saved in {}; --no-resume starts over)",
            dir.display()
        ),
        Error::SamePath {
            first,
            second,
            path,
        } => format!(
            "{} and {} are the same path {}",
            flag(first),
            flag(second),
            path.display()
        ),
        Error::Strategy(StrategyError::Protected {
            keep_first,
            keep_last,
            num_layers,
        }) => format!(
            "--keep-first {keep_first} and --keep-last {keep_last} protect more than the \
             model's {num_layers} layers"
        ),
        Error::Strategy(StrategyError::TooMany {
            strategy,
            n,
            available,
        }) => format!(
            "cannot drop {n} with strategy {strategy}: only {available} candidates (after \
             --keep-first/--keep-last)"
        ),
        Error::Strategy(StrategyError::IterativeConsecutive) => {
            "--iterative does not apply to the consecutive strategy".into()
        }
        Error::Strategy(s @ StrategyError::SweepConsecutive) => {
            format!("{s}; use `llmdrop drop` for consecutive")
        }
        Error::Plan(llmdrop::PlanError::FirstAttentionDropped { layer }) => format!(
            "drop plan: format nemotron-nas: attention {layer} is dropped, and layer {layer} is \
             the first layer the plan keeps anything of: vLLM's DeciLM decoder layer then calls \
             its fused residual RMSNorm with residual = None and fails; keep that attention \
             (`llmdrop drop`: --keep-first {}), or pass --allow-first-attn-drop to write the \
             export anyway (llmdrop and transformers, with the export's own modeling file, run it)",
            layer + 1
        ),
        _ => e.to_string(),
    }
}

/// The exit code of a command line clap refused (2, the message as `llmdrop: …` on
/// stderr), or of `--help` / `--version` (0, printed on stdout).
pub fn usage_error(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if !e.use_stderr() {
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    let text = e.render().to_string();
    match e.kind() {
        // `llmdrop` alone: the usage, as clap prints it
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => eprint!("{text}"),
        _ => eprint!("llmdrop: {}", text.strip_prefix("error: ").unwrap_or(&text)),
    }
    ExitCode::from(2)
}

/// `s` with every control character but newline and tab escaped (`\u{1b}`): strings from
/// model files (names, metadata, tokens) cannot move the cursor or recolour the terminal.
pub fn printable(s: &str) -> std::borrow::Cow<'_, str> {
    let bad = |c: char| c.is_control() && c != '\n' && c != '\t';
    if !s.chars().any(bad) {
        return s.into();
    }
    s.chars()
        .map(|c| {
            if bad(c) {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect::<String>()
        .into()
}

/// Exit code 1 ("checked and failed") with the reason on stderr when a result that was
/// printed is not a number; else success.
pub fn checked(failure: Option<String>) -> ExitCode {
    match failure {
        Some(why) => {
            eprintln!("llmdrop: {}", printable(&why));
            ExitCode::from(1)
        }
        None => ExitCode::SUCCESS,
    }
}

/// Whether an error is a write to a closed stdout (`llmdrop … | head`).
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        let io = c
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe);
        let json = c
            .downcast_ref::<serde_json::Error>()
            .and_then(|j| j.io_error_kind())
            == Some(std::io::ErrorKind::BrokenPipe);
        io || json
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_options_are_said_as_flags_and_causes_are_not_repeated() {
        let e = anyhow::Error::from(llmdrop::Error::from(llmdrop::StrategyError::Protected {
            keep_first: 3,
            keep_last: 4,
            num_layers: 6,
        }));
        assert!(message(&e).starts_with("--keep-first 3 and --keep-last 4 protect"));
        let e = anyhow::Error::from(llmdrop::Error::Argument {
            option: "seq_len",
            reason: "is 1: it must be at least 2".into(),
        });
        assert_eq!(message(&e), "--seq-len is 1: it must be at least 2");
        let io = std::io::Error::other("disk on fire");
        let e = anyhow::Error::from(llmdrop::Error::Io {
            path: "m.gguf".into(),
            cause: io,
        })
        .context("reading the model");
        assert_eq!(message(&e), "reading the model: m.gguf: disk on fire");
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(printable("a\tb\n"), "a\tb\n");
        assert_eq!(printable("x\x1b[31my\r"), "x\\u{1b}[31my\\u{d}");
    }
}

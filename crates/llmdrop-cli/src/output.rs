//! The one way out: results to stdout (text or JSON), errors to stderr as
//! `llmdrop: <context>: <cause>`, and the exit code; a closed stdout (`llmdrop … | head`)
//! ends the run quietly with success.

use std::io::Write;
use std::process::ExitCode;

use serde::Serialize;

/// Version of the JSON documents the commands print.
pub const SCHEMA_VERSION: u32 = 1;

/// Prints `value` as pretty JSON with a `schema_version` field first.
pub fn print_json<T: Serialize>(kind: &str, value: &T) -> anyhow::Result<()> {
    let mut v = serde_json::to_value(value)?;
    let mut doc = serde_json::Map::new();
    doc.insert("schema_version".into(), SCHEMA_VERSION.into());
    doc.insert("kind".into(), kind.into());
    doc.insert("llmdrop_version".into(), llmdrop::VERSION.into());
    if let Some(obj) = v.as_object_mut() {
        doc.append(obj);
    }
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
    eprintln!("llmdrop: {}", printable(&format!("{e:#}")));
    let checked_and_failed = e.chain().any(|c| {
        matches!(
            c.downcast_ref::<llmdrop::Error>(),
            Some(llmdrop::Error::ReloadMismatch(_))
        )
    });
    ExitCode::from(if checked_and_failed { 1 } else { 2 })
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
    fn control_characters_are_escaped() {
        assert_eq!(printable("a\tb\n"), "a\tb\n");
        assert_eq!(printable("x\x1b[31my\r"), "x\\u{1b}[31my\\u{d}");
    }
}

//! Writing results to stdout: text or JSON, quiet on a closed pipe.

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

//! Writing results to stdout: text or JSON, quiet on a closed pipe.

use std::io::Write;

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

/// Prints text to stdout.
pub fn print_text(s: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(s.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// Whether an error is a write to a closed stdout (`llmdrop … | head`).
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

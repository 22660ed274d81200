//! Reading calibration documents from plain text, JSON Lines, or a directory of such files.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::io::text::{read_utf8_limited, MAX_TEXT_BYTES};

/// Where calibration documents come from.
#[derive(Debug, Clone)]
pub struct TextSource {
    /// A `.txt` file (one document), a `.jsonl`/`.json` file (one document per line), or a
    /// directory: every such file below it, in sorted path order.
    pub path: PathBuf,
    /// JSON Lines field that holds the text.
    pub field: String,
}

impl TextSource {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            field: "text".into(),
        }
    }
}

fn is_jsonl(p: &Path) -> bool {
    matches!(
        p.extension().and_then(|e| e.to_str()),
        Some("jsonl") | Some("json") | Some("ndjson")
    )
}

/// Folders below a data directory llmdrop descends into (symlink loops end here).
const MAX_DEPTH: usize = 16;

fn collect_files(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(Error::data(
            dir,
            None,
            format!("more than {MAX_DEPTH} folders deep (a symlink loop?)"),
        ));
    }
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in rd {
        let p = entry.map_err(|e| Error::io(dir, e))?.path();
        if p.is_dir() {
            collect_files(&p, depth + 1, out)?;
        } else if is_jsonl(&p) || p.extension().and_then(|e| e.to_str()) == Some("txt") {
            out.push(p);
        }
    }
    Ok(())
}

/// Reads every document of `src`, in a deterministic order. Empty documents are skipped.
pub fn read_documents(src: &TextSource) -> Result<Vec<String>> {
    let meta = std::fs::metadata(&src.path).map_err(|e| Error::io(&src.path, e))?;
    let files = if meta.is_dir() {
        let mut f = Vec::new();
        collect_files(&src.path, 0, &mut f)?;
        f.sort();
        if f.is_empty() {
            return Err(Error::data(
                &src.path,
                None,
                "no .txt or .jsonl files found",
            ));
        }
        f
    } else {
        vec![src.path.clone()]
    };
    let mut docs = Vec::new();
    let mut left = MAX_TEXT_BYTES;
    for f in files {
        let size = std::fs::metadata(&f).map_err(|e| Error::io(&f, e))?.len();
        if size > left && left < MAX_TEXT_BYTES {
            return Err(Error::data(
                &src.path,
                None,
                format!(
                    "the calibration files hold more than the {} MiB llmdrop reads as text",
                    MAX_TEXT_BYTES >> 20
                ),
            ));
        }
        let text = read_utf8_limited(&f, left)?;
        left -= text.len() as u64;
        if is_jsonl(&f) {
            for (n, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let v: serde_json::Value = serde_json::from_str(line)
                    .map_err(|e| Error::data(&f, Some(n + 1), format!("not valid JSON: {e}")))?;
                let t = v.get(&src.field).and_then(|t| t.as_str()).ok_or_else(|| {
                    Error::data(&f, Some(n + 1), format!("no string field `{}`", src.field))
                })?;
                if !t.is_empty() {
                    docs.push(t.to_string());
                }
            }
        } else if !text.is_empty() {
            docs.push(text);
        }
    }
    if docs.is_empty() {
        return Err(Error::data(
            &src.path,
            None,
            "the calibration data holds no text",
        ));
    }
    Ok(docs)
}

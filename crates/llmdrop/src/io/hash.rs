//! Content hashes for reports and caches.

use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Hex sha256 of a file's bytes, read in chunks.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

/// Hex sha256 of bytes.
pub fn sha256_bytes(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The model's content hash: the file's sha256 for one file, else sha256 over
/// "name sha256\n" lines of every file (config and weights).
pub fn model_sha256(src: &super::source::ModelSource) -> Result<String> {
    let files = src.files();
    if files.len() == 1 {
        return sha256_file(&files[0]);
    }
    let mut lines = String::new();
    for f in &files {
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        lines.push_str(&format!("{name} {}\n", sha256_file(f)?));
    }
    Ok(sha256_bytes(lines.as_bytes()))
}

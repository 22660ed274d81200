//! Reading text inputs: regular files only, with a size limit, never more than the file holds.

use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};

/// The largest text file llmdrop reads (calibration data, perplexity text, task files): 1 GiB.
pub const MAX_TEXT_BYTES: u64 = 1 << 30;

/// The largest JSON document llmdrop reads (scores, plans, sweep results): 256 MiB.
pub const MAX_JSON_BYTES: u64 = 256 << 20;

/// Reads a file that must be UTF-8 and at most [`MAX_TEXT_BYTES`]; the error names the
/// offset of the first bad byte.
pub fn read_utf8(path: &Path) -> Result<String> {
    read_utf8_limited(path, MAX_TEXT_BYTES)
}

/// As [`read_utf8`], with the limit `limit` bytes.
pub fn read_utf8_limited(path: &Path, limit: u64) -> Result<String> {
    let bytes = read_limited(path, limit)?;
    String::from_utf8(bytes).map_err(|e| Error::NotUtf8 {
        path: path.into(),
        offset: e.utf8_error().valid_up_to(),
    })
}

/// Reads a regular file of at most `limit` bytes. FIFOs, devices and sockets are refused
/// (reading them could block forever or never end); so is a larger file, even one that grows
/// while it is read.
pub fn read_limited(path: &Path, limit: u64) -> Result<Vec<u8>> {
    let meta = regular_file(path)?;
    if meta.len() > limit {
        return Err(too_large(path, limit));
    }
    let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    f.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    if bytes.len() as u64 > limit {
        return Err(too_large(path, limit));
    }
    Ok(bytes)
}

/// The metadata of `path`, which must be a regular file (symlinks followed).
pub fn regular_file(path: &Path) -> Result<std::fs::Metadata> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.is_file() {
        return Ok(meta);
    }
    let what = if meta.is_dir() {
        "a directory"
    } else {
        "not a regular file (a pipe, socket or device)"
    };
    Err(Error::Input(format!(
        "{}: is {what}; llmdrop reads regular files",
        path.display()
    )))
}

fn too_large(path: &Path, limit: u64) -> Error {
    Error::Input(format!(
        "{}: larger than the {} MiB llmdrop reads as text; pass a smaller file",
        path.display(),
        limit >> 20
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_non_regular_files() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("a.txt");
        std::fs::write(&p, "hello").unwrap();
        assert_eq!(read_utf8_limited(&p, 5).unwrap(), "hello");
        let e = read_utf8_limited(&p, 4).unwrap_err().to_string();
        assert!(e.contains("larger than"), "{e}");
        let e = read_utf8(Path::new("/dev/zero")).unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
        let e = read_utf8(tmp.path()).unwrap_err().to_string();
        assert!(e.contains("a directory"), "{e}");
    }
}

//! Reading text inputs: regular files only, with a size limit, never more than the file holds.

use std::path::Path;

use crate::error::Result;

/// The largest text file llmdrop reads (calibration data, perplexity text, task files): 1 GiB.
pub const MAX_TEXT_BYTES: u64 = 1 << 30;

/// The largest JSON document llmdrop reads (scores, plans, sweep results): 256 MiB.
pub const MAX_JSON_BYTES: u64 = 256 << 20;

/// Reads a file that must be UTF-8 and at most [`MAX_TEXT_BYTES`]; the error names the
/// offset of the first bad byte.
pub fn read_utf8(path: &Path) -> Result<String> {
    read_utf8_limited(path, MAX_TEXT_BYTES)
}

/// As [`read_utf8`], with the limit `limit` bytes. Only regular files are read: FIFOs,
/// devices and sockets are refused (reading them could block forever or never end).
pub fn read_utf8_limited(path: &Path, limit: u64) -> Result<String> {
    super::file_kind::read_text(path, limit)
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

//! Reading text inputs.

use std::path::Path;

use crate::error::{Error, Result};

/// Reads a file that must be UTF-8; the error names the offset of the first bad byte.
pub fn read_utf8(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    String::from_utf8(bytes).map_err(|e| Error::NotUtf8 {
        path: path.into(),
        offset: e.utf8_error().valid_up_to(),
    })
}

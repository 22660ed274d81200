//! What a model path may be: a regular file or a directory, never a FIFO, socket or device
//! (opening a FIFO blocks until a writer comes; a device never ends). Checked from metadata,
//! without opening the path.

use std::path::Path;

use crate::error::{Error, Result};

/// What [`kind`] found at a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
}

/// Whether `path` (symlinks followed) is a regular file or a directory; anything else is
/// refused with a [`Error::Unreadable`] saying what it is.
pub fn kind(path: &Path) -> Result<Kind> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    let t = meta.file_type();
    if t.is_file() {
        Ok(Kind::File)
    } else if t.is_dir() {
        Ok(Kind::Dir)
    } else {
        Err(Error::Unreadable {
            path: path.into(),
            reason: format!(
                "is a {}, not a regular file or a directory",
                special_name(&t)
            ),
        })
    }
}

/// Refuses anything at `path` but a regular file (a missing file is an [`Error::Io`]).
pub fn regular_file(path: &Path) -> Result<()> {
    match kind(path)? {
        Kind::File => Ok(()),
        Kind::Dir => Err(Error::Unreadable {
            path: path.into(),
            reason: "is a directory, not a file".into(),
        }),
    }
}

/// Whether `path` names something, without following it into a FIFO.
pub fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

/// Reads the regular file `path` as UTF-8 text of at most `limit` bytes.
pub fn read_text(path: &Path, limit: u64) -> Result<String> {
    use std::io::Read;
    regular_file(path)?;
    let too_large = || Error::Unreadable {
        path: path.into(),
        reason: format!(
            "larger than the {limit} bytes ({} MiB) llmdrop reads from such a file",
            limit >> 20
        ),
    };
    // refused from its size before a byte is read
    let len = std::fs::metadata(path)
        .map_err(|e| Error::io(path, e))?
        .len();
    if len > limit {
        return Err(too_large());
    }
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    // read through a limit: the file may grow after its size was looked at
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    if bytes.len() as u64 > limit {
        return Err(too_large());
    }
    String::from_utf8(bytes).map_err(|e| Error::NotUtf8 {
        path: path.into(),
        offset: e.utf8_error().valid_up_to(),
    })
}

#[cfg(unix)]
fn special_name(t: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_fifo() {
        "named pipe (FIFO)"
    } else if t.is_socket() {
        "socket"
    } else if t.is_char_device() {
        "character device"
    } else if t.is_block_device() {
        "block device"
    } else {
        "special file"
    }
}

#[cfg(not(unix))]
fn special_name(_: &std::fs::FileType) -> &'static str {
    "special file"
}

//! Bounded reads from the header: every read checks it stays inside the file and names
//! what it was reading when it does not.

use std::io::{BufReader, ErrorKind, Read, Seek};
use std::path::Path;

use super::MAX_NAME;
use crate::error::{Error, Result};

/// A position in the header being walked, and what the walk has cost so far.
pub(super) struct Walker<'a, R> {
    pub(super) r: BufReader<R>,
    pub(super) pos: u64,
    pub(super) len: u64,
    pub(super) path: &'a Path,
    /// Running estimate of what candle allocates for what has been walked.
    pub(super) cost: u64,
}

impl<R: Read + Seek> Walker<'_, R> {
    pub(super) fn bad(&self, reason: String) -> Error {
        Error::BadFile {
            path: self.path.into(),
            reason: format!("invalid GGUF header: {reason}"),
        }
    }

    pub(super) fn remaining(&self) -> u64 {
        self.len.saturating_sub(self.pos)
    }

    pub(super) fn bytes<const N: usize>(&mut self, what: &dyn Fn() -> String) -> Result<[u8; N]> {
        let mut b = [0u8; N];
        match self.r.read_exact(&mut b) {
            Ok(()) => {
                self.pos += N as u64;
                Ok(b)
            }
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => Err(self.bad(format!(
                "the file ends at byte {} inside {}",
                self.len,
                what()
            ))),
            Err(e) => Err(Error::io(self.path, e)),
        }
    }

    pub(super) fn u32(&mut self, what: &dyn Fn() -> String) -> Result<u32> {
        Ok(u32::from_le_bytes(self.bytes(what)?))
    }

    pub(super) fn u64(&mut self, what: &dyn Fn() -> String) -> Result<u64> {
        Ok(u64::from_le_bytes(self.bytes(what)?))
    }

    /// Skips `n` bytes that must lie inside the file.
    pub(super) fn skip(&mut self, n: u64, what: &dyn Fn() -> String) -> Result<()> {
        if n > self.remaining() {
            return Err(self.bad(format!(
                "{} needs {n} bytes at byte {}, the file has {} left",
                what(),
                self.pos,
                self.remaining()
            )));
        }
        // n <= file length, which fits i64 on every file system
        let step = i64::try_from(n).map_err(|_| self.bad(format!("{} is too long", what())))?;
        self.r
            .seek_relative(step)
            .map_err(|e| Error::io(self.path, e))?;
        self.pos += n;
        Ok(())
    }

    /// The length prefix of a string, checked against the bytes left.
    pub(super) fn str_len(&mut self, what: &dyn Fn() -> String) -> Result<u64> {
        let n = self.u64(what)?;
        if n > self.remaining() {
            return Err(self.bad(format!(
                "{} is {n} bytes long, the file has {} left",
                what(),
                self.remaining()
            )));
        }
        Ok(n)
    }

    /// A key or tensor name, read into memory (at most [`MAX_NAME`] bytes).
    pub(super) fn name(&mut self, what: &dyn Fn() -> String) -> Result<String> {
        let n = self.str_len(what)?;
        if n > MAX_NAME {
            return Err(self.bad(format!("{} is {n} bytes long (at most {MAX_NAME})", what())));
        }
        let mut v = vec![0u8; n as usize];
        self.r
            .read_exact(&mut v)
            .map_err(|e| Error::io(self.path, e))?;
        self.pos += n;
        while v.last() == Some(&0) {
            v.pop();
        }
        Ok(String::from_utf8_lossy(&v).into_owned())
    }

    pub(super) fn charge(&mut self, bytes: u64) {
        self.cost = self.cost.saturating_add(bytes);
    }
}

//! A private folder for what a run spills to disk (layer-streamed scoring's unit hidden
//! states), removed when the run ends: on success, on error (drop) and, through the
//! staging registry that signal handlers empty ([`super::abandon_all`]), on Ctrl-C. A run
//! killed outright leaves it; the next spill into the same folder removes it (its lock
//! can be taken).
//!
//! Each calibration block has a file of its own, `block-K.f32`, to which its unit hidden
//! states are appended layer after layer (f32, little-endian): read back whole, it is the
//! block's `[L+1, tokens, hidden]` array, exactly as written.
//!
//! A resumable run keeps the block files in its checkpoint folder instead
//! ([`SpillDir::kept`]): they stay when read and when dropped, and each block's length and
//! checksum so far ([`Mark`]) go into every layer's checkpoint, so that a resumed run cuts
//! them back to what the checkpoint counted ([`SpillDir::restore`]).

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::checksum::Sum64;
use super::free_bytes;
use super::staging::{create_locked, is_live, register, unregister};
use crate::error::{Error, Result};

const PREFIX: &str = ".llmdrop-spill-";

/// The spill folder of this run; removed when dropped (unless [`SpillDir::kept`]).
#[derive(Debug)]
pub struct SpillDir {
    dir: PathBuf,
    /// Bytes the run will write here, for messages.
    need: u64,
    /// The lock of a private folder (removed when dropped); None: the files live in a
    /// checkpoint folder and stay.
    lock: Option<File>,
    /// Kept files: each block's bytes and checksum so far.
    marks: Option<Mutex<Vec<Mark>>>,
}

/// How much of a block file a checkpoint counts, and the checksum of those bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    pub bytes: u64,
    pub sum: u64,
}

impl Default for Mark {
    fn default() -> Self {
        Self {
            bytes: 0,
            sum: Sum64::new().value(),
        }
    }
}

impl SpillDir {
    /// Creates `.llmdrop-spill-PID` in `parent` (created if needed), readable by this user
    /// only, after checking that `parent`'s file system has `need` bytes free; a spill
    /// folder a dead run left there is removed first.
    pub fn new(parent: &Path, need: u64) -> Result<Self> {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        remove_stale(parent);
        let free = free_bytes(parent)?;
        if need > free {
            return Err(Error::SpillSpace {
                dir: parent.into(),
                need,
                free,
            });
        }
        let dir = parent.join(format!("{PREFIX}{}", std::process::id()));
        register(&dir);
        let lock = create_locked(&dir).inspect_err(|_| {
            let _ = std::fs::remove_dir_all(&dir);
            unregister(&dir);
        })?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| Error::io(&dir, e))?;
        }
        Ok(Self {
            dir,
            need,
            lock: Some(lock),
            marks: None,
        })
    }

    /// Block files of `blocks` blocks in `dir` (an existing folder, a checkpoint's), kept
    /// when read and when dropped, their lengths and checksums tracked ([`SpillDir::marks`]).
    /// Any block files already there are not counted until [`SpillDir::restore`].
    pub fn kept(dir: &Path, blocks: usize, need: u64) -> Self {
        Self {
            dir: dir.into(),
            need,
            lock: None,
            marks: Some(Mutex::new(vec![Mark::default(); blocks])),
        }
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    fn block_path(&self, block: usize) -> PathBuf {
        self.dir.join(format!("block-{block}.f32"))
    }

    /// Appends `values` to block `block`'s file.
    pub fn append(&self, block: usize, values: &[f32]) -> Result<()> {
        let path = self.block_path(block);
        let failed = |cause| Error::SpillWrite {
            path: path.clone(),
            need: self.need,
            cause,
        };
        let mut f = File::options()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(failed)?;
        let mark = self
            .marks
            .as_ref()
            .map(|m| lock(m).get(block).copied().unwrap_or_default());
        let mut sum = Sum64::resume(mark.unwrap_or_default().sum);
        let mut buf = Vec::with_capacity(CHUNK * 4);
        for chunk in values.chunks(CHUNK) {
            buf.clear();
            buf.extend(chunk.iter().flat_map(|v| v.to_le_bytes()));
            f.write_all(&buf).map_err(failed)?;
            sum.update(&buf);
        }
        // a block is appended to by one probe at a time: nothing changed its mark since
        if let (Some(m), Some(mark)) = (&self.marks, mark) {
            if let Some(slot) = lock(m).get_mut(block) {
                *slot = Mark {
                    bytes: mark.bytes + values.len() as u64 * 4,
                    sum: sum.value(),
                };
            }
        }
        Ok(())
    }

    /// Each block's length and checksum so far (kept files; empty otherwise).
    pub fn marks(&self) -> Vec<Mark> {
        self.marks
            .as_ref()
            .map_or_else(Vec::new, |m| lock(m).clone())
    }

    /// Flushes every block file written so far to the disk (`fsync`), several at once: a
    /// file system commits concurrent flushes together (64 files after 32 KiB appends
    /// each: about 190 ms one after the other, 16 ms from 16 threads, on an ext4 virtual
    /// disk).
    pub fn sync(&self) -> Result<()> {
        let paths: Vec<PathBuf> = (self.marks().iter().enumerate())
            .filter(|(_, m)| m.bytes > 0)
            .map(|(block, _)| self.block_path(block))
            .collect();
        let per_thread = paths.len().div_ceil(SYNC_THREADS).max(1);
        std::thread::scope(|s| {
            let flushing: Vec<_> = paths
                .chunks(per_thread)
                .map(|chunk| s.spawn(move || chunk.iter().try_for_each(|p| fsync(p))))
                .collect();
            flushing
                .into_iter()
                .try_for_each(|t| t.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
        })
        .map_err(|(path, cause)| Error::SpillWrite {
            path,
            need: self.need,
            cause,
        })
    }

    /// Takes kept block files back as `marks` counts them: each file must begin with
    /// `mark.bytes` bytes of checksum `mark.sum`, and is cut back to them (what a stopped
    /// run appended after its checkpoint). Why not, when a file does not match.
    pub fn restore(&self, marks: &[Mark]) -> std::result::Result<(), String> {
        let Some(mine) = &self.marks else {
            return Err("not a kept spill".into());
        };
        if marks.len() != lock(mine).len() {
            return Err(format!(
                "{} block files counted, {} expected",
                marks.len(),
                lock(mine).len()
            ));
        }
        for (block, m) in marks.iter().enumerate() {
            let path = self.block_path(block);
            check_prefix(&path, m).map_err(|e| format!("{}: {e}", path.display()))?;
        }
        lock(mine).copy_from_slice(marks);
        Ok(())
    }

    /// Removes every block file (a kept spill starting over).
    pub fn clear(&self) {
        if let Some(m) = &self.marks {
            for (block, mark) in lock(m).iter_mut().enumerate() {
                let _ = std::fs::remove_file(self.block_path(block));
                *mark = Mark::default();
            }
        }
    }

    /// Reads block `block`'s file back into `out` (resized to `len` values); the file must
    /// hold exactly `len` values.
    pub fn read(&self, block: usize, len: usize, out: &mut Vec<f32>) -> Result<()> {
        let path = self.block_path(block);
        let mut f = File::open(&path).map_err(|e| Error::io(&path, e))?;
        let size = f.metadata().map_err(|e| Error::io(&path, e))?.len();
        if size != len as u64 * 4 {
            return Err(Error::Unreadable {
                path,
                reason: format!(
                    "spilled hidden states: {size} bytes, {} expected",
                    len as u64 * 4
                ),
            });
        }
        out.clear();
        out.reserve_exact(len);
        let mut buf = vec![0u8; CHUNK * 4];
        let mut left = len;
        while left > 0 {
            let n = left.min(CHUNK);
            f.read_exact(&mut buf[..n * 4])
                .map_err(|e| Error::io(&path, e))?;
            out.extend(
                buf[..n * 4]
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            );
            left -= n;
        }
        // each block is read once: its disk space goes back now (a checkpoint's stays, for
        // a run stopped while reading back)
        if self.lock.is_some() {
            let _ = std::fs::remove_file(&path);
        }
        Ok(())
    }
}

impl Drop for SpillDir {
    fn drop(&mut self) {
        if self.lock.is_some() {
            let _ = std::fs::remove_dir_all(&self.dir);
            unregister(&self.dir);
        }
    }
}

fn lock(m: &Mutex<Vec<Mark>>) -> std::sync::MutexGuard<'_, Vec<Mark>> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Checks that the file at `path` begins with `m.bytes` bytes of checksum `m.sum`, and cuts
/// it there (a missing file is an empty one).
fn check_prefix(path: &Path, m: &Mark) -> std::result::Result<(), String> {
    let f = match File::options().read(true).write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && m.bytes == 0 => return Ok(()),
        Err(e) => return Err(e.to_string()),
    };
    let size = f.metadata().map_err(|e| e.to_string())?.len();
    if size < m.bytes {
        return Err(format!("{size} bytes, the checkpoint counts {}", m.bytes));
    }
    let mut sum = Sum64::new();
    let mut buf = vec![0u8; CHUNK * 4];
    let (mut left, mut r) = (m.bytes, &f);
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        r.read_exact(&mut buf[..n]).map_err(|e| e.to_string())?;
        sum.update(&buf[..n]);
        left -= n as u64;
    }
    if sum.value() != m.sum {
        return Err("its checksum differs from the checkpoint's".into());
    }
    f.set_len(m.bytes).map_err(|e| e.to_string())
}

/// Values per write or read.
const CHUNK: usize = 1 << 14;

/// Threads that flush block files at once.
const SYNC_THREADS: usize = 16;

fn fsync(path: &Path) -> std::result::Result<(), (PathBuf, std::io::Error)> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| (path.to_path_buf(), e))
}

/// Removes spill folders in `parent` whose run is gone (their lock can be taken).
fn remove_stale(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
        let ours = name
            .strip_prefix(PREFIX)
            .is_some_and(|pid| pid.parse::<u32>().is_ok());
        if ours && is_dir && !is_live(&e.path()) {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spill_folder_is_private_reads_back_its_bits_and_goes_when_dropped() {
        let tmp = tempfile::tempdir().unwrap();
        let spill = SpillDir::new(tmp.path(), 1 << 20).unwrap();
        let dir = spill.path().to_path_buf();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700);
        }
        // values no decimal round trip keeps: subnormals, -0, NaN payloads
        let a: Vec<f32> = (0..40_000u32)
            .map(|i| f32::from_bits(i.wrapping_mul(107_377)))
            .collect();
        let b = [
            -0.0f32,
            f32::MIN_POSITIVE / 3.0,
            f32::from_bits(0x7fc0_1234),
        ];
        spill.append(3, &a).unwrap();
        spill.append(3, &b).unwrap();
        let mut back = Vec::new();
        spill.read(3, a.len() + b.len(), &mut back).unwrap();
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&back[..a.len()]), bits(&a));
        assert_eq!(bits(&back[a.len()..]), bits(&b));
        // a file of another length is refused, not misread
        spill.append(4, &b).unwrap();
        assert!(matches!(
            spill.read(4, 4, &mut back),
            Err(Error::Unreadable { .. })
        ));
        drop(spill);
        assert!(!dir.exists());
    }

    #[test]
    fn more_than_the_disk_has_free_is_refused_with_both_numbers() {
        let tmp = tempfile::tempdir().unwrap();
        let free = free_bytes(tmp.path()).unwrap();
        assert!(free > 0);
        match SpillDir::new(tmp.path(), u64::MAX / 2).unwrap_err() {
            Error::SpillSpace { need, free: f, dir } => {
                assert_eq!((need, dir.as_path()), (u64::MAX / 2, tmp.path()));
                // the free space of a live file system moves a little between calls
                assert!(f.abs_diff(free) < free / 10 + (64 << 20), "{f} vs {free}");
            }
            e => panic!("{e}"),
        }
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_dead_runs_spill_folder_is_removed_a_live_ones_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let dead = tmp.path().join(format!("{PREFIX}4000000000"));
        std::fs::create_dir(&dead).unwrap();
        std::fs::write(dead.join("block-0.f32"), [0u8; 8]).unwrap();
        let live = SpillDir::new(tmp.path(), 0).unwrap();
        assert!(!dead.exists());
        remove_stale(tmp.path());
        assert!(live.path().exists());
    }
}

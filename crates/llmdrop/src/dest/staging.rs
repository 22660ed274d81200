//! Staging next to the destination, then one rename into place.
//!
//! A staging folder is `.NAME.llmdrop-PID` beside the destination `NAME`, holding a lock file
//! the writing process keeps locked (`flock`) while it lives. A staging folder whose lock can
//! be taken belongs to a process that is gone (killed, or the machine lost power): the next
//! run towards the same destination removes it. Signal handlers call [`abandon_all`].

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::{check_apart, resolve, Inputs, Kind};
use crate::error::{Error, Result};

/// Staging folders of this process, removed by [`abandon_all`].
static ACTIVE: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

pub(super) const LOCK: &str = ".llmdrop-lock";

/// A staging area that becomes the destination on [`Staging::commit`] and is removed if
/// dropped uncommitted.
pub struct Staging {
    dir: PathBuf,
    dest: PathBuf,
    name: String,
    kind: Kind,
    force: bool,
    _lock: File,
    stale_removed: Vec<PathBuf>,
    committed: bool,
}

impl Staging {
    /// Prepares to write `dest` as `kind`: refuses a `dest` that overlaps `inputs`, an
    /// existing `dest` that llmdrop did not write, and (for models) one that exists without
    /// `force`; removes staging that an interrupted run left for the same destination.
    pub fn new(dest: &Path, kind: Kind, inputs: &Inputs, force: bool) -> Result<Self> {
        check_apart(dest, inputs)?;
        check_replaceable(dest, kind, force)?;
        let d = resolve(dest);
        let (parent, name) = match (d.parent(), d.file_name()) {
            (Some(p), Some(n)) => (p.to_path_buf(), n.to_string_lossy().into_owned()),
            _ => {
                return Err(Error::Output {
                    path: dest.into(),
                    reason: "not a path a file or folder can be written to".into(),
                })
            }
        };
        std::fs::create_dir_all(&parent).map_err(|e| Error::io(&parent, e))?;
        let stale_removed = remove_stale(&parent, &name);
        let dir = parent.join(format!(".{name}.llmdrop-{}", std::process::id()));
        register(&dir);
        let lock = create_locked(&dir).inspect_err(|_| {
            let _ = std::fs::remove_dir_all(&dir);
            unregister(&dir);
        })?;
        Ok(Self {
            dir,
            dest: d,
            name,
            kind,
            force,
            _lock: lock,
            stale_removed,
            committed: false,
        })
    }

    /// Where to write: the staging folder itself for a folder output, else a file in it.
    pub fn path(&self) -> PathBuf {
        if self.kind.is_dir() {
            self.dir.clone()
        } else {
            self.dir.join(&self.name)
        }
    }

    /// Staging folders of dead processes removed while preparing (for the caller to say so).
    pub fn stale_removed(&self) -> &[PathBuf] {
        &self.stale_removed
    }

    /// Moves the staged output into place, replacing an old one (folders are exchanged
    /// atomically where the file system can), and removes the staging folder.
    pub fn commit(mut self) -> Result<PathBuf> {
        let guard = ACTIVE.lock().unwrap_or_else(|p| p.into_inner());
        // the destination may have changed since `new`
        check_replaceable(&self.dest, self.kind, self.force)?;
        if self.kind.is_dir() {
            let _ = std::fs::remove_file(self.dir.join(LOCK));
            if std::fs::symlink_metadata(&self.dest).is_ok() {
                replace_dir(&self.dir, &self.dest)?;
            } else {
                rename(&self.dir, &self.dest)?;
            }
        } else {
            rename(&self.dir.join(&self.name), &self.dest)?;
        }
        // what is left here is the old folder, or only the lock file
        let _ = std::fs::remove_dir_all(&self.dir);
        drop(guard);
        unregister(&self.dir);
        self.committed = true;
        Ok(self.dest.clone())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.dir);
            unregister(&self.dir);
        }
    }
}

/// Removes every staging folder of this process and blocks all later commits: for a
/// signal handler that exits right after.
pub fn abandon_all() {
    let guard = ACTIVE.lock().unwrap_or_else(|p| p.into_inner());
    for d in guard.iter() {
        for _ in 0..3 {
            if std::fs::remove_dir_all(d).is_ok() || !d.exists() {
                break;
            }
        }
    }
    // never released: a commit in flight on another thread must not start after this
    std::mem::forget(guard);
}

pub(super) fn register(dir: &Path) {
    ACTIVE
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(dir.into());
}

pub(super) fn unregister(dir: &Path) {
    ACTIVE
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .retain(|d| d != dir);
}

/// An existing `dest` may be replaced only when llmdrop wrote it (an empty folder too, for
/// folder outputs), and a model only with `force`.
pub(super) fn check_replaceable(dest: &Path, kind: Kind, force: bool) -> Result<()> {
    let Ok(meta) = std::fs::symlink_metadata(dest) else {
        return Ok(());
    };
    let empty_dir = kind.is_dir()
        && meta.is_dir()
        && std::fs::read_dir(dest).is_ok_and(|mut r| r.next().is_none());
    if empty_dir {
        return Ok(());
    }
    if !kind.is_own(dest) {
        return Err(Error::Exists {
            path: dest.into(),
            noun: kind.noun().into(),
            own: false,
        });
    }
    if kind.needs_force() && !force {
        return Err(Error::Exists {
            path: dest.into(),
            noun: kind.noun().into(),
            own: true,
        });
    }
    Ok(())
}

/// Creates `dir` with a lock file inside, locked for as long as the returned file lives.
pub(super) fn create_locked(dir: &Path) -> Result<File> {
    if std::fs::symlink_metadata(dir).is_ok() {
        std::fs::remove_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    std::fs::create_dir(dir).map_err(|e| Error::io(dir, e))?;
    let p = dir.join(LOCK);
    let f = File::create(&p).map_err(|e| Error::io(&p, e))?;
    f.try_lock().map_err(|e| Error::io(&p, e.into()))?;
    Ok(f)
}

/// Removes `.NAME.llmdrop-PID` folders beside `NAME` whose process is gone (their lock can be
/// taken, or they have none: killed while committing). A moved-aside old output
/// (`…-PID-old`) goes back into place when the destination is missing.
fn remove_stale(parent: &Path, name: &str) -> Vec<PathBuf> {
    let prefix = format!(".{name}.llmdrop-");
    let mut removed = Vec::new();
    let Ok(entries) = std::fs::read_dir(parent) else {
        return removed;
    };
    for e in entries.flatten() {
        let file_name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = file_name.strip_prefix(&prefix) else {
            continue;
        };
        let (pid, aside) = match rest.strip_suffix("-old") {
            Some(pid) => (pid, true),
            None => (rest, false),
        };
        let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
        if pid.parse::<u32>().is_err() || !is_dir {
            continue;
        }
        let staging = parent.join(format!("{prefix}{pid}"));
        if is_live(&staging) {
            continue;
        }
        let p = e.path();
        let dest = parent.join(name);
        if aside && std::fs::symlink_metadata(&dest).is_err() {
            if std::fs::rename(&p, &dest).is_ok() {
                removed.push(p);
            }
        } else if std::fs::remove_dir_all(&p).is_ok() {
            removed.push(p);
        }
    }
    removed
}

/// Whether a live process holds the staging folder's lock.
pub(super) fn is_live(staging: &Path) -> bool {
    match File::options().write(true).open(staging.join(LOCK)) {
        Ok(f) => matches!(f.try_lock(), Err(std::fs::TryLockError::WouldBlock)),
        Err(_) => false,
    }
}

fn rename(from: &Path, to: &Path) -> Result<()> {
    std::fs::rename(from, to).map_err(|e| Error::io(to, e))
}

/// Puts the folder `new` at `dest`, whose old folder ends up at `new`'s path.
fn replace_dir(new: &Path, dest: &Path) -> Result<()> {
    if exchange(new, dest)? {
        return Ok(());
    }
    // no atomic exchange here: move the old one aside first; a run killed in between
    // leaves `…-old`, which the next run puts back (see `remove_stale`)
    let aside = PathBuf::from(format!("{}-old", new.display()));
    rename(dest, &aside)?;
    if let Err(e) = rename(new, dest) {
        let _ = std::fs::rename(&aside, dest);
        return Err(e);
    }
    // `commit` removes what is at `new`'s path: put the old folder there
    rename(&aside, new)
}

/// Swaps two paths atomically (Linux `renameat2(RENAME_EXCHANGE)`); `Ok(false)` where the
/// system or file system cannot.
#[cfg(target_os = "linux")]
fn exchange(a: &Path, b: &Path) -> Result<bool> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| {
        CString::new(p.as_os_str().as_bytes()).map_err(|_| Error::Output {
            path: p.into(),
            reason: "path holds a NUL byte".into(),
        })
    };
    let (ca, cb) = (c(a)?, c(b)?);
    // SAFETY: both pointers are NUL-terminated strings that outlive the call; renameat2
    // reads them and nothing else of this process's memory.
    let r = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            ca.as_ptr(),
            libc::AT_FDCWD,
            cb.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if r == 0 {
        return Ok(true);
    }
    let err = std::io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::ENOSYS) | Some(libc::EINVAL) | Some(libc::EOPNOTSUPP) => Ok(false),
        _ => Err(Error::io(b, err)),
    }
}

#[cfg(not(target_os = "linux"))]
fn exchange(_a: &Path, _b: &Path) -> Result<bool> {
    Ok(false)
}

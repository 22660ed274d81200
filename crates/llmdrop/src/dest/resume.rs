//! The checkpoint folder of a resumable run: `.llmdrop-resume-ID` in a folder beside the
//! output, where ID is the start of the sha256 of what the run computes (its key: model,
//! data, settings, llmdrop version). The folder holds `key.json` (the key in full, and the
//! output it was started for), a lock file the running process keeps locked (as staging
//! folders do), and whatever the run saves there.
//!
//! The folder is private (mode 0700) and llmdrop's own: a path of that name that is not a
//! folder with llmdrop's `key.json` is never touched. A folder of the same output with
//! another key (another model, data, settings or version) is stale: removed when a run
//! opens its own. The folder outlives the process on purpose (a rerun resumes from it);
//! while [`ResumeDir::set_disposable`] says so (nothing worth resuming saved yet), the
//! signal handlers' [`super::abandon_all`] removes it.

use std::fs::File;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::staging::{create_locked, is_live, register, unregister, LOCK};
use super::{check_apart, resolve, Inputs};
use crate::error::{Error, Result};

/// What every checkpoint folder's name starts with.
pub const RESUME_PREFIX: &str = ".llmdrop-resume-";
const KEY_FILE: &str = "key.json";

/// A run's checkpoint folder, locked while this value lives; kept when dropped.
#[derive(Debug)]
pub struct ResumeDir {
    dir: PathBuf,
    id: String,
    _lock: File,
    disposable: bool,
}

/// A checkpoint folder llmdrop removed while opening another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removed {
    /// Of the same output, for another model, data, settings or llmdrop version.
    Stale(PathBuf),
    /// Of this very key, removed because the run was asked to start over.
    Discarded(PathBuf),
}

/// `key.json`.
#[derive(Debug, Serialize, Deserialize)]
struct KeyFile {
    llmdrop_checkpoint: u32,
    /// sha256 of the key's JSON.
    id: String,
    /// The output the run was started for, resolved.
    out: String,
    key: serde_json::Value,
}

impl ResumeDir {
    /// Opens the checkpoint folder for `key`, whose digest is `id` (hex, at least 16 digits),
    /// in `parent` (created if needed) for a run that writes `out`: the existing one when `fresh` is false, else a new, empty one. Stale
    /// folders of `out` are removed (and returned). Refused: a folder that overlaps
    /// `inputs`, a path of that name llmdrop did not make, a folder another live run holds.
    pub fn open(
        parent: &Path,
        id: &str,
        key: &serde_json::Value,
        out: &Path,
        fresh: bool,
        inputs: &Inputs,
    ) -> Result<(Self, Vec<Removed>, bool)> {
        if id.len() < 16 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::Argument {
                option: "checkpoint id",
                reason: format!("`{id}` is not a hex digest"),
            });
        }
        let dir = parent.join(format!("{RESUME_PREFIX}{}", &id[..16]));
        check_apart(&dir, inputs)?;
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        let out = resolve(out).display().to_string();
        let mut removed = remove_stale(parent, &dir, &out);
        let mut existed = false;
        if let Ok(meta) = std::fs::symlink_metadata(&dir) {
            let info = read_key(&dir).filter(|_| meta.is_dir() && !meta.is_symlink());
            let Some(info) = info else {
                return Err(Error::Exists {
                    path: dir,
                    noun: "a scoring checkpoint folder".into(),
                    own: false,
                });
            };
            if is_live(&dir) {
                return Err(Error::Output {
                    path: dir,
                    reason: "another llmdrop run is using this checkpoint now; let it finish \
                             or stop it first"
                        .into(),
                });
            }
            if info.id == id && !fresh {
                existed = true;
            } else {
                std::fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
                removed.push(match info.id == id {
                    true => Removed::Discarded(dir.clone()),
                    false => Removed::Stale(dir.clone()),
                });
            }
        }
        let lock = if existed {
            lock_existing(&dir)?
        } else {
            create(&dir, id, &out, key)?
        };
        let me = Self {
            dir,
            id: id.into(),
            _lock: lock,
            disposable: false,
        };
        Ok((me, removed, existed))
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The sha256 of the key this folder is for.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Whether a signal that ends the process removes the folder (nothing in it worth
    /// resuming from yet).
    pub fn set_disposable(&mut self, yes: bool) {
        if yes != self.disposable {
            match yes {
                true => register(&self.dir),
                false => unregister(&self.dir),
            }
            self.disposable = yes;
        }
    }

    /// Removes the folder and everything in it.
    pub fn remove(mut self) -> Result<()> {
        self.set_disposable(false);
        std::fs::remove_dir_all(&self.dir).map_err(|e| Error::io(&self.dir, e))
    }
}

impl Drop for ResumeDir {
    fn drop(&mut self) {
        self.set_disposable(false);
    }
}

/// A new folder at `dir`, private, locked, with its `key.json` written whole.
fn create(dir: &Path, id: &str, out: &str, key: &serde_json::Value) -> Result<File> {
    let lock = create_locked(dir)?;
    let fail = |e| {
        let _ = std::fs::remove_dir_all(dir);
        Error::io(dir, e)
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(fail)?;
    }
    let info = KeyFile {
        llmdrop_checkpoint: 1,
        id: id.into(),
        out: out.into(),
        key: key.clone(),
    };
    let text = serde_json::to_vec_pretty(&info).map_err(|e| Error::context("key.json", e))?;
    let tmp = dir.join(format!("{KEY_FILE}.tmp"));
    std::fs::write(&tmp, text)
        .and_then(|_| File::open(&tmp)?.sync_all())
        .and_then(|_| std::fs::rename(&tmp, dir.join(KEY_FILE)))
        .map_err(fail)?;
    Ok(lock)
}

/// Takes the lock of an existing folder.
fn lock_existing(dir: &Path) -> Result<File> {
    let p = dir.join(LOCK);
    let f = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&p)
        .map_err(|e| Error::io(&p, e))?;
    f.try_lock().map_err(|e| Error::io(&p, e.into()))?;
    Ok(f)
}

/// The `key.json` of a checkpoint folder llmdrop made (None for anything else).
fn read_key(dir: &Path) -> Option<KeyFile> {
    let p = dir.join(KEY_FILE);
    let small = std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_file() && m.len() < 1 << 20);
    let info: KeyFile = serde_json::from_slice(&std::fs::read(&p).ok().filter(|_| small)?).ok()?;
    (info.llmdrop_checkpoint > 0).then_some(info)
}

/// Removes the checkpoint folders in `parent` other than `keep` that were started for
/// `out` and whose run is gone.
fn remove_stale(parent: &Path, keep: &Path, out: &str) -> Vec<Removed> {
    let mut removed = Vec::new();
    let Ok(entries) = std::fs::read_dir(parent) else {
        return removed;
    };
    for e in entries.flatten() {
        let p = e.path();
        let ours = e.file_name().to_string_lossy().starts_with(RESUME_PREFIX)
            && e.file_type().is_ok_and(|t| t.is_dir())
            && p != keep;
        let stale = ours && read_key(&p).is_some_and(|k| k.out == out) && !is_live(&p);
        if stale && std::fs::remove_dir_all(&p).is_ok() {
            removed.push(Removed::Stale(p));
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u32) -> serde_json::Value {
        serde_json::json!({ "model": "abc", "samples": n })
    }

    fn open(p: &Path, n: u32, out: &Path, fresh: bool) -> Result<(ResumeDir, Vec<Removed>, bool)> {
        let id = format!("{n:016x}{}", "0".repeat(48));
        ResumeDir::open(p, &id, &key(n), out, fresh, &Inputs::new())
    }

    #[test]
    fn a_folder_is_reused_for_its_key_replaced_for_another_and_never_taken_from_others() {
        let tmp = tempfile::tempdir().unwrap();
        let (p, out) = (tmp.path(), tmp.path().join("scores.json"));
        let (a, removed, existed) = open(p, 1, &out, false).unwrap();
        assert!(removed.is_empty() && !existed);
        let path_a = a.path().to_path_buf();
        std::fs::write(path_a.join("layer-1.ckpt"), "x").unwrap();
        // a live run holds it
        let busy = open(p, 1, &out, false).unwrap_err();
        assert!(busy.to_string().contains("another llmdrop run"), "{busy}");
        drop(a);
        let (a, removed, existed) = open(p, 1, &out, false).unwrap();
        assert!(removed.is_empty() && existed);
        assert!(path_a.join("layer-1.ckpt").exists());
        drop(a);
        // another key for the same output: the old folder is stale
        let (b, removed, existed) = open(p, 2, &out, false).unwrap();
        assert_eq!(
            (removed, existed),
            (vec![Removed::Stale(path_a.clone())], false)
        );
        assert!(!path_a.exists());
        let path_b = b.path().to_path_buf();
        drop(b);
        // starting over
        let (b, removed, existed) = open(p, 2, &out, true).unwrap();
        assert_eq!(
            (removed, existed),
            (vec![Removed::Discarded(path_b)], false)
        );
        // another output's folder stays
        let (c, removed, _) = open(p, 3, &p.join("other.json"), false).unwrap();
        assert!(removed.is_empty() && b.path().exists());
        b.remove().unwrap();
        // a folder of that name that llmdrop did not make is left alone
        let theirs = c.path().to_path_buf();
        c.remove().unwrap();
        std::fs::create_dir(&theirs).unwrap();
        std::fs::write(theirs.join("notes.txt"), "mine").unwrap();
        let e = open(p, 3, &p.join("other.json"), true).unwrap_err();
        assert!(matches!(e, Error::Exists { own: false, .. }), "{e}");
        assert!(theirs.join("notes.txt").exists());
    }
}

//! Stage-then-rename for output directories.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A temporary directory that becomes `dest` on [`Staging::commit`] and is removed if
/// dropped uncommitted.
pub struct Staging {
    tmp: PathBuf,
    dest: PathBuf,
    committed: bool,
}

fn absolute(p: &Path) -> PathBuf {
    // canonicalize what exists; keep the rest of the path as given
    let mut existing = p.to_path_buf();
    let mut rest = Vec::new();
    while !existing.exists() {
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                existing = if parent.as_os_str().is_empty() {
                    PathBuf::from(".")
                } else {
                    parent.to_path_buf()
                };
            }
            _ => break,
        }
    }
    let mut out = existing.canonicalize().unwrap_or(existing);
    for r in rest.into_iter().rev() {
        out.push(r);
    }
    out
}

impl Staging {
    /// Prepares to write `dest`, refusing to touch `input` (the model being read):
    /// `dest` may not be it, lie inside it, or contain it. An existing `dest` is replaced
    /// only with `force`.
    pub fn new(dest: &Path, input: &Path, force: bool) -> Result<Self> {
        let d = absolute(dest);
        let i = absolute(input);
        if d == i || d.starts_with(&i) || i.starts_with(&d) {
            return Err(Error::Input(format!(
                "output {} would overwrite the input model {}",
                dest.display(),
                input.display()
            )));
        }
        if d.exists() && !force {
            return Err(Error::Input(format!(
                "output {} already exists (use --force to replace it)",
                dest.display()
            )));
        }
        let parent = d
            .parent()
            .ok_or_else(|| Error::Input("output has no parent".into()))?;
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        let name = d
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
        }
        std::fs::create_dir(&tmp).map_err(|e| Error::io(&tmp, e))?;
        Ok(Self {
            tmp,
            dest: d,
            committed: false,
        })
    }

    /// Where to write the files.
    pub fn dir(&self) -> &Path {
        &self.tmp
    }

    /// Moves the file `name` written in the staging directory to the destination path
    /// (replacing an old file) and removes the staging directory.
    pub fn commit_file(mut self, name: &str) -> Result<PathBuf> {
        let staged = self.tmp.join(name);
        std::fs::rename(&staged, &self.dest).map_err(|e| Error::io(&self.dest, e))?;
        let _ = std::fs::remove_dir_all(&self.tmp);
        self.committed = true;
        Ok(self.dest.clone())
    }

    /// Moves the staged directory into place (replacing an old one).
    pub fn commit(mut self) -> Result<PathBuf> {
        if self.dest.exists() {
            let old = self.tmp.with_extension("old");
            std::fs::rename(&self.dest, &old).map_err(|e| Error::io(&self.dest, e))?;
            std::fs::rename(&self.tmp, &self.dest).map_err(|e| Error::io(&self.dest, e))?;
            let _ = std::fs::remove_dir_all(&old);
        } else {
            std::fs::rename(&self.tmp, &self.dest).map_err(|e| Error::io(&self.dest, e))?;
        }
        self.committed = true;
        Ok(self.dest.clone())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.tmp);
        }
    }
}

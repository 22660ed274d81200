//! Where llmdrop writes, and the rules that keep a user's files safe:
//!
//! - an output path may not be, lie inside, or contain an input ([`Inputs`], [`check_apart`]);
//!   paths are compared after resolving symlinks and `..`;
//! - an existing output is replaced only when llmdrop wrote it ([`Kind::is_own`]), and for
//!   models only with `--force`;
//! - everything is written into a staging directory next to the destination and renamed into
//!   place ([`Staging`]); a failed or interrupted run leaves nothing behind, and a run killed
//!   outright leaves staging that the next run towards the same destination removes.

mod checksum;
mod owner;
mod resume;
mod spill;
mod staging;

use std::path::{Component, Path, PathBuf};

pub use checksum::Sum64;
pub use owner::Kind;

/// The comment llmdrop puts in its SVG plots, by which it knows them as its own.
pub fn owner_marker_svg() -> &'static str {
    owner::SVG_MARKER
}
pub use resume::{Removed, ResumeDir, RESUME_PREFIX};
pub use spill::{Mark, SpillDir};
pub use staging::{abandon_all, Staging};

use crate::error::{Error, Result};

/// The files a command reads, resolved; outputs must stay apart from all of them.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    paths: Vec<(PathBuf, String)>,
}

impl Inputs {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `path` (what it is, for messages: "model", "data", …). A directory's entries
    /// are added too, resolved, so a model folder of symlinks (the HF cache's layout)
    /// protects the files they point to.
    pub fn add(&mut self, what: &str, path: &Path) {
        self.paths.push((resolve(path), what.to_string()));
        if path.is_dir() {
            if let Ok(rd) = std::fs::read_dir(path) {
                for e in rd.flatten() {
                    let p = e.path();
                    if p.is_symlink() {
                        self.paths.push((resolve(&p), what.to_string()));
                    }
                }
            }
        }
    }

    /// As [`Inputs::add`], for an optional path.
    pub fn add_opt(&mut self, what: &str, path: Option<&Path>) {
        if let Some(p) = path {
            self.add(what, p);
        }
    }

    /// The model a [`crate::ModelSource`] was opened from.
    pub fn of_model(path: &Path) -> Self {
        let mut i = Self::new();
        i.add("model", path);
        i
    }
}

/// The bytes an unprivileged user may still write on `path`'s file system.
pub fn free_bytes(path: &Path) -> Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|_| Error::Output {
        path: path.into(),
        reason: "path holds a NUL byte".into(),
    })?;
    // SAFETY: `c` is a NUL-terminated string and `st` a zeroed statvfs, both living
    // through the call, which writes into `st` only.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(Error::io(path, std::io::Error::last_os_error()));
    }
    Ok(st.f_bavail as u64 * st.f_frsize as u64)
}

/// Refuses `out` when it is, lies inside, or contains one of `inputs`.
pub fn check_apart(out: &Path, inputs: &Inputs) -> Result<()> {
    let o = resolve(out);
    for (i, what) in &inputs.paths {
        let how = if &o == i {
            "is"
        } else if o.starts_with(i) {
            "lies inside"
        } else if i.starts_with(&o) {
            "contains"
        } else {
            continue;
        };
        return Err(Error::Output {
            path: out.into(),
            reason: format!("{how} the {what} {}; nothing was written", i.display()),
        });
    }
    Ok(())
}

/// `p` made absolute with symlinks and `..` resolved as the system would: each existing
/// prefix is canonicalized, and `..` past it removes one component of what it points to.
pub fn resolve(p: &Path) -> PathBuf {
    let abs = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(p)
    };
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => {
                out.push(n);
                if let Ok(canon) = out.canonicalize() {
                    out = canon;
                }
            }
            root => out.push(root),
        }
    }
    out
}

/// Checks before any work that `dest` can be written as `kind`: apart from `inputs`, and
/// absent, or llmdrop's own (and `force` for a model). [`Staging::new`] checks it again.
pub fn check(dest: &Path, kind: Kind, inputs: &Inputs, force: bool) -> Result<()> {
    check_apart(dest, inputs)?;
    staging::check_replaceable(dest, kind, force)
}

/// Checks a folder that llmdrop adds its files to (plots, a sweep): apart from `inputs`, and
/// a folder if it exists.
pub fn check_folder(dir: &Path, inputs: &Inputs) -> Result<()> {
    check_apart(dir, inputs)?;
    match std::fs::metadata(dir) {
        Ok(m) if !m.is_dir() => Err(Error::Output {
            path: dir.into(),
            reason: "exists and is not a folder".into(),
        }),
        _ => Ok(()),
    }
}

/// Writes `bytes` to `dest` through staging; an existing file is replaced only when it is
/// llmdrop's own `kind`.
pub fn write_file(dest: &Path, kind: Kind, inputs: &Inputs, bytes: &[u8]) -> Result<()> {
    let staging = Staging::new(dest, kind, inputs, false)?;
    let p = staging.path().to_path_buf();
    std::fs::write(&p, bytes).map_err(|e| Error::io(dest, e))?;
    staging.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_applies_dotdot_and_symlinks() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().canonicalize().unwrap();
        std::fs::create_dir(base.join("a")).unwrap();
        std::os::unix::fs::symlink(base.join("a"), base.join("link")).unwrap();
        assert_eq!(resolve(&base.join("link/x/../y")), base.join("a/y"));
        assert_eq!(resolve(&base.join("a/./z")), base.join("a/z"));
    }

    #[test]
    fn overlap_is_refused_every_way() {
        let tmp = tempfile::tempdir().unwrap();
        let m = tmp.path().join("model");
        std::fs::create_dir(&m).unwrap();
        std::fs::write(m.join("config.json"), "{}").unwrap();
        let inputs = Inputs::of_model(&m);
        for bad in [
            m.clone(),
            m.join("out"),
            tmp.path().to_path_buf(),
            m.join("config.json"),
        ] {
            let e = check_apart(&bad, &inputs).unwrap_err().to_string();
            assert!(e.contains("the model"), "{e}");
        }
        assert!(check_apart(&tmp.path().join("elsewhere"), &inputs).is_ok());
        // through a symlink to the model folder
        let link = tmp.path().join("alias");
        std::os::unix::fs::symlink(&m, &link).unwrap();
        assert!(check_apart(&link.join("sub"), &inputs).is_err());
    }
}

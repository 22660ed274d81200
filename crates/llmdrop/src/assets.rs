//! Where the default model and texts live, and how the user is told to fetch them.

use std::path::PathBuf;

use crate::error::{Error, Result};

/// The command that fetches every asset (the README's first quick-start command).
pub const SETUP_COMMAND: &str = "./setup.sh";

/// File name of the default model inside the cache directory.
pub const DEFAULT_MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// The docutils source release inside the cache directory (real English text).
pub const DOCUTILS_DIR: &str = "text/docutils-0.21.2";

/// Inside [`DOCUTILS_DIR`]: the documentation, the default calibration text.
pub const DEFAULT_CALIBRATION_DIR: &str = "docs";

/// Inside [`DEFAULT_CALIBRATION_DIR`]: the reStructuredText primer, the default
/// perplexity text.
pub const DEFAULT_PPL_FILE: &str = "user/rst/quickstart.txt";

/// sha256 of the default model (DESIGN §4).
pub const DEFAULT_MODEL_SHA256: &str =
    "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";

/// The asset cache: `$LLMDROP_CACHE`, else `$XDG_CACHE_HOME/llmdrop`, else `~/.cache/llmdrop`.
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("LLMDROP_CACHE").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("llmdrop");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| ".".into());
    PathBuf::from(home).join(".cache").join("llmdrop")
}

/// Path of the default model; an error naming the setup command when it is not there.
pub fn default_model() -> Result<PathBuf> {
    let p = cache_dir().join(DEFAULT_MODEL_FILE);
    if p.is_file() {
        Ok(p)
    } else {
        Err(Error::MissingAsset {
            what: format!("default model {}", p.display()),
            reason: "not found".into(),
            fetch: SETUP_COMMAND.into(),
        })
    }
}

/// Path of the default calibration text (the cached docutils documentation); an error
/// naming the setup command when it is not there.
pub fn default_calibration_text() -> Result<PathBuf> {
    let d = cache_dir().join(DOCUTILS_DIR).join(DEFAULT_CALIBRATION_DIR);
    if d.is_dir() {
        Ok(d)
    } else {
        Err(Error::MissingAsset {
            what: format!("default calibration text {}", d.display()),
            reason: "not found".into(),
            fetch: SETUP_COMMAND.into(),
        })
    }
}

/// Path of the default perplexity text (checked when it is read).
pub fn default_ppl_text() -> PathBuf {
    cache_dir()
        .join(DOCUTILS_DIR)
        .join(DEFAULT_CALIBRATION_DIR)
        .join(DEFAULT_PPL_FILE)
}

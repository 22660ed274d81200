//! What llmdrop writes, and how it recognises a file or folder it wrote before: only those
//! are ever replaced.

use std::io::Read;
use std::path::Path;

/// Marker llmdrop writes into its SVG plots.
pub const SVG_MARKER: &str = "<!-- written by llmdrop -->";

/// How the plots of llmdrop versions before the marker begin (so a rerun replaces them).
const LEGACY_SVG_START: &str = r#"<svg xmlns="http://www.w3.org/2000/svg" width="#;
const LEGACY_SVG_HEAD: &str = r#"" font-family="sans-serif" font-size="10"><text x=""#;

/// The kinds of output llmdrop writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A pruned HF model folder (`config.json` with an `llmdrop` section, `plan.json`).
    ModelDir,
    /// A GGUF file written by `export --format gguf`.
    GgufFile,
    /// `scores.json`.
    ScoresFile,
    /// An SVG plot.
    Svg,
    /// A sweep's `results.json`.
    SweepResults,
    /// A sweep's `report.md`, replaced only next to the sweep's own `results.json`.
    SweepReport,
}

impl Kind {
    /// Whether the output is a folder.
    pub fn is_dir(self) -> bool {
        self == Kind::ModelDir
    }

    /// Whether replacing an existing output of this kind takes `--force` (models), or is a
    /// normal rerun (reports and plots).
    pub fn needs_force(self) -> bool {
        matches!(self, Kind::ModelDir | Kind::GgufFile)
    }

    /// What to call it in messages.
    pub fn noun(self) -> &'static str {
        match self {
            Kind::ModelDir => "a pruned model folder",
            Kind::GgufFile => "a GGUF export",
            Kind::ScoresFile => "a scores file",
            Kind::Svg => "a plot",
            Kind::SweepResults => "a sweep's results.json",
            Kind::SweepReport => "a sweep report",
        }
    }

    /// Whether `path` (which exists) is an output of this kind that llmdrop wrote.
    pub fn is_own(self, path: &Path) -> bool {
        let meta = match std::fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(_) => return false,
        };
        if self.is_dir() != meta.is_dir() || meta.file_type().is_symlink() {
            return false;
        }
        match self {
            Kind::ModelDir => {
                let cfg = json_head(&path.join("config.json"));
                cfg.as_ref().is_some_and(|v| v.get("llmdrop").is_some())
            }
            Kind::GgufFile => {
                let head = head(path, 16 << 20);
                head.starts_with(b"GGUF")
                    && (contains(&head, b"(llmdrop)") || contains(&head, b"llmdrop."))
            }
            Kind::ScoresFile => json_head(path)
                .is_some_and(|v| v.get("llmdrop_version").is_some() && v.get("table").is_some()),
            Kind::Svg => {
                let h = head(path, 4096);
                h.starts_with(b"<svg") && contains(&h, SVG_MARKER.as_bytes())
                    || h.starts_with(LEGACY_SVG_START.as_bytes())
                        && contains(&h[..h.len().min(200)], LEGACY_SVG_HEAD.as_bytes())
            }
            Kind::SweepResults => json_head(path)
                .is_some_and(|v| v.get("key").is_some() && v.get("results").is_some()),
            Kind::SweepReport => path
                .parent()
                .is_some_and(|d| Kind::SweepResults.is_own(&d.join("results.json"))),
        }
    }
}

/// The first `limit` bytes of a regular file (empty for anything else).
fn head(path: &Path, limit: u64) -> Vec<u8> {
    let mut buf = Vec::new();
    let regular = std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file());
    if regular {
        if let Ok(f) = std::fs::File::open(path) {
            let _ = f.take(limit).read_to_end(&mut buf);
        }
    }
    buf
}

/// A small JSON file's top-level value (`None` when absent, large or not JSON).
fn json_head(path: &Path) -> Option<serde_json::Value> {
    const LIMIT: u64 = 256 << 20;
    let bytes = head(path, LIMIT + 1);
    if bytes.is_empty() || bytes.len() as u64 > LIMIT {
        return None;
    }
    serde_json::from_slice(&bytes).ok()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plots_are_recognised_by_marker_or_the_old_header_only() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("a.svg");
        let mine = format!("<svg width=\"1\">{SVG_MARKER}</svg>");
        let old = r#"<svg xmlns="http://www.w3.org/2000/svg" width="640" height="360" font-family="sans-serif" font-size="10"><text x="320" y="16">t</text></svg>"#;
        let theirs =
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="640" height="360"><rect/></svg>"#;
        for (text, own) in [(mine.as_str(), true), (old, true), (theirs, false)] {
            std::fs::write(&p, text).unwrap();
            assert_eq!(Kind::Svg.is_own(&p), own, "{text}");
        }
        // a scores file is not a plot, nor the reverse
        assert!(!Kind::ScoresFile.is_own(&p));
        std::fs::write(&p, r#"{"llmdrop_version": "0.1.0", "table": {}}"#).unwrap();
        assert!(Kind::ScoresFile.is_own(&p) && !Kind::Svg.is_own(&p));
    }
}

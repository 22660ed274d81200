//! Task specs on the command line -> tasks; the default BIG-bench suite.

use std::path::{Path, PathBuf};

use super::formats::{read_bigbench, read_jsonl, LAYOUTS};
use super::task::Task;
use crate::assets::cache_dir;
use crate::error::{Error, Result};

/// BIG-bench multiple-choice tasks on which the default model is clearly above chance
/// (measured with `llmdrop eval`, 0-shot; the README lists the numbers). One name a line in
/// `default_suite.txt`, which `scripts/fetch-assets.sh` reads too.
pub fn default_suite() -> Vec<&'static str> {
    include_str!("default_suite.txt")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

/// Where the BIG-bench task files are cached.
pub fn bigbench_dir() -> PathBuf {
    cache_dir().join("bigbench")
}

/// Resolves one task spec:
/// - `default`: the default BIG-bench suite;
/// - `bigbench:NAME`: BIG-bench task NAME from the cache (or `bigbench:PATH/task.json`);
/// - `LAYOUT:FILE.jsonl` with a layout of [`LAYOUTS`], or `FILE.jsonl` (layout `mc`);
/// - `FILE.json`: a BIG-bench-format task file.
pub fn resolve(spec: &str) -> Result<Vec<Task>> {
    if spec == "default" {
        return default_suite().iter().map(|n| bigbench_task(n)).collect();
    }
    if let Some(name) = spec.strip_prefix("bigbench:") {
        if name.ends_with(".json") {
            let p = Path::new(name);
            return Ok(vec![read_bigbench(p, &stem(p))?]);
        }
        return Ok(vec![bigbench_task(name)?]);
    }
    if let Some((layout, file)) = spec.split_once(':') {
        if LAYOUTS.contains(&layout) {
            let p = Path::new(file);
            return Ok(vec![read_jsonl(
                p,
                layout,
                &format!("{layout}:{}", stem(p)),
            )?]);
        }
    }
    let p = Path::new(spec);
    match p.extension().and_then(|e| e.to_str()) {
        Some("jsonl") => Ok(vec![read_jsonl(p, "mc", &stem(p))?]),
        Some("json") => Ok(vec![read_bigbench(p, &stem(p))?]),
        _ => Err(Error::Unknown {
            what: "task",
            name: spec.into(),
            expected: format!(
                "use default, bigbench:NAME, LAYOUT:FILE.jsonl ({}), FILE.jsonl or FILE.json",
                LAYOUTS.join(", ")
            ),
        }),
    }
}

fn stem(p: &Path) -> String {
    p.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// A BIG-bench task from the cache.
pub fn bigbench_task(name: &str) -> Result<Task> {
    if name.is_empty() || name.contains('/') || name.contains("..") {
        return Err(Error::Unknown {
            what: "BIG-bench task",
            name: name.into(),
            expected: "not a task name: no `/` or `..`, not empty".into(),
        });
    }
    let p = bigbench_dir().join(name).join("task.json");
    if !p.exists() {
        let all = bigbench_dir().join("all_tasks.txt");
        let known = std::fs::read_to_string(&all).unwrap_or_default();
        if !known.is_empty() && !known.lines().any(|l| l == name) {
            return Err(Error::Unknown {
                what: "BIG-bench task",
                name: name.into(),
                expected: format!("see {}", all.display()),
            });
        }
        return Err(Error::MissingAsset {
            what: format!("BIG-bench task {name}"),
            reason: format!("{} not found", p.display()),
            fetch: format!("LLMDROP_BIGBENCH_TASKS={name} scripts/fetch-assets.sh"),
        });
    }
    read_bigbench(&p, &format!("bigbench:{name}"))
}

//! The library's top-level modules import each other one way only: no cycle. Read from the
//! sources' `crate::…` paths (test modules at the end of a file are cut off; names the crate
//! root re-exports count as imports of the module they come from).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn src() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Top-level module names, and the root re-exports `Name -> module`.
fn modules_and_aliases() -> (BTreeSet<String>, BTreeMap<String, String>) {
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    let mut mods = BTreeSet::new();
    let mut alias = BTreeMap::new();
    for line in lib.lines().map(str::trim) {
        if let Some(m) = line
            .strip_prefix("pub mod ")
            .or_else(|| line.strip_prefix("pub(crate) mod "))
            .or_else(|| line.strip_prefix("mod "))
        {
            mods.insert(m.trim_end_matches(';').to_string());
        }
        if let Some(rest) = line.strip_prefix("pub use ") {
            let module = rest.split("::").next().unwrap().to_string();
            let names = rest.rsplit("::").next().unwrap();
            for n in names.trim_matches(|c| "{};".contains(c)).split(',') {
                alias.insert(n.trim().to_string(), module.clone());
            }
        }
    }
    (mods, alias)
}

/// The source without comments and without its trailing `#[cfg(test)]` module.
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let text = text.split("#[cfg(test)]").next().unwrap();
    text.lines()
        .map(|l| l.split("//").next().unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}

fn rs_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Edges `module -> module it imports`, each with a file that does it.
fn graph() -> BTreeMap<String, BTreeMap<String, String>> {
    let (mods, alias) = modules_and_aliases();
    let mut files = Vec::new();
    rs_files(&src(), &mut files);
    let mut g: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for f in files {
        let rel = f
            .strip_prefix(src())
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let from = rel
            .split('/')
            .next()
            .unwrap()
            .trim_end_matches(".rs")
            .to_string();
        if from == "lib" {
            continue;
        }
        let text = code(&f);
        for (i, _) in text.match_indices("crate::") {
            let rest = &text[i + "crate::".len()..];
            let names: Vec<&str> = if let Some(group) = rest.strip_prefix('{') {
                group.split('}').next().unwrap().split(',').collect()
            } else {
                vec![rest]
            };
            for n in names {
                let n: String = n
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                let to = if mods.contains(&n) {
                    Some(n)
                } else {
                    alias.get(&n).cloned()
                };
                if let Some(to) = to.filter(|t| *t != from) {
                    g.entry(from.clone()).or_default().insert(to, rel.clone());
                }
            }
        }
    }
    g
}

#[test]
fn top_level_modules_import_one_way() {
    let g = graph();
    assert!(g.len() > 10, "the graph was read: {g:?}");
    // depth-first search for a path that comes back to where it started
    fn visit(
        m: &str,
        g: &BTreeMap<String, BTreeMap<String, String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == m) {
            let mut cycle = path[i..].to_vec();
            cycle.push(m.to_string());
            return Some(cycle);
        }
        if !done.insert(m.to_string()) {
            return None;
        }
        path.push(m.to_string());
        for to in g
            .get(m)
            .map(|e| e.keys().cloned().collect::<Vec<String>>())
            .unwrap_or_default()
        {
            if let Some(c) = visit(&to, g, path, done) {
                return Some(c);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    for m in g.keys() {
        if let Some(cycle) = visit(m, &g, &mut Vec::new(), &mut done) {
            let how: Vec<String> = cycle
                .windows(2)
                .map(|w| format!("{} -> {} ({})", w[0], w[1], g[&w[0]][&w[1]]))
                .collect();
            panic!(
                "import cycle between top-level modules:\n{}",
                how.join("\n")
            );
        }
    }
}

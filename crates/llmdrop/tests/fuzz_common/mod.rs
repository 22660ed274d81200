//! Shared by the fuzz tests: running numbered cases in a child process under a memory
//! limit, and the open + load + tokenize + forward path every case goes through.
//!
//! The parent test re-runs its own test binary (`--exact <child test> --ignored`) with
//! [`CHILD_ENV`] set, through `sh -c 'ulimit -d …'`: a case that allocates past the limit
//! aborts that child only; the parent names the case and restarts the child after it.
//! Inside the child every case runs under `catch_unwind`, and its peak RSS (VmHWM, reset
//! per case through /proc/self/clear_refs) is checked against the same budget.

#![allow(dead_code)]

pub mod gguf_doc;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use candle_core::{DType, Device, Tensor};
use llmdrop::quant::QuantMode;
use llmdrop::{DropPlan, Logits, ModelSource, NoProbe, Precision};

/// Set in the child: the index of the first case to run.
pub const CHILD_ENV: &str = "LLMDROP_FUZZ_CHILD_START";
/// Growth of memory any one case may cause.
pub const CASE_BUDGET: u64 = 256 << 20;
/// The data-segment limit of the child: the budget plus what the test binary itself holds.
const CHILD_DATA_LIMIT: u64 = CASE_BUDGET + (128 << 20);

/// What happened to the cases a child ran.
#[derive(Debug, Default)]
pub struct Outcome {
    pub ok: usize,
    pub err: usize,
    /// Failures: panics, aborts (memory limit), peak RSS over budget.
    pub failures: Vec<String>,
    /// A few error messages, to show the cases reach the checks they target.
    pub errors: Vec<String>,
}

/// Runs cases `0..n` of the child test `child_test` in child processes and returns what
/// they did; a child that dies is restarted after the case it died in.
pub fn run_in_children(child_test: &str, n: usize) -> Outcome {
    let exe = std::env::current_exe().expect("test binary path");
    let mut out = Outcome::default();
    let mut start = 0;
    while start < n {
        let script = format!("ulimit -d {} && exec \"$0\" \"$@\"", CHILD_DATA_LIMIT >> 10);
        let res = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg(&exe)
            .args([child_test, "--exact", "--ignored", "--nocapture"])
            .args(["--test-threads", "1"])
            .env(CHILD_ENV, start.to_string())
            .env("RAYON_NUM_THREADS", "1")
            .env("RUST_BACKTRACE", "0")
            .stdin(Stdio::null())
            .output()
            .expect("spawn the child test");
        let stdout = String::from_utf8_lossy(&res.stdout);
        let mut current: Option<(usize, String)> = None;
        let mut done = false;
        for line in stdout.lines() {
            let mut it = line.splitn(3, ' ');
            let (tag, idx, rest) = (it.next(), it.next(), it.next().unwrap_or(""));
            let idx: Option<usize> = idx.and_then(|i| i.parse().ok());
            match (tag, idx) {
                (Some("CASE"), Some(i)) => current = Some((i, rest.to_string())),
                (Some("OK"), Some(_)) => {
                    out.ok += 1;
                    current = None;
                }
                (Some("ERR"), Some(_)) => {
                    out.err += 1;
                    if out.errors.len() < 400 {
                        out.errors.push(rest.to_string());
                    }
                    current = None;
                }
                (Some("FAIL"), Some(i)) => {
                    out.failures.push(format!("case {i}: {rest}"));
                    current = None;
                }
                (Some("DONE"), _) => done = true,
                _ => {}
            }
        }
        if done {
            break;
        }
        let stderr = String::from_utf8_lossy(&res.stderr);
        let tail: String = stderr.lines().rev().take(5).collect::<Vec<_>>().join(" | ");
        match current {
            Some((i, name)) => {
                out.failures.push(format!(
                    "case {i} {name}: the child died ({}) — over the {} MiB memory limit? stderr: {tail}",
                    res.status,
                    CHILD_DATA_LIMIT >> 20
                ));
                start = i + 1;
            }
            None => panic!(
                "the fuzz child failed outside any case ({}): {tail}\n{stdout}",
                res.status
            ),
        }
    }
    out
}

/// In the child: runs cases from [`CHILD_ENV`] to `n`. `case(i)` names case `i` and
/// returns what runs it; the run goes under `catch_unwind` and the memory budget, and the
/// child prints its name before and its outcome after, for the parent. Does nothing when
/// not started by [`run_in_children`].
pub fn child_main<R: FnOnce() -> Result<(), String>>(
    n: usize,
    case: impl Fn(usize) -> (String, R),
) {
    let Some(start) = std::env::var(CHILD_ENV)
        .ok()
        .and_then(|s| s.parse::<usize>().ok())
    else {
        return;
    };
    // a panic is reported once, by the line below, not by the default hook
    std::panic::set_hook(Box::new(|_| {}));
    let stdout = std::io::stdout();
    // libtest has printed `test name ... ` without a line end
    writeln!(stdout.lock()).ok();
    for i in start..n {
        let (name, run) = case(i);
        writeln!(stdout.lock(), "CASE {i} {name}").ok();
        stdout.lock().flush().ok();
        reset_peak();
        let base = rss();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(run));
        let grown = peak().saturating_sub(base);
        let line = match r {
            Err(p) => format!("FAIL {i} {name}: panic: {}", panic_text(&*p)),
            Ok(_) if grown > CASE_BUDGET => {
                format!("FAIL {i} {name}: peak RSS grew by {} MiB", grown >> 20)
            }
            Ok(Ok(())) => format!("OK {i} {name}"),
            Ok(Err(e)) => format!("ERR {i} {name}: {}", e.replace('\n', " ")),
        };
        writeln!(stdout.lock(), "{line}").ok();
    }
    writeln!(stdout.lock(), "DONE").ok();
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "(non-string panic)".into()
    }
}

fn status_kb(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|r| r.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0)
}

fn rss() -> u64 {
    status_kb("VmRSS:") << 10
}

fn peak() -> u64 {
    status_kb("VmHWM:") << 10
}

/// Resets VmHWM to the current RSS (Linux: `5` to /proc/self/clear_refs).
fn reset_peak() {
    std::fs::write("/proc/self/clear_refs", "5").ok();
}

/// How many times more random cases to run than the suite does (`LLMDROP_FUZZ_SCALE`,
/// for longer local runs; the child inherits it).
pub fn scale() -> usize {
    std::env::var("LLMDROP_FUZZ_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
}

/// `n` random cases, scaled by [`scale`].
pub fn scaled(n: usize) -> usize {
    n * scale()
}

/// The path every case goes through: open, load in f32 on the CPU, build the tokenizer,
/// tokenize and run a few tokens forward; then load it again holding 8-bit and 4-bit
/// matrices (GGUF blocks of those kinds are repacked as stored). Ok or a library error,
/// never a panic.
pub fn open_and_run(path: &Path) -> Result<(), String> {
    let src = ModelSource::open(path).map_err(|e| e.to_string())?;
    let dec = src
        .load_decoder(&DropPlan::empty(), DType::F32, &Device::Cpu)
        .map_err(|e| e.to_string())?;
    for mode in [QuantMode::Q8_0, QuantMode::Q4_1] {
        src.load_decoder(&DropPlan::empty(), Precision::Quant(mode), &Device::Cpu)
            .map_err(|e| format!("{mode:?}: {e}"))?;
    }
    let tok = src.tokenizer().map_err(|e| e.to_string())?;
    let mut ids = tok.encode("Hello world 12").map_err(|e| e.to_string())?;
    ids.truncate(4);
    if ids.is_empty() {
        ids.push(0);
    }
    let t = Tensor::new(ids.as_slice(), &Device::Cpu)
        .and_then(|t| t.unsqueeze(0))
        .map_err(|e| e.to_string())?;
    dec.forward(&t, None, &mut NoProbe, Logits::Last)
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// Fails the test with every failure the children reported.
pub fn assert_clean(what: &str, out: &Outcome, n: usize) {
    eprintln!("{what}: {n} cases, {} loaded, {} refused", out.ok, out.err);
    if let Ok(p) = std::env::var("LLMDROP_FUZZ_ERRORS") {
        std::fs::write(p, out.errors.join("\n")).ok();
    }
    assert!(
        out.failures.is_empty(),
        "{what}: {} of {n} cases failed:\n{}",
        out.failures.len(),
        out.failures.join("\n")
    );
    assert_eq!(out.ok + out.err, n, "{what}: every case reports");
}

//! `score --stream` and `--max-memory` through the real binary: the mode is said on
//! stderr and in the JSON, the scores are the in-memory run's, and a budget below what
//! streaming needs is an error (exit 2) that names the bytes. Streaming spills the unit
//! hidden states into its checkpoint folder (beside the output, or in `--spill-dir`; see
//! score_resume.rs), or with `--no-checkpoint` into a private folder; either is gone when
//! the run ends: done, failed to write (a file size limit) before a layer was saved, or
//! (without a checkpoint) interrupted.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{names, run_in as llmdrop_in, s};
use llmdrop_testkit as testkit;
use serde_json::Value;

fn score_args<'a>(model: &'a str, data: &'a str, out: &'a str) -> Vec<&'a str> {
    vec![
        "score",
        "--model",
        model,
        "--data",
        data,
        "--out",
        out,
        "--json",
        "--samples",
        "4",
        "--seq-len",
        "32",
    ]
}

#[test]
fn stream_gives_the_in_memory_scores_and_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let model = testkit::tiny_dir("llama");
    let data = common::text().display().to_string();
    let held = llmdrop_in(tmp.path(), &score_args(s(&model), &data, "a.json"));
    held.assert_success()
        .assert_stderr_contains("scoring in-memory");
    let mut args = score_args(s(&model), &data, "b.json");
    args.push("--stream");
    let streamed = llmdrop_in(tmp.path(), &args);
    streamed
        .assert_success()
        .assert_stderr_contains("scoring layer-streamed (--stream)")
        .assert_stderr_contains("spilling ")
        .assert_stderr_contains("checkpointing after every layer in ")
        .assert_stderr_contains(".llmdrop-resume-");
    let (h, st): (Value, Value) = (held.json(), streamed.json());
    assert_eq!(h["memory"]["mode"], "in-memory");
    assert_eq!(st["memory"]["mode"], "streamed");
    assert!(st["peak_rss_bytes"].as_u64().unwrap() > 0);
    assert!(st["memory"]["spill_bytes"].as_u64().unwrap() > 0);
    assert_eq!(h["memory"]["spill_bytes"], Value::Null);
    // only the two score files: the checkpoint folder went with the run
    assert_eq!(names(tmp.path()), ["a.json", "b.json"]);
    // elsewhere when asked, and gone from there too
    let spill = tempfile::tempdir().unwrap();
    let spill_dir = spill.path().canonicalize().unwrap();
    args[6] = "c.json";
    args.extend(["--spill-dir", s(&spill_dir)]);
    let c = llmdrop_in(tmp.path(), &args);
    c.assert_success()
        .assert_stderr_contains(&format!("to {}/.llmdrop-resume-", spill_dir.display()));
    assert!(names(spill.path()).is_empty(), "{:?}", names(spill.path()));
    // without a checkpoint: a private spill folder, gone too
    args[6] = "d.json";
    args.push("--no-checkpoint");
    let d = llmdrop_in(tmp.path(), &args);
    d.assert_success()
        .assert_stderr_contains(&format!("to {}/.llmdrop-spill-", spill_dir.display()));
    assert!(!d.stderr.contains("checkpointing"), "{}", d.stderr);
    assert!(names(spill.path()).is_empty(), "{:?}", names(spill.path()));
    assert_eq!(names(tmp.path()), ["a.json", "b.json", "c.json", "d.json"]);
    for r in [&c, &d] {
        assert_eq!(r.json::<Value>()["table"], h["table"]);
    }
    // every similarity, as written (shortest round-trip decimals: equal text, equal bits)
    assert_eq!(st["table"], h["table"]);
}

#[test]
fn a_budget_streaming_cannot_meet_is_an_error_naming_the_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let model = testkit::tiny_dir("llama");
    let data = common::text().display().to_string();
    let mut args = score_args(s(&model), &data, "scores.json");
    args.extend(["--max-memory", "4KiB"]);
    llmdrop_in(tmp.path(), &args)
        .assert_code(2)
        .assert_stderr_contains("even layer-streamed")
        .assert_stderr_contains("but --max-memory (4.0 KiB) allows 4096 bytes")
        .assert_stderr_contains("one layer");
    assert!(!tmp.path().join("scores.json").exists());
    args.pop();
    args.push("lots");
    llmdrop_in(tmp.path(), &args)
        .assert_code(2)
        .assert_stderr_contains("`lots` is not a size");
}

/// `sh -c` with SIGXFSZ ignored (so a write past the limit fails with EFBIG instead of
/// killing the process) and files limited to 8 blocks of 512 or 1024 bytes, running
/// `llmdrop ARGS` in `dir`.
fn llmdrop_with_file_limit(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new("sh")
        .arg("-c")
        .arg("trap '' XFSZ; ulimit -f 8 && exec \"$@\"")
        .arg("sh")
        .arg(env!("CARGO_BIN_EXE_llmdrop"))
        .args(args)
        .current_dir(dir)
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn a_spill_write_that_fails_is_a_clear_error_that_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let model = testkit::tiny_dir("llama");
    let data = common::text().display().to_string();
    let mut args = score_args(s(&model), &data, "scores.json");
    // one layer of one block: 64 tokens x 64 wide x 4 bytes = 16 KiB, past the limit
    args[11] = "64";
    args.push("--stream");
    let out = llmdrop_with_file_limit(tmp.path(), &args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.lines().last().unwrap().starts_with("llmdrop: "),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains("spilling the hidden states to disk"), "{err}");
    assert!(err.contains("File too large"), "{err}");
    assert!(
        names(tmp.path()).is_empty(),
        "left: {:?}",
        names(tmp.path())
    );
}

#[test]
fn a_spill_dir_that_is_a_file_is_refused_before_scoring() {
    let tmp = tempfile::tempdir().unwrap();
    let model = testkit::tiny_dir("llama");
    let data = common::text().display().to_string();
    std::fs::write(tmp.path().join("file"), "x").unwrap();
    let mut args = score_args(s(&model), &data, "scores.json");
    args.extend(["--stream", "--spill-dir", "file"]);
    llmdrop_in(tmp.path(), &args).assert_clean_error(&["file"]);
    assert_eq!(names(tmp.path()), ["file"]);
}

/// Ctrl-C while the default model's layers are streamed without a checkpoint: exit 130, the
/// spill folder gone.
#[test]
fn sigint_while_streaming_the_default_model_removes_the_spill_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let model = common::default_model();
    let data = common::text().display().to_string();
    let mut args = score_args(s(&model), &data, "scores.json");
    args[9] = "8";
    args[11] = "256";
    args.extend(["--stream", "--no-checkpoint"]);
    let mut child = common::command(&args)
        .current_dir(tmp.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    // the block files appear once the first layer has run
    let spilled = |d: &Path| {
        names(d).iter().any(|n| n.starts_with(".llmdrop-spill-"))
            && std::fs::read_dir(d)
                .unwrap()
                .flatten()
                .any(|e| e.path().is_dir() && names(&e.path()).iter().any(|n| n.ends_with(".f32")))
    };
    while !spilled(tmp.path()) {
        assert!(
            child.try_wait().unwrap().is_none(),
            "finished before spilling"
        );
        assert!(
            t0.elapsed() < Duration::from_secs(300),
            "no spill after 300 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let ok = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(
        names(tmp.path()).is_empty(),
        "left: {:?}",
        names(tmp.path())
    );
}

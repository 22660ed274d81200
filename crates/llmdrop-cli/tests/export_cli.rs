//! `llmdrop export` through the real binary: refusals and failures leave nothing behind.

mod common;

use common::{names as entries, run, s, Mount};
use llmdrop_testkit as testkit;
use std::path::Path;

#[test]
fn plan_made_for_another_model_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let llama = testkit::tiny_dir("llama");
    let mistral = testkit::tiny_dir("mistral");
    let out = |name: &str| tmp.path().join(name).display().to_string();
    // a plan written by exporting the llama carries the llama's hash
    run(&[
        "export",
        "--model",
        s(&llama),
        "--drop-attn",
        "1",
        "--format",
        "hf-llmdrop",
        "--out",
        &out("a"),
    ])
    .assert_success();
    let plan = tmp.path().join("a/plan.json");
    run(&[
        "export",
        "--model",
        s(&mistral),
        "--plan",
        s(&plan),
        "--format",
        "hf-llmdrop",
        "--out",
        &out("b"),
    ])
    .assert_code(2)
    .assert_stderr_contains("the plan was made for another model");
    assert!(!tmp.path().join("b").exists());
    // the same plan on its own model works, and an unknown format is refused
    let r = run(&[
        "export",
        "--model",
        s(&llama),
        "--plan",
        s(&plan),
        "--format",
        "gguf",
        "--quant",
        "f32",
        "--out",
        &out("b"),
    ]);
    assert_eq!(
        r.code, 2,
        "llama3 RoPE scaling has no GGUF form yet: {}",
        r.stderr
    );
    r.assert_stderr_contains("RoPE scaling");
    run(&[
        "export",
        "--model",
        s(&llama),
        "--plan",
        s(&plan),
        "--format",
        "onnx",
        "--out",
        &out("c"),
    ])
    .assert_code(2)
    .assert_stderr_contains("invalid value 'onnx' for '--format");
    assert_eq!(entries(tmp.path()), vec!["a"]);
}

/// Exports into `dir/out` and returns (exit code, stderr, what is left in `dir`).
fn export_into(dir: &Path, arch: &str) -> (i32, String, Vec<String>) {
    let model = testkit::tiny_dir(arch);
    let out = dir.join("out");
    let r = run(&[
        "export",
        "--model",
        s(&model),
        "--drop-attn",
        "0",
        "--format",
        "hf-llmdrop",
        "--out",
        s(&out),
    ]);
    (r.code, r.stderr, entries(dir))
}

/// A disk that fills up during the write (a 128 KiB tmpfs): the export fails with the OS
/// error and leaves the disk empty.
#[test]
fn full_disk_leaves_no_partial_output() {
    let m = Mount::new("size=128k");
    let (code, err, left) = export_into(m.path(), "qwen2");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// A read-only directory (a read-only mount: root ignores file modes): the export fails
/// with the OS error and writes nothing.
#[test]
fn read_only_directory_is_an_error() {
    let m = Mount::new("ro,size=1m");
    let (code, err, left) = export_into(m.path(), "llama");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("Read-only file system"), "{err}");
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// nemotron-nas: a plan whose first kept layer has no attention is refused (exit 2, why, and
/// the flag that overrides it), by `export` and by `drop`; `--allow-first-attn-drop` writes it.
#[test]
fn nemotron_first_attention_drop_needs_the_flag() {
    let tmp = tempfile::tempdir().unwrap();
    let llama = testkit::tiny_dir("llama");
    let out = |name: &str| tmp.path().join(name).display().to_string();
    let export = |name: &str, extra: &[&str]| {
        let o = out(name);
        let mut a = vec!["export", "--model", s(&llama), "--drop-attn", "0"];
        a.extend(["--format", "nemotron-nas", "--out", &o]);
        a.extend(extra);
        run(&a)
    };
    export("a", &[])
        .assert_code(2)
        .assert_stderr_contains("vLLM's DeciLM decoder layer")
        .assert_stderr_contains("--allow-first-attn-drop");
    assert!(entries(tmp.path()).is_empty());
    export("a", &["--allow-first-attn-drop"]).assert_success();
    assert!(tmp.path().join("a/modeling_nemotron_nas.py").is_file());
    // `drop` chooses the plan: dropping all three attention layers leaves layer 0 without one
    let text = common::text().display().to_string();
    let drop = |name: &str, extra: &[&str]| {
        let o = out(name);
        let mut a = vec!["drop", "--model", s(&llama), "--data", &text];
        a.extend(["--samples", "2", "--seq-len", "32", "--strategy", "attn"]);
        a.extend(["-n", "3", "--format", "nemotron-nas", "--out", &o]);
        a.extend(extra);
        run(&a)
    };
    drop("b", &[])
        .assert_code(2)
        .assert_stderr_contains("--keep-first 1");
    assert!(!tmp.path().join("b").exists());
    drop("b", &["--allow-first-attn-drop"]).assert_success();
    assert_eq!(entries(tmp.path()), vec!["a", "b"]);
}

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

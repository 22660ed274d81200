//! `llmdrop export` through the real binary: refusals and failures leave nothing behind.

use std::path::Path;
use std::process::Command;

use llmdrop::testkit;

fn llmdrop(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_llmdrop"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn plan_made_for_another_model_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let llama = testkit::tiny_dir("llama");
    let mistral = testkit::tiny_dir("mistral");
    // a plan written by exporting the llama carries the llama's hash
    let (code, _, err) = llmdrop(&[
        "export",
        "--model",
        llama.to_str().unwrap(),
        "--drop-attn",
        "1",
        "--format",
        "hf-llmdrop",
        "--out",
        tmp.path().join("a").to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let plan = tmp.path().join("a/plan.json");
    let (code, _, err) = llmdrop(&[
        "export",
        "--model",
        mistral.to_str().unwrap(),
        "--plan",
        plan.to_str().unwrap(),
        "--format",
        "hf-llmdrop",
        "--out",
        tmp.path().join("b").to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("the plan was made for another model"), "{err}");
    assert!(!tmp.path().join("b").exists());
    // the same plan on its own model works, and an unknown format is refused
    let (code, _, err) = llmdrop(&[
        "export",
        "--model",
        llama.to_str().unwrap(),
        "--plan",
        plan.to_str().unwrap(),
        "--format",
        "gguf",
        "--quant",
        "f32",
        "--out",
        tmp.path().join("b").to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "llama3 RoPE scaling has no GGUF form yet: {err}");
    assert!(err.contains("RoPE scaling"), "{err}");
    let (code, _, err) = llmdrop(&[
        "export",
        "--model",
        llama.to_str().unwrap(),
        "--plan",
        plan.to_str().unwrap(),
        "--format",
        "onnx",
        "--out",
        tmp.path().join("c").to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown format `onnx`"), "{err}");
    assert_eq!(entries(tmp.path()), vec!["a"]);
}

/// A disk that fills up during the write: a 128 KiB tmpfs (root can mount one here; CI
/// runs as root). The export fails with the OS error and leaves the disk empty.
#[test]
fn full_disk_leaves_no_partial_output() {
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path().join("small");
    std::fs::create_dir(&mnt).unwrap();
    let mounted = Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            "size=128k",
            "tmpfs",
            mnt.to_str().unwrap(),
        ])
        .status()
        .is_ok_and(|s| s.success());
    assert!(mounted, "this test needs to mount a small tmpfs (root)");
    let model = testkit::tiny_dir("qwen2");
    let (code, _, err) = llmdrop(&[
        "export",
        "--model",
        model.to_str().unwrap(),
        "--drop-attn",
        "0",
        "--format",
        "hf-llmdrop",
        "--out",
        mnt.join("out").to_str().unwrap(),
    ]);
    let left = entries(&mnt);
    let _ = Command::new("umount").arg(&mnt).status();
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// A read-only directory (a read-only tmpfs mount: root ignores file modes): the export
/// fails with the OS error and writes nothing.
#[test]
fn read_only_directory_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path().join("ro");
    std::fs::create_dir(&mnt).unwrap();
    let mounted = Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            "ro,size=1m",
            "tmpfs",
            mnt.to_str().unwrap(),
        ])
        .status()
        .is_ok_and(|s| s.success());
    assert!(mounted, "this test needs to mount a read-only tmpfs (root)");
    let model = testkit::tiny_dir("llama");
    let (code, _, err) = llmdrop(&[
        "export",
        "--model",
        model.to_str().unwrap(),
        "--drop-attn",
        "1",
        "--format",
        "hf-llmdrop",
        "--out",
        mnt.join("out").to_str().unwrap(),
    ]);
    let left = entries(&mnt);
    let _ = Command::new("umount").arg(&mnt).status();
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("Read-only file system"), "{err}");
    assert!(left.is_empty(), "left behind: {left:?}");
}

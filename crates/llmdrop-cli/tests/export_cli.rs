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

/// Mounts a tmpfs with `opts` on a fresh directory (root can mount here; CI runs as root).
struct Mount(tempfile::TempDir);

impl Mount {
    fn new(opts: &str) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                opts,
                "tmpfs",
                tmp.path().to_str().unwrap(),
            ])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "this test needs to mount a tmpfs (root)");
        Mount(tmp)
    }
    fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

/// Exports into `dir/out` and returns (exit code, stderr, what is left in `dir`).
fn export_into(dir: &Path, arch: &str) -> (i32, String, Vec<String>) {
    let model = testkit::tiny_dir(arch);
    let (code, _, err) = llmdrop(&[
        "export",
        "--model",
        model.to_str().unwrap(),
        "--drop-attn",
        "0",
        "--format",
        "hf-llmdrop",
        "--out",
        dir.join("out").to_str().unwrap(),
    ]);
    (code, err, entries(dir))
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

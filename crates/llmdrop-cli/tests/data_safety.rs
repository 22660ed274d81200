//! Issue 12: nothing a user owns is ever lost. Every careless output path of the audit is
//! refused with exit 2 and leaves the input byte-identical and unrelated files in place;
//! `--force` replaces only llmdrop's own outputs; real signals on a real process leave no
//! staging behind, and staging left by a killed run is removed by the next one.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::reports::{self, ExportedConfig};
use common::{names, run_in as llmdrop, s, text, Mount, Run};
use llmdrop_testkit as testkit;

const CALIB: [&str; 4] = ["--samples", "2", "--seq-len", "32"];

/// Every file below `dir` with its bytes, sorted by path.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        if d.is_file() {
            out.push((d.clone(), std::fs::read(&d).unwrap()));
            continue;
        }
        for e in std::fs::read_dir(&d).unwrap() {
            stack.push(e.unwrap().path());
        }
    }
    out.sort();
    out
}

/// A copy of the tiny llama model in `dir/model`.
fn tiny_model(dir: &Path) -> PathBuf {
    let m = dir.join("model");
    common::copy_tiny("llama", &m);
    m
}

#[track_caller]
fn refused(r: &Run, what: &str) {
    r.assert_error()
        .assert_stderr_contains("output refused")
        .assert_stderr_contains(what);
}

#[test]
fn issue12_score_out_onto_the_model_file_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let gguf = tmp.path().join("model.gguf");
    testkit::write_gguf_v2_from_hf(&testkit::tiny_dir("llama"), &gguf).unwrap();
    let before = std::fs::read(&gguf).unwrap();
    let mut args = vec!["score", "--model", s(&gguf), "--out", s(&gguf)];
    let data = text();
    args.extend(["--data", s(&data)]);
    args.extend(CALIB);
    refused(&llmdrop(tmp.path(), &args), "is the model");
    assert_eq!(std::fs::read(&gguf).unwrap(), before);
    // through a symlink and a `..` detour too
    std::os::unix::fs::symlink(&gguf, tmp.path().join("alias.gguf")).unwrap();
    std::fs::create_dir(tmp.path().join("sub")).unwrap();
    for out in ["alias.gguf", "sub/../model.gguf"] {
        args[4] = out;
        refused(&llmdrop(tmp.path(), &args), "is the model");
    }
    assert_eq!(std::fs::read(&gguf).unwrap(), before);
}

#[test]
fn issue12_score_plot_into_the_model_folder_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let m = tiny_model(tmp.path());
    let before = snapshot(&m);
    let data = text();
    let mut args = vec!["score", "--model", s(&m), "--data", s(&data)];
    args.extend(["--out", "scores.json", "--plot", s(&m)]);
    args.extend(CALIB);
    refused(&llmdrop(tmp.path(), &args), "is the model");
    // scores inside the model folder, or the calibration data as output: refused as well
    args[6] = "model/scores.json";
    args[8] = "plots";
    refused(&llmdrop(tmp.path(), &args), "lies inside the model");
    args[6] = s(&data);
    refused(&llmdrop(tmp.path(), &args), "is the calibration data");
    assert_eq!(snapshot(&m), before);
    assert_eq!(names(tmp.path()), vec!["model"]);
}

#[test]
fn issue12_score_never_replaces_a_file_it_did_not_write() {
    let tmp = tempfile::tempdir().unwrap();
    let m = tiny_model(tmp.path());
    let data = text();
    let theirs = tmp.path().join("notes.json");
    std::fs::write(&theirs, "{\"mine\": true}").unwrap();
    let mut args = vec!["score", "--model", s(&m), "--data", s(&data)];
    args.extend(["--out", "notes.json"]);
    args.extend(CALIB);
    refused(
        &llmdrop(tmp.path(), &args),
        "not a scores file written by llmdrop",
    );
    assert_eq!(std::fs::read(&theirs).unwrap(), b"{\"mine\": true}");
    // its own scores file is replaced on a rerun (and plots in an existing folder)
    std::fs::create_dir(tmp.path().join("plots")).unwrap();
    std::fs::write(tmp.path().join("plots/keep.txt"), "x").unwrap();
    args[6] = "scores.json";
    args.extend(["--plot", "plots"]);
    for _ in 0..2 {
        llmdrop(tmp.path(), &args).assert_success();
    }
    assert_eq!(
        names(&tmp.path().join("plots")),
        vec!["consecutive.svg", "keep.txt", "similarity.svg"]
    );
    assert_eq!(
        names(tmp.path()),
        vec!["model", "notes.json", "plots", "scores.json"]
    );
}

#[test]
fn issue12_force_never_deletes_an_unrelated_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let m = tiny_model(tmp.path());
    let theirs = tmp.path().join("photos");
    std::fs::create_dir(&theirs).unwrap();
    std::fs::write(theirs.join("a.jpg"), "jpeg").unwrap();
    let before = snapshot(&theirs);
    let data = text();
    let mut drop = vec!["drop", "--model", s(&m), "--data", s(&data)];
    drop.extend([
        "--strategy",
        "attn",
        "-n",
        "1",
        "--out",
        s(&theirs),
        "--force",
    ]);
    drop.extend(CALIB);
    refused(
        &llmdrop(tmp.path(), &drop),
        "not a pruned model folder written by llmdrop",
    );
    let export = [
        "export",
        "--model",
        s(&m),
        "--drop-attn",
        "0",
        "--format",
        "hf-llmdrop",
        "--out",
        s(&theirs),
        "--force",
    ];
    refused(
        &llmdrop(tmp.path(), &export),
        "never replaced, even with --force",
    );
    let gguf = [
        "export",
        "--model",
        s(&m),
        "--drop-attn",
        "0",
        "--format",
        "gguf",
        "--out",
    ];
    let file = tmp.path().join("photos/a.jpg");
    let r = llmdrop(tmp.path(), &[&gguf[..], &[s(&file), "--force"]].concat());
    refused(&r, "not a GGUF export written by llmdrop");
    assert_eq!(snapshot(&theirs), before);
    // the model folder's parent (it contains the input) is refused too
    let r = llmdrop(
        tmp.path(),
        &[&export[..8], &[s(tmp.path()), "--force"]].concat(),
    );
    refused(&r, "contains the model");
    assert_eq!(names(tmp.path()), vec!["model", "photos"]);
}

#[test]
fn issue12_force_replaces_own_outputs_atomically_and_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let m = tiny_model(tmp.path());
    let out = tmp.path().join("out");
    let gguf = tmp.path().join("out.gguf");
    // (the GGUF export from the test kit's GGUF: llama3 RoPE scaling has no GGUF form)
    let m_gguf = testkit::tiny_dir("llama").join("model.gguf");
    for (format, model, dest) in [("hf-llmdrop", &m, &out), ("gguf", &m_gguf, &gguf)] {
        let args = [
            "export",
            "--model",
            s(model),
            "--drop-attn",
            "0",
            "--format",
            format,
            "--out",
            s(dest),
        ];
        llmdrop(tmp.path(), &args).assert_success();
        // again without --force: refused, says how
        let r = llmdrop(tmp.path(), &args);
        refused(&r, "use --force to replace it");
        let mut forced = args.to_vec();
        forced.extend(["--drop-attn", "1", "--force"]);
        forced.remove(4);
        forced.remove(3);
        llmdrop(tmp.path(), &forced).assert_success();
    }
    // the replaced folder holds the second plan, and nothing else lies beside the outputs
    let cfg: ExportedConfig = reports::read(&out.join("config.json"));
    assert_eq!(cfg.drop_attn_list, [1]);
    assert_eq!(names(tmp.path()), vec!["model", "out", "out.gguf"]);
    assert!(
        !names(&out).iter().any(|n| n.contains("llmdrop-")),
        "{:?}",
        names(&out)
    );
}

/// Waits until the staging folder of `dest` holds a file, or the process ends.
fn wait_for_staging(child: &mut std::process::Child, parent: &Path, dest: &str) -> PathBuf {
    let prefix = format!(".{dest}.llmdrop-");
    let t0 = Instant::now();
    loop {
        if let Some(e) = std::fs::read_dir(parent)
            .unwrap()
            .flatten()
            .find(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        {
            let busy = std::fs::read_dir(e.path())
                .map(|r| r.count() > 1)
                .unwrap_or(false);
            if busy {
                return e.path();
            }
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the export ended first"
        );
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "no staging appeared"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Starts a long export (the real default model to an f32 HF folder) towards `dir/out`.
fn start_long_export(dir: &Path) -> std::process::Child {
    common::command(&[
        "export",
        "--drop-attn",
        "3",
        "--format",
        "hf-llmdrop",
        "--out",
        "out",
    ])
    .arg("--model")
    .arg(common::default_model())
    .current_dir(dir)
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap()
}

fn kill(child: &std::process::Child, signal: &str) {
    let ok = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

#[test]
fn issue12_default_model_sigint_and_sigterm_remove_the_staging() {
    for (signal, code) in [("-INT", 130), ("-TERM", 143)] {
        let tmp = tempfile::tempdir().unwrap();
        let mut child = start_long_export(tmp.path());
        wait_for_staging(&mut child, tmp.path(), "out");
        kill(&child, signal);
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{signal}: {err}");
        assert!(err.contains("interrupted"), "{err}");
        assert!(
            names(tmp.path()).is_empty(),
            "left: {:?}",
            names(tmp.path())
        );
    }
}

#[test]
fn issue12_default_model_sigkill_leftovers_are_removed_by_the_next_run() {
    let tmp = tempfile::tempdir().unwrap();
    let mut child = start_long_export(tmp.path());
    let staging = wait_for_staging(&mut child, tmp.path(), "out");
    kill(&child, "-KILL");
    child.wait().unwrap();
    assert!(staging.exists(), "SIGKILL leaves the staging folder");
    // the next run towards the same destination (a tiny model: quick) removes it
    let m = tiny_model(tmp.path());
    let r = llmdrop(
        tmp.path(),
        &[
            "export",
            "--model",
            s(&m),
            "--drop-attn",
            "0",
            "--format",
            "hf-llmdrop",
            "--out",
            "out",
        ],
    );
    r.assert_success()
        .assert_stderr_contains("left by an interrupted run");
    let name = staging.file_name().unwrap().to_string_lossy().into_owned();
    r.assert_stderr_contains(&name);
    assert_eq!(names(tmp.path()), vec!["model", "out"]);
}

#[test]
fn issue12_full_disk_score_leaves_no_temp_file() {
    let m = Mount::new("size=64k");
    // fill the disk: the scores cannot be written
    let filler = m.path().join("filler");
    let _ = std::fs::write(&filler, vec![0u8; 64 << 10]);
    let tmp = tempfile::tempdir().unwrap();
    let model = tiny_model(tmp.path());
    let data = text();
    let out = m.path().join("scores.json");
    let mut args = vec![
        "score",
        "--model",
        s(&model),
        "--data",
        s(&data),
        "--out",
        s(&out),
    ];
    args.extend(CALIB);
    let r = llmdrop(tmp.path(), &args);
    let left = names(m.path());
    drop(m);
    r.assert_code(2)
        .assert_stderr_contains("No space left on device");
    assert_eq!(left, vec!["filler"], "left behind");
}

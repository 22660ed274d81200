//! `score --stream` checkpoints every layer and resumes, through the real binary: Ctrl-C
//! stops it after the layer it is on (exit 130, a line saying how to resume), a kill -9 in
//! the middle of a layer loses that layer only, a full disk part way keeps what was saved;
//! each rerun says where it resumes and writes the scores of a run that never stopped,
//! exactly. Other settings never resume from it, a damaged checkpoint is cleared with a
//! warning, `--no-resume` starts over and `--no-checkpoint` leaves nothing behind.

mod common;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{names, run_in, s, Run};
use llmdrop_testkit as testkit;
use serde_json::Value;

/// A tiny llama with this many layers, each quick: a run is stopped in the middle.
const LAYERS: usize = 32;

fn deep_model(dir: &Path, layers: usize) -> PathBuf {
    let p = dir.join(format!("deep{layers}"));
    testkit::write_deep_copy(&testkit::tiny_dir("llama"), &p, layers).unwrap();
    p
}

/// `score --stream` of `model` on the English text, `samples` blocks of `seq` tokens.
fn args<'a>(model: &'a Path, out: &'a str, samples: &'a str, seq: &'a str) -> Vec<&'a str> {
    vec![
        "score",
        "--model",
        s(model),
        "--data",
        text(),
        "--out",
        out,
        "--samples",
        samples,
        "--seq-len",
        seq,
        "--stream",
    ]
}

fn text() -> &'static str {
    static TEXT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TEXT.get_or_init(|| common::text().display().to_string())
}

/// The checkpoint folder in `dir` (one at most).
fn checkpoint_in(dir: &Path) -> Option<PathBuf> {
    let found: Vec<_> = names(dir)
        .into_iter()
        .filter(|n| n.starts_with(".llmdrop-resume-"))
        .collect();
    assert!(found.len() <= 1, "{found:?}");
    found.first().map(|n| dir.join(n))
}

/// The layers the checkpoint in `dir` holds saved.
fn saved_layers(dir: &Path) -> usize {
    let Some(c) = checkpoint_in(dir) else {
        return 0;
    };
    let n = std::fs::read_dir(&c).into_iter().flatten().flatten();
    n.filter_map(|e| {
        let name = e.file_name().to_string_lossy().into_owned();
        name.strip_prefix("layer-")?
            .strip_suffix(".ckpt")?
            .parse()
            .ok()
    })
    .max()
    .unwrap_or(0)
}

/// Starts `llmdrop ARGS` in `dir` and waits until its checkpoint holds `layers` layers.
fn start_until_saved(dir: &Path, args: &[&str], layers: usize) -> Child {
    let mut child = common::command(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while saved_layers(dir) < layers {
        assert!(
            child.try_wait().unwrap().is_none(),
            "ended before layer {layers}"
        );
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "no layer saved in 120 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

fn finish(child: Child) -> Run {
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::new(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn table(path: &Path) -> Value {
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    v["table"].clone()
}

/// The line that says where a run resumed: the layer.
fn resumed_at(r: &Run) -> Option<usize> {
    let line = r
        .stderr
        .lines()
        .find(|l| l.starts_with("resuming at layer "))?;
    let rest = line.strip_prefix("resuming at layer ")?;
    let (layer, rest) = rest.split_once(" of ")?;
    assert!(rest.starts_with(&format!("{LAYERS} from ")), "{line}");
    layer.parse().ok()
}

#[test]
fn ctrl_c_and_kill_stop_a_run_that_resumes_to_the_same_scores() {
    let models = tempfile::tempdir().unwrap();
    let model = deep_model(models.path(), LAYERS);
    let tmp = tempfile::tempdir().unwrap();
    let dir = &tmp.path().canonicalize().unwrap();
    let run = |out: &str, extra: &[&str]| {
        let mut a = args(&model, out, "4", "128");
        a.extend(extra);
        run_in(dir, &a)
    };
    run("whole.json", &["--no-checkpoint"])
        .assert_success()
        .assert_stderr_contains(".llmdrop-spill-");
    assert_eq!(names(dir), ["whole.json"]);

    // Ctrl-C: the layer under way is finished and saved, then the run stops
    let a = args(&model, "scores.json", "4", "128");
    let child = start_until_saved(dir, &a, 1);
    signal(&child, "-INT");
    let r = finish(child);
    r.assert_code(130)
        .assert_no_panic()
        .assert_stderr_contains("stopping after this layer")
        .assert_stderr_contains("run the same command again to resume");
    let first = saved_layers(dir);
    assert!((1..LAYERS).contains(&first), "{first}");
    assert!(!dir.join("scores.json").exists());

    // kill -9 in the middle of a layer: nothing can be saved then; the last layer is
    let child = start_until_saved(dir, &a, first + 2);
    signal(&child, "-KILL");
    let r = finish(child);
    assert_eq!(r.code, -1, "{}", r.stderr);
    assert_eq!(resumed_at(&r), Some(first));
    let second = saved_layers(dir);
    assert!(second >= first + 2 && second < LAYERS, "{second}");

    let r = run_in(dir, &a);
    r.assert_success()
        .assert_stderr_contains("checkpointing after every layer in ");
    assert_eq!(resumed_at(&r), Some(second));
    assert_eq!(
        table(&dir.join("scores.json")),
        table(&dir.join("whole.json"))
    );
    // the checkpoint went with the scores written
    assert_eq!(names(dir), ["scores.json", "whole.json"]);
}

/// The default model (Q4_1 GGUF scored in f32, 30 layers): stopped by Ctrl-C after a few
/// layers, resumed, the scores of a run that never stopped.
#[test]
fn ctrl_c_on_the_default_model_resumes_to_the_same_scores() {
    let model = common::default_model();
    let tmp = tempfile::tempdir().unwrap();
    let dir = &tmp.path().canonicalize().unwrap();
    let a = args(&model, "scores.json", "8", "256");
    let child = start_until_saved(dir, &a, 2);
    signal(&child, "-INT");
    finish(child)
        .assert_code(130)
        .assert_stderr_contains("run the same command again to resume");
    let saved = saved_layers(dir);
    assert!((2..30).contains(&saved), "{saved}");
    let r = run_in(dir, &a);
    r.assert_success()
        .assert_stderr_contains(&format!("resuming at layer {saved} of 30 from "));
    let mut whole = a.clone();
    whole[6] = "whole.json";
    whole.push("--no-checkpoint");
    run_in(dir, &whole).assert_success();
    assert_eq!(
        table(&dir.join("scores.json")),
        table(&dir.join("whole.json"))
    );
    assert_eq!(names(dir), ["scores.json", "whole.json"]);
}

#[test]
fn other_settings_or_no_resume_start_over_and_a_damaged_checkpoint_is_cleared() {
    let models = tempfile::tempdir().unwrap();
    let model = deep_model(models.path(), LAYERS);
    let tmp = tempfile::tempdir().unwrap();
    let dir = &tmp.path().canonicalize().unwrap();
    let a = args(&model, "scores.json", "4", "96");
    let stop = |a: &[&str]| {
        let child = start_until_saved(dir, a, 2);
        signal(&child, "-INT");
        finish(child).assert_code(130);
    };
    stop(&a);
    let old = checkpoint_in(dir).unwrap();
    // another --seq-len: not this checkpoint's scores; it is replaced
    let b = args(&model, "scores.json", "4", "64");
    let r = run_in(dir, &b);
    r.assert_success().assert_stderr_contains(&format!(
        "removed {}, the checkpoint of this output for another",
        old.display()
    ));
    assert_eq!(resumed_at(&r), None);
    let mut whole = b.clone();
    whole[6] = "whole64.json";
    whole.push("--no-checkpoint");
    run_in(dir, &whole).assert_success();
    assert_eq!(
        table(&dir.join("scores.json")),
        table(&dir.join("whole64.json"))
    );

    // --no-resume: removed, scored from layer 0
    stop(&a);
    let mut fresh = a.clone();
    fresh.push("--no-resume");
    let r = run_in(dir, &fresh);
    r.assert_success().assert_stderr_contains("starting over");
    assert_eq!(resumed_at(&r), None);

    // damaged: a warning, scored from layer 0, the same scores
    stop(&a);
    let c = checkpoint_in(dir).unwrap();
    let layer = c.join(format!("layer-{}.ckpt", saved_layers(dir)));
    let mut bytes = std::fs::read(&layer).unwrap();
    // within the last block's hidden state: read whole, only the checksum tells
    let at = bytes.len() - 100;
    bytes[at] ^= 0x40;
    std::fs::write(&layer, bytes).unwrap();
    let r = run_in(dir, &a);
    r.assert_success()
        .assert_no_panic()
        .assert_stderr_contains("warning: the checkpoint in ")
        .assert_stderr_contains("checksum");
    assert_eq!(resumed_at(&r), None);
    let first = table(&dir.join("scores.json"));
    let mut whole = a.clone();
    whole[6] = "whole96.json";
    whole.push("--no-checkpoint");
    run_in(dir, &whole).assert_success();
    assert_eq!(first, table(&dir.join("whole96.json")));
    assert_eq!(names(dir), ["scores.json", "whole64.json", "whole96.json"]);
}

/// `llmdrop ARGS` in `dir`, no file it writes may grow past `limit` bytes (writes past it
/// fail with "File too large").
fn run_with_file_limit(dir: &Path, args: &[&str], limit: u64) -> Run {
    let mut cmd = common::command(args);
    cmd.current_dir(dir);
    // SAFETY: between fork and exec the closure calls only async-signal-safe functions
    // (signal, setrlimit, reading errno) on values it owns.
    unsafe {
        cmd.pre_exec(move || {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let r = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            match libc::setrlimit(libc::RLIMIT_FSIZE, &r) {
                0 => Ok(()),
                _ => Err(std::io::Error::last_os_error()),
            }
        });
    }
    let out = cmd.output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn a_disk_full_part_way_keeps_the_saved_layers_and_the_rerun_resumes() {
    let models = tempfile::tempdir().unwrap();
    let model = deep_model(models.path(), 12);
    let tmp = tempfile::tempdir().unwrap();
    let dir = &tmp.path().canonicalize().unwrap();
    let a = args(&model, "scores.json", "4", "32");
    // a block's unit file grows by 32 tokens x 64 x 4 = 8 KiB a layer; a layer file holds
    // 4 blocks' hidden states (32 KiB) and sums: at 48 KiB the 7th unit write fails
    let r = run_with_file_limit(dir, &a, 48 << 10);
    r.assert_code(2)
        .assert_no_panic()
        .assert_stderr_contains("6 of 12 layers are saved in ")
        .assert_stderr_contains("spilling the hidden states to disk")
        .assert_stderr_contains("File too large");
    assert_eq!(saved_layers(dir), 6);
    assert!(!dir.join("scores.json").exists());
    let r = run_in(dir, &a);
    r.assert_success();
    let line = r
        .stderr
        .lines()
        .find(|l| l.starts_with("resuming at layer "));
    assert!(
        line.unwrap().starts_with("resuming at layer 6 of 12 "),
        "{}",
        r.stderr
    );
    let mut whole = a.clone();
    whole[6] = "whole.json";
    whole.push("--no-checkpoint");
    run_in(dir, &whole).assert_success();
    assert_eq!(
        table(&dir.join("scores.json")),
        table(&dir.join("whole.json"))
    );

    // the first layer file cannot be written: a clear error naming it and its bytes, and
    // nothing left behind
    std::fs::remove_file(dir.join("scores.json")).unwrap();
    std::fs::remove_file(dir.join("whole.json")).unwrap();
    let r = run_with_file_limit(dir, &a, 20 << 10);
    r.assert_code(2).assert_no_panic();
    let err = r.stderr.lines().last().unwrap();
    assert!(
        err.starts_with("llmdrop: ")
            && err.contains("/layer-1.ckpt: writing the checkpoint of 1 layers done ("),
        "{err}"
    );
    assert!(err.contains(" bytes) failed: File too large"), "{err}");
    assert!(names(dir).is_empty(), "left: {:?}", names(dir));
}

//! What the CLI test files share (each says `mod common;`): one way to run the real
//! `llmdrop` binary and check its exit code and messages, typed forms of the JSON it writes
//! ([`reports`]), and the paths the tests use.
//!
//! A test that needs the real default model reaches it through [`default_model`] and carries
//! `default_model` in its name: that name keeps it out of the fast group
//! (`scripts/test.sh --fast`, `.config/nextest.toml`).

// Each test binary compiles its own copy of this module and uses part of it.
#![allow(dead_code)]

pub mod reports;

use std::ffi::OsStr;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use llmdrop_testkit as testkit;

/// What a finished run left: its exit code (-1 when a signal ended it) and its output.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// `llmdrop ARGS`, ready to be run (see [`Llmdrop::run`]) after optional settings.
pub struct Llmdrop {
    cmd: Command,
    limit: Option<Duration>,
}

/// The real binary with `args`, `RUST_BACKTRACE=0` (a panic shows as one line) and no stdin.
/// For tests that drive the process themselves (signals, a pipe closed early); the others
/// use [`llmdrop`], [`run`] or [`run_in`].
pub fn command<S: AsRef<OsStr>>(args: &[S]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_llmdrop"));
    cmd.args(args)
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null());
    cmd
}

/// `llmdrop ARGS` in the test's working directory, no time limit.
pub fn llmdrop<S: AsRef<OsStr>>(args: &[S]) -> Llmdrop {
    Llmdrop {
        cmd: command(args),
        limit: None,
    }
}

/// Runs `llmdrop ARGS` in the test's working directory.
pub fn run<S: AsRef<OsStr>>(args: &[S]) -> Run {
    llmdrop(args).run()
}

/// Runs `llmdrop ARGS` in `dir` (relative output paths land there).
pub fn run_in<S: AsRef<OsStr>>(dir: &Path, args: &[S]) -> Run {
    llmdrop(args).cwd(dir).run()
}

impl Llmdrop {
    /// One more argument (a path that is not UTF-8, say).
    pub fn arg(mut self, a: impl AsRef<OsStr>) -> Self {
        self.cmd.arg(a);
        self
    }

    /// Runs in `dir`.
    pub fn cwd(mut self, dir: &Path) -> Self {
        self.cmd.current_dir(dir);
        self
    }

    /// Sets an environment variable for the run.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.cmd.env(key, value);
        self
    }

    /// Leaves an environment variable of this process out of the run's.
    pub fn env_remove(mut self, key: &str) -> Self {
        self.cmd.env_remove(key);
        self
    }

    /// Fails the test (and kills the process) when the run takes more than `secs` seconds:
    /// a hang fails instead of blocking the suite.
    pub fn within(mut self, secs: u64) -> Self {
        self.limit = Some(Duration::from_secs(secs));
        self
    }

    /// Runs to the end and collects the exit code and both outputs.
    #[track_caller]
    pub fn run(mut self) -> Run {
        let shown = format!("{:?}", self.cmd);
        let mut child = self
            .cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {shown}: {e}"));
        // both pipes drained on their own threads: a full pipe never stalls the child
        let stdout = drain(child.stdout.take().unwrap());
        let stderr = drain(child.stderr.take().unwrap());
        let status = match self.limit {
            None => child.wait().unwrap(),
            Some(limit) => match wait_within(&mut child, limit) {
                Some(status) => status,
                None => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let err = stderr.join().unwrap();
                    panic!(
                        "{shown} still runs after {} s; stderr: {}",
                        limit.as_secs(),
                        String::from_utf8_lossy(&err)
                    );
                }
            },
        };
        let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
        Run {
            code: status.code().unwrap_or(-1),
            stdout: text(stdout.join().unwrap()),
            stderr: text(stderr.join().unwrap()),
        }
    }
}

fn drain(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        r.read_to_end(&mut buf).unwrap();
        buf
    })
}

fn wait_within(child: &mut std::process::Child, limit: Duration) -> Option<ExitStatus> {
    let t0 = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if t0.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Checks; each returns the run so that checks chain, and shows stderr when it fails.
impl Run {
    /// Exit code `code`.
    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "exit code; stderr: {}", self.stderr);
        self
    }

    /// Exit code 0.
    #[track_caller]
    pub fn assert_success(&self) -> &Self {
        self.assert_code(0)
    }

    /// No panic message on stderr.
    #[track_caller]
    pub fn assert_no_panic(&self) -> &Self {
        assert!(!self.stderr.contains("panicked"), "{}", self.stderr);
        self
    }

    /// stderr contains `s`.
    #[track_caller]
    pub fn assert_stderr_contains(&self, s: &str) -> &Self {
        assert!(
            self.stderr.contains(s),
            "stderr lacks {s:?}: {}",
            self.stderr
        );
        self
    }

    /// An error (exit 2) without a panic.
    #[track_caller]
    pub fn assert_error(&self) -> &Self {
        self.assert_code(2).assert_no_panic()
    }

    /// A clean error: exit 2, stderr starts with `llmdrop: `, no panic, and names every
    /// string in `must_contain`.
    #[track_caller]
    pub fn assert_clean_error(&self, must_contain: &[&str]) -> &Self {
        self.assert_code(2);
        assert!(self.stderr.starts_with("llmdrop: "), "{}", self.stderr);
        self.assert_no_panic();
        for s in must_contain {
            self.assert_stderr_contains(s);
        }
        self
    }

    /// stdout read as the JSON document `T` (a report of [`reports`]).
    #[track_caller]
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> T {
        reports::parse(&self.stdout)
    }
}

/// The real default model (SmolLM2-135M). Only tests named `*default_model*` may use it: the
/// fast group leaves them out by that name.
#[track_caller]
pub fn default_model() -> PathBuf {
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("main");
    assert!(
        test == "main" || test.contains("default_model"),
        "test `{test}` uses the default model: put `default_model` in its name \
         (.config/nextest.toml keeps such tests out of the fast group)"
    );
    testkit::default_model()
}

/// A real English document (the tiny models' tokenizer is byte-level: 1 token per byte).
pub fn text() -> PathBuf {
    testkit::english_text_dir().join("docs/user/rst/quickstart.txt")
}

/// `p` as `&str` (test paths are UTF-8).
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The names in `dir`, sorted.
pub fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// A copy of the tiny `arch` model (HF folder) in `dst`.
pub fn copy_tiny(arch: &str, dst: &Path) {
    testkit::copy_hf_dir_with(&testkit::tiny_dir(arch), dst, |_, _, d| Some(d)).unwrap();
}

/// A tmpfs mounted with `opts` on a fresh directory, unmounted when dropped (root can
/// mount here; CI runs as root).
pub struct Mount(tempfile::TempDir);

impl Mount {
    #[track_caller]
    pub fn new(opts: &str) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", opts, "tmpfs", s(tmp.path())])
            .status()
            .is_ok_and(|st| st.success());
        assert!(ok, "this test needs to mount a tmpfs (root)");
        Mount(tmp)
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

//! The flags every command takes (`--json`, `-q`, `--threads`), values checked by clap
//! before any work, and the exit codes `--help` states (issue 13, point 5).

mod common;

use common::reports::{GenerateReport, ScoreReport};
use common::{run, run_in, s};
use llmdrop_testkit as testkit;

#[test]
fn issue13_help_states_the_exit_codes() {
    let r = run(&["--help"]);
    r.assert_success();
    for want in [
        "Exit codes:",
        "0    success",
        "1    checked and failed",
        "2    error",
        "130",
        "--json",
        "--quiet",
        "--threads <N>",
    ] {
        assert!(
            r.stdout.contains(want),
            "--help lacks {want:?}:\n{}",
            r.stdout
        );
    }
}

#[test]
fn issue13_bad_dtype_is_a_usage_error_naming_the_valid_values() {
    let m = testkit::tiny_dir("llama");
    // a model that does not exist: the value is refused before anything is opened
    for model in [s(&m), "/nonexistent/model"] {
        run(&["generate", "--model", model, "-p", "hi", "--dtype", "f128"]).assert_clean_error(&[
            "invalid value 'f128' for '--dtype",
            "possible values: f32, bf16, f16, f64, bf16-mixed, q8_0, q4_k, q4_1, native",
        ]);
    }
    run(&["--threads", "0", "inspect", "--model", s(&m)]).assert_clean_error(&["'--threads"]);
    run(&[
        "export",
        "--model",
        s(&m),
        "--format",
        "gguf",
        "--quant",
        "q9",
        "--out",
        "x",
    ])
    .assert_clean_error(&["invalid value 'q9' for '--quant", "q4_k"]);
    run(&["sweep", "--model", s(&m), "--strategies", "attn,heads"])
        .assert_clean_error(&["invalid value 'heads' for '--strategies", "consecutive"]);
}

#[test]
fn issue13_threads_sets_the_pool_the_report_names() {
    let m = testkit::tiny_dir("llama");
    for threads in ["1", "2"] {
        let args = [
            "--threads",
            threads,
            "generate",
            "--model",
            s(&m),
            "-p",
            "hi",
        ];
        let r = run(&[
            &args[..],
            &["--max-tokens", "2", "--json", "--dtype", "q8_0"],
        ]
        .concat());
        r.assert_success();
        let g: GenerateReport = r.json();
        assert_eq!(g.threads.to_string(), threads);
        assert_eq!(g.dtype, "q8_0");
    }
}

#[test]
fn issue13_json_and_quiet_are_global() {
    let tmp = tempfile::tempdir().unwrap();
    let m = testkit::tiny_dir("llama");
    let data = common::text();
    let score = [
        "score",
        "--model",
        s(&m),
        "--data",
        s(&data),
        "--samples",
        "2",
        "--seq-len",
        "32",
    ];
    // without -q: the informational line; with it, nothing on stderr
    let r = run_in(tmp.path(), &score);
    r.assert_success()
        .assert_stderr_contains("scores written to");
    let r = run_in(tmp.path(), &[&["-q"][..], &score].concat());
    r.assert_success();
    assert_eq!(r.stderr, "", "-q leaves only errors on stderr");
    assert!(r.stdout.contains("block sim"), "{}", r.stdout);
    // --json before or after the command name: the same document
    let before: ScoreReport = run_in(tmp.path(), &[&["--json"][..], &score].concat()).json();
    let after: ScoreReport =
        run_in(tmp.path(), &[&score[..], &["--json", "--quiet"]].concat()).json();
    assert_eq!(before.table, after.table);
    // errors still print under -q
    run(&["-q", "ppl", "--model", s(&m), "--data", "/nonexistent.txt"])
        .assert_clean_error(&["nonexistent.txt"]);
    // bench: --json and --markdown conflict wherever --json stands
    for args in [
        ["--json", "bench", "--markdown"],
        ["bench", "--markdown", "--json"],
    ] {
        run(&args)
            .assert_code(2)
            .assert_stderr_contains("--markdown");
    }
}

//! Bad input gets a clear error naming the file (and tensor), exit code 2, never a panic.

use std::path::Path;
use std::process::Command;

use llmdrop::testkit::{self, copy_hf_dir_with};

struct Run {
    code: i32,
    stderr: String,
}

fn llmdrop(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_llmdrop"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `inspect`-free loading (generate one token) on `model` and expects a clean error.
fn expect_error(model: &Path, must_contain: &[&str]) {
    let m = model.to_str().unwrap();
    let r = llmdrop(&[
        "generate",
        "--model",
        m,
        "--prompt",
        "hi",
        "--max-tokens",
        "1",
    ]);
    assert_eq!(r.code, 2, "exit code; stderr: {}", r.stderr);
    assert!(r.stderr.starts_with("llmdrop: "), "{}", r.stderr);
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    for s in must_contain {
        assert!(r.stderr.contains(s), "stderr lacks {s:?}: {}", r.stderr);
    }
}

fn tiny_copy(arch: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    copy_hf_dir_with(&testkit::tiny_dir(arch), tmp.path(), |_, _, d| Some(d)).unwrap();
    tmp
}

fn edit_config(dir: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let p = dir.join("config.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(&p, serde_json::to_string(&v).unwrap()).unwrap();
}

#[test]
fn missing_model_file() {
    expect_error(
        Path::new("/nonexistent/model.gguf"),
        &["/nonexistent/model.gguf", "No such file"],
    );
}

#[test]
fn truncated_safetensors() {
    let tmp = tiny_copy("qwen2");
    let p = tmp.path().join("model.safetensors");
    let len = std::fs::metadata(&p).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
    f.set_len(len / 2).unwrap();
    expect_error(tmp.path(), &["model.safetensors", "truncated"]);
}

#[test]
fn truncated_gguf() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("model.gguf");
    std::fs::copy(testkit::tiny_dir("llama").join("model.gguf"), &p).unwrap();
    let len = std::fs::metadata(&p).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
    f.set_len(len - 1000).unwrap();
    // the header is intact: the error names the first tensor whose data is cut off
    expect_error(&p, &["model.gguf", "tensor `blk.2.", "bytes"]);
}

#[test]
fn gguf_header_cut_short() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("model.gguf");
    let bytes = std::fs::read(testkit::tiny_dir("llama").join("model.gguf")).unwrap();
    std::fs::write(&p, &bytes[..200]).unwrap();
    expect_error(&p, &["model.gguf", "invalid GGUF"]);
}

#[test]
fn wrong_tensor_shape() {
    let tmp = tempfile::tempdir().unwrap();
    copy_hf_dir_with(&testkit::tiny_dir("llama"), tmp.path(), |name, shape, d| {
        if name == "model.layers.1.self_attn.k_proj.weight" {
            *shape = vec![16, 64]; // 1 kv head instead of 2
            Some(d[..16 * 64].to_vec())
        } else {
            Some(d)
        }
    })
    .unwrap();
    expect_error(
        tmp.path(),
        &[
            "model.layers.1.self_attn.k_proj.weight",
            "[16, 64]",
            "[32, 64]",
        ],
    );
}

#[test]
fn unknown_architecture() {
    let tmp = tiny_copy("llama");
    edit_config(tmp.path(), |v| v["model_type"] = "gpt_neox".into());
    expect_error(
        tmp.path(),
        &["config.json", "unknown architecture `gpt_neox`", "llama"],
    );
}

#[test]
fn unknown_gguf_architecture() {
    use candle_core::quantized::gguf_file::{self, Value};
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("falcon.gguf");
    let mut f = std::fs::File::create(&p).unwrap();
    let arch = Value::String("falcon".into());
    gguf_file::write(&mut f, &[("general.architecture", &arch)], &[]).unwrap();
    drop(f);
    expect_error(&p, &["falcon.gguf", "unknown architecture `falcon`"]);
}

#[test]
fn config_disagrees_with_tensors() {
    let tmp = tiny_copy("mistral");
    edit_config(tmp.path(), |v| v["intermediate_size"] = 100.into());
    expect_error(
        tmp.path(),
        &["model.layers.0.mlp.gate_proj.weight", "[100, 64]"],
    );
    let tmp = tiny_copy("mistral");
    edit_config(tmp.path(), |v| v["num_hidden_layers"] = 4.into());
    expect_error(tmp.path(), &["model.layers.3.", "missing"]);
}

#[test]
fn malformed_config() {
    let tmp = tiny_copy("qwen3");
    std::fs::write(tmp.path().join("config.json"), "{ not json").unwrap();
    expect_error(tmp.path(), &["config.json", "not valid JSON"]);
}

#[test]
fn non_utf8_text() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("latin1.txt");
    std::fs::write(&data, b"caf\xe9 au lait").unwrap();
    let model = testkit::tiny_dir("llama");
    let r = llmdrop(&[
        "ppl",
        "--model",
        model.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("latin1.txt")
            && r.stderr.contains("UTF-8")
            && r.stderr.contains("offset 3"),
        "{}",
        r.stderr
    );
}

#[test]
fn drop_plan_out_of_range() {
    let model = testkit::tiny_dir("llama");
    let r = llmdrop(&[
        "generate",
        "--model",
        model.to_str().unwrap(),
        "--prompt",
        "x",
        "--drop-attn",
        "1,7",
    ]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("attention layer 7 does not exist"),
        "{}",
        r.stderr
    );
    let r = llmdrop(&[
        "generate",
        "--model",
        model.to_str().unwrap(),
        "--prompt",
        "x",
        "--drop-mlp",
        "a",
    ]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("--drop-mlp"), "{}", r.stderr);
}

/// Runs `args` with a time limit: a hang fails the test instead of blocking the suite.
fn llmdrop_within(args: &[&str], secs: u64) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_llmdrop"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t0.elapsed().as_secs() > secs {
            let _ = child.kill();
            panic!("llmdrop {args:?} still runs after {secs} s");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn expect_clean_error(r: &Run, must_contain: &str) {
    assert_eq!(r.code, 2, "exit code; stderr: {}", r.stderr);
    assert!(r.stderr.starts_with("llmdrop: "), "{}", r.stderr);
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    assert!(
        r.stderr.contains(must_contain),
        "stderr lacks {must_contain:?}: {}",
        r.stderr
    );
}

#[test]
fn issue12_huge_layer_range_is_refused_before_expansion() {
    let m = testkit::tiny_dir("llama");
    let r = llmdrop_within(
        &[
            "generate",
            "--model",
            m.to_str().unwrap(),
            "--prompt",
            "hi",
            "--drop-attn",
            "0-18446744073709551615",
        ],
        20,
    );
    expect_clean_error(&r, "beyond any model");
}

#[test]
fn issue12_pipes_and_devices_are_not_read_as_data_or_models() {
    let m = testkit::tiny_dir("llama");
    let r = llmdrop_within(
        &[
            "score",
            "--model",
            m.to_str().unwrap(),
            "--data",
            "/dev/zero",
            "--out",
            "/dev/null",
        ],
        20,
    );
    // (the output check comes first: /dev/null is not llmdrop's scores file)
    assert_eq!(r.code, 2, "{}", r.stderr);
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("s.json");
    let r = llmdrop_within(
        &[
            "score",
            "--model",
            m.to_str().unwrap(),
            "--data",
            "/dev/zero",
            "--out",
            out.to_str().unwrap(),
        ],
        20,
    );
    expect_clean_error(&r, "not a regular file");
    let fifo = tmp.path().join("model.gguf");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let r = llmdrop_within(
        &[
            "generate",
            "--model",
            fifo.to_str().unwrap(),
            "--prompt",
            "hi",
        ],
        20,
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("model.gguf"), "{}", r.stderr);
}

#[test]
fn issue12_bench_context_beyond_the_model_is_refused_up_front() {
    let m = testkit::tiny_dir("llama");
    let r = llmdrop_within(
        &[
            "bench",
            "--model",
            m.to_str().unwrap(),
            "--context",
            "100000000",
        ],
        20,
    );
    expect_clean_error(&r, "exceed the model's");
}

#[test]
fn issue12_control_characters_from_files_are_escaped() {
    use candle_core::quantized::gguf_file::{self, Value};
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("evil.gguf");
    let arch = Value::String("ll\x1b[2Jama\x07".into());
    let mut f = std::fs::File::create(&p).unwrap();
    gguf_file::write(&mut f, &[("general.architecture", &arch)], &[]).unwrap();
    drop(f);
    let r = llmdrop(&["inspect", "--model", p.to_str().unwrap()]);
    expect_clean_error_code(&r);
    assert!(
        !r.stderr.contains('\x1b') && !r.stderr.contains('\x07'),
        "{:?}",
        r.stderr
    );
    assert!(r.stderr.contains("ll\\u{1b}[2Jama\\u{7}"), "{}", r.stderr);
}

fn expect_clean_error_code(r: &Run) {
    assert_eq!(r.code, 2, "exit code; stderr: {}", r.stderr);
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
}

#[test]
fn issue12_broken_pipe_exits_quietly() {
    use std::io::BufRead;
    // the default model's logits are megabytes of JSON: the pipe closes long before the end
    let mut child = Command::new(env!("CARGO_BIN_EXE_llmdrop"))
        .args([
            "logits",
            "--prompt",
            "The quick brown fox jumps over the lazy dog",
        ])
        .arg("--model")
        .arg(testkit::default_model())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert_eq!(first.trim(), "{");
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.is_empty(), "{err}");
}

/// The tiny llama with `name`'s values all set to `v`.
fn tiny_with_values(dst: &Path, name: &str, v: f32) {
    copy_hf_dir_with(&testkit::tiny_dir("llama"), dst, |n, _, d| {
        Some(if n == name { vec![v; d.len()] } else { d })
    })
    .unwrap();
}

#[test]
fn issue12_non_finite_weights_are_named_at_load() {
    let tmp = tempfile::tempdir().unwrap();
    tiny_with_values(
        tmp.path(),
        "model.layers.1.self_attn.k_proj.weight",
        f32::NAN,
    );
    expect_error(
        tmp.path(),
        &[
            "model.safetensors",
            "model.layers.1.self_attn.k_proj.weight",
            "not finite",
        ],
    );
}

#[test]
fn issue12_non_finite_perplexity_exits_1() {
    // finite weights whose products overflow f32: the run completes, the result is NaN
    let tmp = tempfile::tempdir().unwrap();
    tiny_with_values(tmp.path(), "model.layers.0.mlp.down_proj.weight", 3e38);
    let text = testkit::english_text_dir().join("docs/user/rst/quickstart.txt");
    let r = llmdrop(&[
        "ppl",
        "--model",
        tmp.path().to_str().unwrap(),
        "--data",
        text.to_str().unwrap(),
        "--seq-len",
        "32",
        "--max-windows",
        "2",
    ]);
    assert_eq!(r.code, 1, "checked and failed; stderr: {}", r.stderr);
    assert!(r.stderr.contains("perplexity is NaN"), "{}", r.stderr);
}

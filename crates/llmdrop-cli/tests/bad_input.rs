//! Bad input gets a clear error naming the file (and tensor), exit code 2, never a panic.

mod common;

use std::path::Path;
use std::process::Command;

use common::{run, s};
use llmdrop_testkit::{self as testkit, copy_hf_dir_with};

/// Runs `inspect`-free loading (generate one token) on `model` and expects a clean error.
#[track_caller]
fn expect_error(model: &Path, must_contain: &[&str]) {
    run(&[
        "generate",
        "--model",
        s(model),
        "--prompt",
        "hi",
        "--max-tokens",
        "1",
    ])
    .assert_clean_error(must_contain);
}

fn tiny_copy(arch: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    common::copy_tiny(arch, tmp.path());
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
    run(&["ppl", "--model", s(&model), "--data", s(&data)])
        .assert_code(2)
        .assert_stderr_contains("latin1.txt")
        .assert_stderr_contains("UTF-8")
        .assert_stderr_contains("offset 3");
}

#[test]
fn drop_plan_out_of_range() {
    let model = testkit::tiny_dir("llama");
    let generate = ["generate", "--model", s(&model), "--prompt", "x"];
    run(&[&generate[..], &["--drop-attn", "1,7"]].concat())
        .assert_code(2)
        .assert_stderr_contains("attention layer 7 does not exist");
    run(&[&generate[..], &["--drop-mlp", "a"]].concat())
        .assert_code(2)
        .assert_stderr_contains("--drop-mlp");
}

#[test]
fn issue12_huge_layer_range_is_refused_before_expansion() {
    let m = testkit::tiny_dir("llama");
    common::llmdrop(&[
        "generate",
        "--model",
        s(&m),
        "--prompt",
        "hi",
        "--drop-attn",
        "0-18446744073709551615",
    ])
    .within(20)
    .run()
    .assert_clean_error(&["beyond any model"]);
}

#[test]
fn issue12_pipes_and_devices_are_not_read_as_data_or_models() {
    let m = testkit::tiny_dir("llama");
    let score = ["score", "--model", s(&m), "--data", "/dev/zero", "--out"];
    // (the output check comes first: /dev/null is not llmdrop's scores file)
    common::llmdrop(&[&score[..], &["/dev/null"]].concat())
        .within(20)
        .run()
        .assert_code(2);
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("s.json");
    common::llmdrop(&[&score[..], &[s(&out)]].concat())
        .within(20)
        .run()
        .assert_clean_error(&["not a regular file"]);
    let fifo = tmp.path().join("model.gguf");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    common::llmdrop(&["generate", "--model", s(&fifo), "--prompt", "hi"])
        .within(20)
        .run()
        .assert_code(2)
        .assert_stderr_contains("model.gguf");
}

#[test]
fn issue12_bench_context_beyond_the_model_is_refused_up_front() {
    let m = testkit::tiny_dir("llama");
    common::llmdrop(&["bench", "--model", s(&m), "--context", "100000000"])
        .within(20)
        .run()
        .assert_clean_error(&["exceed the model's"]);
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
    let r = run(&["inspect", "--model", s(&p)]);
    r.assert_error();
    assert!(
        !r.stderr.contains('\x1b') && !r.stderr.contains('\x07'),
        "{:?}",
        r.stderr
    );
    r.assert_stderr_contains("ll\\u{1b}[2Jama\\u{7}");
}

#[test]
fn issue12_default_model_broken_pipe_exits_quietly() {
    use std::io::BufRead;
    // the default model's logits are megabytes of JSON: the pipe closes long before the end
    let mut child = common::command(&[
        "logits",
        "--prompt",
        "The quick brown fox jumps over the lazy dog",
    ])
    .arg("--model")
    .arg(common::default_model())
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
    let text = common::text();
    let r = run(&[
        "ppl",
        "--model",
        s(tmp.path()),
        "--data",
        s(&text),
        "--seq-len",
        "32",
        "--max-windows",
        "2",
    ]);
    assert_eq!(r.code, 1, "checked and failed; stderr: {}", r.stderr);
    r.assert_stderr_contains("perplexity is NaN");
}

/// Issue 16: Gemma 3's own bad input — a layer-kind list that disagrees with the layer
/// count or names an unknown kind, soft-capping (Gemma 2), a missing post-norm.
#[test]
fn issue16_gemma3_bad_input_exits_2() {
    let tmp = tiny_copy("gemma3");
    edit_config(tmp.path(), |v| {
        v["layer_types"]
            .as_array_mut()
            .unwrap()
            .push("full_attention".into());
    });
    expect_error(
        tmp.path(),
        &[
            "config.json",
            "`layer_types` has 5 entries for num_hidden_layers 4",
        ],
    );
    let tmp = tiny_copy("gemma3");
    edit_config(tmp.path(), |v| v["layer_types"][0] = "local".into());
    expect_error(tmp.path(), &["`layer_types[0]`", "\"local\""]);
    let tmp = tiny_copy("gemma3");
    edit_config(tmp.path(), |v| v["final_logit_softcapping"] = 30.0.into());
    expect_error(tmp.path(), &["final_logit_softcapping", "not supported"]);
    let tmp = tempfile::tempdir().unwrap();
    copy_hf_dir_with(&testkit::tiny_dir("gemma3"), tmp.path(), |name, _, d| {
        (name != "model.layers.1.post_attention_layernorm.weight").then_some(d)
    })
    .unwrap();
    expect_error(
        tmp.path(),
        &["model.layers.1.post_attention_layernorm.weight", "missing"],
    );
}

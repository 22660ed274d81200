//! Seeded mutations of a real HF directory through the library's open + load path: every
//! case must end in Ok or a library error — no panic, no abort, no memory growth past
//! 256 MiB. The cases run in a child process under a data-segment limit (`fuzz_common`).
//!
//! Mutations: config.json values set to numbers, strings, nulls, lists and objects of every
//! kind; config.json bytes changed or cut; the safetensors header's JSON bytes changed, its
//! length prefix lied about, its tensors' shapes, dtypes and offsets edited, the file cut.
//! nemotron-nas `block_configs` with odd head groups and FFN sizes.
//! `max_position_embeddings` takes huge values too (RoPE tables grow with the positions run).
//! The known crashes and special files: hf_refusals.rs.

mod fuzz_common;

use std::path::{Path, PathBuf};

use fuzz_common::scaled;
use llmdrop_testkit as testkit;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

const CONFIG_FLIP_CASES: usize = 30;
const CONFIG_CUT_CASES: usize = 10;
const HEADER_FLIP_CASES: usize = 60;
const HEADER_LEN_CASES: usize = 10;
const HEADER_EDIT_CASES: usize = 40;
const CUT_CASES: usize = 15;

const KEYS: &[&str] = &[
    "model_type",
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "rms_norm_eps",
    "rope_parameters",
    "rope_scaling",
    "tie_word_embeddings",
    "hidden_act",
    "drop_attn_list",
    "drop_mlp_list",
    "bos_token_id",
    "eos_token_id",
    "attention_bias",
    "max_position_embeddings",
];

/// `block_configs` entries of a nemotron-nas config (`model_type` set to it), one per case.
fn nemotron_blocks() -> Vec<Value> {
    let attn = |g: Value| json!({"no_op": false, "n_heads_in_group": g});
    let ffn = |m: Value| json!({"no_op": false, "ffn_mult": m});
    let mut v = vec![];
    for g in [
        json!(0),
        json!(2),
        json!(3),
        json!(1u64 << 40),
        json!("2"),
        Value::Null,
    ] {
        v.push(json!({"attention": attn(g), "ffn": ffn(json!(3.75))}));
    }
    for m in [
        json!(0),
        json!(-1.0),
        json!(1e-300),
        json!(1e300),
        json!(3.75),
        json!("x"),
    ] {
        v.push(json!({"attention": attn(json!(2)), "ffn": ffn(m)}));
    }
    v.push(json!({"attention": {"no_op": true}, "ffn": {"no_op": true}}));
    v.push(json!({"attention": {"replace_with_linear": true}, "ffn": {"intermediate_size": 160}}));
    v.push(json!({"attention": attn(json!(2)), "ffn": {"intermediate_size": 1u64 << 40}}));
    v.push(json!([]));
    v
}

fn values() -> Vec<Value> {
    vec![
        json!(0),
        json!(1),
        json!(-1),
        json!(3),
        json!(1u64 << 31),
        json!(1u64 << 40),
        json!(1e30),
        json!(1.5),
        json!("x"),
        Value::Null,
        json!([]),
        json!([0, 2]),
        json!({}),
        json!(true),
        json!([1e30]),
        json!({"rope_type": "llama3", "factor": 0, "low_freq_factor": 4.0,
               "high_freq_factor": 1.0, "original_max_position_embeddings": 0}),
    ]
}

struct Base {
    config: Value,
    config_bytes: Vec<u8>,
    st: Vec<u8>,
    /// Length of the safetensors JSON header.
    header_len: usize,
}

fn base() -> Base {
    let dir = testkit::tiny_dir("llama");
    let config_bytes = std::fs::read(dir.join("config.json")).expect("config.json");
    let st = std::fs::read(dir.join("model.safetensors")).expect("model.safetensors");
    let mut n = [0u8; 8];
    n.copy_from_slice(&st[..8]);
    Base {
        config: serde_json::from_slice(&config_bytes).expect("config JSON"),
        config_bytes,
        header_len: u64::from_le_bytes(n) as usize,
        st,
    }
}

fn case_count() -> usize {
    KEYS.len() * values().len()
        + nemotron_blocks().len()
        + scaled(CONFIG_FLIP_CASES)
        + scaled(CONFIG_CUT_CASES)
        + scaled(HEADER_FLIP_CASES)
        + scaled(HEADER_LEN_CASES)
        + scaled(HEADER_EDIT_CASES)
        + scaled(CUT_CASES)
}

fn flip(bytes: &mut [u8], range: std::ops::Range<usize>, rng: &mut StdRng) -> Vec<usize> {
    let mut at = vec![];
    for _ in 0..rng.random_range(1..=4) {
        let p = rng.random_range(range.clone());
        bytes[p] = if rng.random_bool(0.5) {
            bytes[p] ^ (1 << rng.random_range(0..8))
        } else {
            rng.random()
        };
        at.push(p);
    }
    at
}

/// The safetensors file with its header replaced by `header` (data unchanged).
fn with_header(b: &Base, header: &Value) -> Vec<u8> {
    let h = header.to_string().into_bytes();
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend(h);
    out.extend(&b.st[8 + b.header_len..]);
    out
}

/// Case `i`: its name, config.json and model.safetensors.
fn make_case(b: &Base, i: usize) -> (String, Vec<u8>, Vec<u8>) {
    let mut rng = StdRng::seed_from_u64(0x5afe_7e45 ^ i as u64);
    let nv = values().len();
    let (mut cfg, mut st) = (b.config_bytes.clone(), b.st.clone());
    let mut j = i;
    if j < KEYS.len() * nv {
        let (key, v) = (KEYS[j / nv], values().swap_remove(j % nv));
        let mut c = b.config.clone();
        c[key] = v.clone();
        return (
            format!("config {key} = {v}"),
            c.to_string().into_bytes(),
            st,
        );
    }
    j -= KEYS.len() * nv;
    if j < nemotron_blocks().len() {
        let block = nemotron_blocks().swap_remove(j);
        let mut c = b.config.clone();
        c["model_type"] = json!("nemotron-nas");
        c["block_configs"] = json!([block.clone(), block.clone(), block.clone()]);
        return (
            format!("nemotron-nas blocks {block}"),
            c.to_string().into_bytes(),
            st,
        );
    }
    j -= nemotron_blocks().len();
    if j < scaled(CONFIG_FLIP_CASES) {
        let at = flip(&mut cfg, 0..b.config_bytes.len(), &mut rng);
        return (format!("config.json bytes changed at {at:?}"), cfg, st);
    }
    j -= scaled(CONFIG_FLIP_CASES);
    if j < scaled(CONFIG_CUT_CASES) {
        let cut = rng.random_range(0..cfg.len());
        cfg.truncate(cut);
        return (format!("config.json cut at {cut}"), cfg, st);
    }
    j -= scaled(CONFIG_CUT_CASES);
    if j < scaled(HEADER_FLIP_CASES) {
        let at = flip(&mut st, 8..8 + b.header_len, &mut rng);
        return (
            format!("safetensors header bytes changed at {at:?}"),
            cfg,
            st,
        );
    }
    j -= scaled(HEADER_FLIP_CASES);
    if j < scaled(HEADER_LEN_CASES) {
        let lens = [
            0,
            1,
            b.header_len as u64 - 1,
            b.header_len as u64 + 1,
            b.st.len() as u64,
            100_000_000,
            1 << 40,
            u64::MAX,
        ];
        let n = lens[rng.random_range(0..lens.len())];
        st[..8].copy_from_slice(&n.to_le_bytes());
        return (format!("safetensors header length {n}"), cfg, st);
    }
    j -= scaled(HEADER_LEN_CASES);
    if j < scaled(HEADER_EDIT_CASES) {
        let mut h: Value = serde_json::from_slice(&b.st[8..8 + b.header_len]).expect("header");
        let names: Vec<String> = h
            .as_object()
            .expect("object")
            .keys()
            .filter(|k| *k != "__metadata__")
            .cloned()
            .collect();
        let name = names[rng.random_range(0..names.len())].clone();
        let what = match rng.random_range(0..4) {
            0 => {
                let shapes = [
                    json!([]),
                    json!([0]),
                    json!([0, 64]),
                    json!([64, 0]),
                    json!([1u64 << 32, 1u64 << 32]),
                    json!([64, 64, 1]),
                    json!([-1, 64]),
                    json!(["64"]),
                ];
                h[&name]["shape"] = shapes[rng.random_range(0..shapes.len())].clone();
                format!("shape {}", h[&name]["shape"])
            }
            1 => {
                let dtypes = ["F16", "BF16", "I64", "U8", "F64", "BOOL", "F8_E4M3", "XX"];
                h[&name]["dtype"] = json!(dtypes[rng.random_range(0..dtypes.len())]);
                format!("dtype {}", h[&name]["dtype"])
            }
            2 => {
                let o = &h[&name]["data_offsets"];
                let (a, e) = (o[0].as_u64().unwrap_or(0), o[1].as_u64().unwrap_or(0));
                let offs = [
                    json!([e, a]),
                    json!([a, e + 4]),
                    json!([a + 4, e + 4]),
                    json!([0, u64::MAX]),
                    json!([a]),
                ];
                h[&name]["data_offsets"] = offs[rng.random_range(0..offs.len())].clone();
                format!("data_offsets {}", h[&name]["data_offsets"])
            }
            _ => {
                let v = h[&name].take();
                h.as_object_mut().expect("object").remove(&name);
                h["model.layers.99999999.mlp.up_proj.weight"] = v;
                "renamed to layer 99999999".into()
            }
        };
        return (format!("tensor {name}: {what}"), cfg, with_header(b, &h));
    }
    let cut = if rng.random_bool(0.5) {
        rng.random_range(0..8 + b.header_len)
    } else {
        rng.random_range(0..st.len())
    };
    st.truncate(cut);
    (format!("model.safetensors cut at {cut}"), cfg, st)
}

/// A copy of the tiny llama directory at `dir` with the given config and weights.
fn write_case(dir: &Path, cfg: &[u8], st: &[u8]) -> PathBuf {
    let tok = testkit::tiny_dir("llama").join("tokenizer.json");
    if !dir.join("tokenizer.json").exists() {
        std::fs::copy(tok, dir.join("tokenizer.json")).expect("copy tokenizer.json");
    }
    std::fs::write(dir.join("config.json"), cfg).expect("write config");
    std::fs::write(dir.join("model.safetensors"), st).expect("write weights");
    dir.into()
}

#[test]
#[ignore = "run by fuzz_hf_mutations in a child process under a memory limit"]
fn fuzz_hf_child() {
    let b = base();
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path();
    fuzz_common::child_main(case_count(), |i| {
        let (name, cfg, st) = make_case(&b, i);
        (name, move || {
            fuzz_common::open_and_run(&write_case(dir, &cfg, &st))
        })
    });
}

#[test]
fn fuzz_hf_mutations() {
    let n = case_count();
    let out = fuzz_common::run_in_children("fuzz_hf_child", n);
    fuzz_common::assert_clean("HF mutations", &out, n);
    assert!(
        out.err > n / 2,
        "only {} of {n} cases were refused",
        out.err
    );
    assert!(out.ok > 10, "only {} of {n} cases loaded", out.ok);
}

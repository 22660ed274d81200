//! Seeded mutations of a real GGUF file through the library's open + load path: every case
//! must end in Ok or a library error — no panic, no abort, no memory growth past 256 MiB.
//! The cases run in a child process under a data-segment limit (see `fuzz_common`).
//!
//! Mutations: the numbers of the header (counts, lengths, value and ggml types, dims,
//! offsets) set to boundary values; metadata values replaced by values of every kind and
//! type; tensor dims, types, offsets and names edited; random bytes of the header changed;
//! the file cut short. `context_length` takes huge values too: RoPE tables grow with the
//! positions run, not with the configured maximum.

mod fuzz_common;

use std::path::{Path, PathBuf};

use fuzz_common::gguf_doc::{self, Doc, Field, Val};
use fuzz_common::scaled;
use llmdrop_testkit as testkit;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const FIELD_CASES: usize = 120;
const TENSOR_CASES: usize = 60;
const FLIP_CASES: usize = 80;
const CUT_CASES: usize = 20;

fn fixture() -> PathBuf {
    testkit::tiny_dir("llama").join("model.gguf")
}

/// Keys whose values are replaced by every value of [`values`].
const KEYS: &[&str] = &[
    "general.architecture",
    "general.alignment",
    "llama.block_count",
    "llama.embedding_length",
    "llama.feed_forward_length",
    "llama.attention.head_count",
    "llama.attention.head_count_kv",
    "llama.attention.key_length",
    "llama.rope.freq_base",
    "llama.attention.layer_norm_rms_epsilon",
    "llama.vocab_size",
    "tokenizer.ggml.model",
    "tokenizer.ggml.tokens",
    "tokenizer.ggml.token_type",
    "tokenizer.ggml.merges",
    "tokenizer.ggml.bos_token_id",
    "llmdrop.drop_mlp_list",
    "llmdrop.attention.head_count",
];

fn values() -> Vec<(u32, Val)> {
    vec![
        Val::u32(0),
        Val::u32(1),
        Val::u32(3),
        Val::u32(u32::MAX),
        Val::u64(1 << 40),
        Val::u64(100_000_000),
        Val::i32(-1),
        Val::f32(f32::NAN),
        Val::f32(1e30),
        Val::str("llama"),
        Val::bool(1),
        Val::u32s(&[0, 0, 0]),
        Val::u32s(&[0, 64, 7]),
        Val::u32s(&[]),
        Val::strs(&["a", "b", "a b"]),
        // an array of arrays
        (
            9,
            Val::Array(9, vec![Val::u32s(&[1, 2]).1, Val::u32s(&[]).1]),
        ),
    ]
}

/// Numbers written over header fields: boundaries, overflows, lies about sizes.
fn interesting(orig: u64, file_len: u64, rng: &mut StdRng) -> u64 {
    let pool = [
        0,
        1,
        2,
        3,
        4,
        5,
        7,
        12,
        13,
        31,
        32,
        255,
        256,
        65535,
        (1 << 31) - 1,
        1 << 31,
        u32::MAX as u64,
        1 << 32,
        1 << 40,
        100_000_000,
        u64::MAX,
        u64::MAX / 2,
        orig.wrapping_add(1),
        orig.wrapping_sub(1),
        orig.wrapping_mul(2),
        file_len,
        file_len - 1,
        rng.random(),
    ];
    pool[rng.random_range(0..pool.len())]
}

struct Base {
    bytes: Vec<u8>,
    doc: Doc,
    fields: Vec<Field>,
}

fn base() -> Base {
    let bytes = std::fs::read(fixture()).expect("tiny llama GGUF fixture");
    let (doc, fields) = gguf_doc::parse(&bytes);
    assert_eq!(
        doc.to_bytes(),
        bytes,
        "the GGUF editor writes the fixture back unchanged"
    );
    Base { bytes, doc, fields }
}

fn case_count() -> usize {
    KEYS.len() * values().len()
        + scaled(FIELD_CASES)
        + scaled(TENSOR_CASES)
        + scaled(FLIP_CASES)
        + scaled(CUT_CASES)
}

/// Case `i`: its name and the file's bytes.
fn make_case(b: &Base, i: usize) -> (String, Vec<u8>) {
    let nv = values().len();
    let mut rng = StdRng::seed_from_u64(0x6767_7566 ^ i as u64);
    let mut j = i;
    if j < KEYS.len() * nv {
        let (key, v) = (KEYS[j / nv], values().swap_remove(j % nv));
        let name = format!("value {key} = {:?}", v);
        let mut d = b.doc.clone();
        if key == "llmdrop.attention.head_count" {
            d.set("general.architecture", Val::str("deci"));
        }
        d.set(key, v);
        return (name, d.to_bytes());
    }
    j -= KEYS.len() * nv;
    if j < scaled(FIELD_CASES) {
        let f = &b.fields[rng.random_range(0..b.fields.len())];
        let mut bytes = b.bytes.clone();
        let mut cur = [0u8; 8];
        cur[..f.size].copy_from_slice(&bytes[f.pos..f.pos + f.size]);
        let v = interesting(u64::from_le_bytes(cur), bytes.len() as u64, &mut rng);
        bytes[f.pos..f.pos + f.size].copy_from_slice(&v.to_le_bytes()[..f.size]);
        return (format!("field {} = {v}", f.what), bytes);
    }
    j -= scaled(FIELD_CASES);
    if j < scaled(TENSOR_CASES) {
        let mut d = b.doc.clone();
        let k = rng.random_range(0..d.tensors.len());
        let other = d.tensors[rng.random_range(0..d.tensors.len())].name.clone();
        let t = &mut d.tensors[k];
        let tname = String::from_utf8_lossy(&t.name).into_owned();
        let what = match rng.random_range(0..5) {
            0 => {
                let dims: &[&[u64]] = &[
                    &[],
                    &[0],
                    &[0, 64],
                    &[64, 0],
                    &[64, 256, 1, 1, 1],
                    &[1 << 32, 1 << 32],
                    &[u64::MAX, 2],
                    &[63, 256],
                    &[256, 64],
                    &[64 * 256],
                    &[64, 1],
                    &[32, 2, 256],
                ];
                t.dims = dims[rng.random_range(0..dims.len())].to_vec();
                format!("dims {:?}", t.dims)
            }
            1 => {
                let tys = [0, 1, 2, 3, 4, 5, 8, 9, 10, 12, 14, 15, 30, 31, 99];
                t.ty = tys[rng.random_range(0..tys.len())];
                format!("ggml type {}", t.ty)
            }
            2 => {
                let offs = [1, 4, 31, b.bytes.len() as u64, u64::MAX, 1 << 40];
                t.offset = t.offset.wrapping_add(offs[rng.random_range(0..offs.len())]);
                format!("offset {}", t.offset)
            }
            3 => {
                t.name = other;
                format!("renamed to {}", String::from_utf8_lossy(&t.name))
            }
            _ => {
                let names = [
                    "blk.100000000.ffn_norm.weight",
                    "blk.3.attn_norm.weight",
                    "output.weight",
                    "rope_freqs.weight",
                    "",
                ];
                t.name = names[rng.random_range(0..names.len())].as_bytes().to_vec();
                format!("renamed to {}", String::from_utf8_lossy(&t.name))
            }
        };
        return (format!("tensor {tname}: {what}"), d.to_bytes());
    }
    j -= scaled(TENSOR_CASES);
    if j < scaled(FLIP_CASES) {
        let mut bytes = b.bytes.clone();
        let header = b.doc.header_len();
        // half the cases in the tensor infos: the token strings fill most of the header
        let infos = b
            .fields
            .iter()
            .find(|f| f.what == "tensor name length")
            .map_or(0, |f| f.pos);
        let from = if rng.random_bool(0.5) { infos } else { 0 };
        let n = rng.random_range(1..=4);
        let mut at = vec![];
        for _ in 0..n {
            let p = rng.random_range(from..header);
            bytes[p] = if rng.random_bool(0.5) {
                bytes[p] ^ (1 << rng.random_range(0..8))
            } else {
                rng.random()
            };
            at.push(p);
        }
        return (format!("header bytes changed at {at:?}"), bytes);
    }
    let mut bytes = b.bytes.clone();
    let cut = if rng.random_bool(0.5) {
        rng.random_range(0..b.doc.header_len())
    } else {
        rng.random_range(0..bytes.len())
    };
    bytes.truncate(cut);
    (format!("cut at {cut}"), bytes)
}

fn write_case(dir: &Path, bytes: &[u8]) -> PathBuf {
    let p = dir.join("case.gguf");
    std::fs::write(&p, bytes).expect("write case");
    p
}

#[test]
#[ignore = "run by fuzz_gguf_mutations in a child process under a memory limit"]
fn fuzz_gguf_child() {
    let b = base();
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path();
    fuzz_common::child_main(case_count(), |i| {
        let (name, bytes) = make_case(&b, i);
        (name, move || {
            fuzz_common::open_and_run(&write_case(dir, &bytes))
        })
    });
}

#[test]
fn fuzz_gguf_mutations() {
    let n = case_count();
    let out = fuzz_common::run_in_children("fuzz_gguf_child", n);
    fuzz_common::assert_clean("GGUF mutations", &out, n);
    // the mutations reach the checks: most are refused, some still load
    assert!(
        out.err > n / 2,
        "only {} of {n} cases were refused",
        out.err
    );
    assert!(out.ok > 10, "only {} of {n} cases loaded", out.ok);
}

/// Opens the fixture edited by `edit` and returns the error it is refused with.
fn refused(edit: impl FnOnce(&mut Doc)) -> String {
    let mut d = base().doc;
    edit(&mut d);
    refused_bytes(&d.to_bytes())
}

fn refused_bytes(bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    match fuzz_common::open_and_run(&write_case(dir.path(), bytes)) {
        Ok(()) => panic!("the edited file loaded"),
        Err(e) => e,
    }
}

#[test]
fn unedited_fixture_loads() {
    let b = base();
    let dir = tempfile::tempdir().unwrap();
    fuzz_common::open_and_run(&write_case(dir.path(), &b.bytes)).unwrap();
}

#[test]
fn alignment_zero_is_refused_not_a_division_by_zero() {
    let e = refused(|d| d.set("general.alignment", Val::u32(0)));
    assert!(
        e.contains("general.alignment") && e.contains("power of two"),
        "{e}"
    );
    let e = refused(|d| d.set("general.alignment", Val::u32(48)));
    assert!(e.contains("power of two"), "{e}");
    let e = refused(|d| d.set("general.alignment", Val::f32(32.0)));
    assert!(e.contains("general.alignment"), "{e}");
}

#[test]
fn empty_embedding_dims_are_refused_not_indexed() {
    let e = refused(|d| {
        d.remove("llama.vocab_size");
        d.remove("tokenizer.ggml.tokens");
        d.tensor("token_embd.weight").dims = vec![];
    });
    assert!(
        e.contains("token_embd.weight") && e.contains("0 dimensions"),
        "{e}"
    );
}

#[test]
fn absurd_block_count_is_refused_before_allocating() {
    for n in [100_000_000u64, 1 << 31, 1 << 40] {
        let e = refused(|d| d.set("llama.block_count", Val::u64(n)));
        assert!(
            e.contains("num_hidden_layers") || e.contains("block_count"),
            "{e}"
        );
    }
    // within the bounds, but more layers than the file holds
    let e = refused(|d| d.set("llama.block_count", Val::u32(4)));
    assert!(
        e.contains("llama.block_count` = 4") && e.contains("`blk.3.*`"),
        "{e}"
    );
}

#[test]
fn tensor_data_outside_the_file_is_refused() {
    let e = refused(|d| d.tensor("output_norm.weight").offset += 4096);
    assert!(
        e.contains("output_norm.weight") && e.contains("beyond the end"),
        "{e}"
    );
    let e = refused(|d| d.tensor("blk.0.attn_q.weight").dims = vec![1 << 32, 1 << 32]);
    assert!(
        e.contains("blk.0.attn_q.weight") && e.contains("overflows"),
        "{e}"
    );
    // Q4_K blocks are 256 wide: rows of 64 do not split into them
    let e = refused(|d| d.tensor("blk.0.attn_q.weight").ty = 12);
    assert!(
        e.contains("blk.0.attn_q.weight") && e.contains("block size 256"),
        "{e}"
    );
    let e = refused(|d| d.tensor("blk.0.attn_q.weight").dims = vec![48, 64]);
    assert!(e.contains("q_proj.weight` has shape [64, 48]"), "{e}");
}

#[test]
fn metadata_arrays_that_cost_more_than_the_header_are_refused() {
    // 2 000 000 one-byte elements: 2 MB on disk, 64 MB as candle values
    let e = refused(|d| {
        d.set(
            "general.padding",
            (9, Val::Array(0, vec![Val::u8(1).1; 2_000_000])),
        )
    });
    assert!(e.contains("too many small metadata values"), "{e}");
    // the count of the token array claims more strings than bytes are left
    let b = base();
    let f = b
        .fields
        .iter()
        .find(|f| f.what == "element count of tokenizer.ggml.tokens")
        .unwrap();
    let mut bytes = b.bytes.clone();
    bytes[f.pos..f.pos + 8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    let e = refused_bytes(&bytes);
    assert!(
        e.contains("tokenizer.ggml.tokens") && e.contains("claims"),
        "{e}"
    );
}

//! Layer-streamed perplexity gives the in-memory perplexity bit for bit (total NLL,
//! perplexity, tokens scored): tiny models of several families (tied and untied heads,
//! Gemma's BOS-led windows), f32, half precision and quantized, from HF folders and GGUF
//! (Q4_1 blocks like the default model), all windows at once and in groups, the output
//! head whole and in vocabulary slices (panel-sized, odd, one row), every token or the
//! second half; the pipeline streams when asked or when only that fits, cutting windows
//! into groups and then the head into slices, and refuses a budget below what streaming
//! needs with the bytes; and the default model, both ways, its head whole and sliced.

use candle_core::Device;

use llmdrop::budget::{MemoryPolicy, ScoreMode};
use llmdrop::eval::{perplexity, perplexity_streamed, PplOptions, PplResult, StreamShape};
use llmdrop::model::LayerStream;
use llmdrop::pipeline::ppl_model;
use llmdrop::progress::NoProgress;
use llmdrop::{DropPlan, Error, ModelSource, Precision};
use llmdrop_testkit as testkit;

/// Pseudo-random ids below `vocab`.
fn ids(vocab: usize, n: usize) -> Vec<u32> {
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s % vocab as u64) as u32
        })
        .collect()
}

fn bits(r: &PplResult) -> (u64, u64, usize, usize, usize, usize) {
    (
        r.ppl.to_bits(),
        r.nll.to_bits(),
        r.tokens_scored,
        r.windows,
        r.seq_len,
        r.tokens_total,
    )
}

/// Perplexity of `path` at `precision` held and streamed (all windows at once and two at
/// a time), with and without BOS-led windows and the second half: the same bits.
fn assert_streamed_equals_held(path: &std::path::Path, precision: &str, bos: Option<u32>) {
    let precision = Precision::parse(precision).unwrap();
    let src = ModelSource::open(path).unwrap();
    let text = ids(src.config().vocab_size, 5 * 16 + 3);
    let plan = DropPlan::empty();
    let held = src.load_decoder(&plan, precision, &Device::Cpu).unwrap();
    let stream = LayerStream::open(&src, &plan, precision, &Device::Cpu).unwrap();
    for second_half in [false, true] {
        let opts = PplOptions {
            seq_len: 16,
            max_windows: Some(5),
            second_half,
            bos,
        };
        let want = perplexity(&held, &text, &opts, &mut NoProgress).unwrap();
        assert!(want.is_finite() && want.windows == 5);
        for (group, head_rows) in [
            (None, None),
            (Some(2), None),
            (None, Some(32)),
            (Some(2), Some(37)),
            (Some(5), Some(1)),
        ] {
            let shape = StreamShape { group, head_rows };
            let got = perplexity_streamed(&stream, &text, &opts, shape, &mut NoProgress).unwrap();
            assert_eq!(
                bits(&got),
                bits(&want),
                "{} at {}, second half {second_half}, {shape:?}",
                path.display(),
                precision.name()
            );
        }
    }
}

#[test]
fn streamed_ppl_equals_held_ppl_on_tiny_families() {
    for arch in ["llama", "qwen2", "qwen3", "gemma3"] {
        let dir = testkit::tiny_dir(arch);
        let bos = (arch == "gemma3").then_some(2);
        for p in ["f32", "q8_0", "q4_1"] {
            assert_streamed_equals_held(&dir, p, bos);
        }
    }
}

/// Half precision: f16's head is candle's matmul, held whole whatever the shape asks
/// (candle may sum in another order for another number of rows); bf16's is llmdrop's
/// kernel, sliced.
#[test]
fn streamed_ppl_equals_held_ppl_in_half_precision() {
    for arch in ["llama", "qwen2"] {
        for p in ["f16", "bf16"] {
            assert_streamed_equals_held(&testkit::tiny_dir(arch), p, None);
        }
    }
}

#[test]
fn streamed_ppl_equals_held_ppl_from_gguf() {
    let gguf = testkit::tiny_dir("llama").join("model.gguf");
    for p in ["f32", "native"] {
        assert_streamed_equals_held(&gguf, p, None);
    }
    // the default model's layout: every matrix in Q4_1 blocks, the head tied
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("q4_1.gguf");
    testkit::write_q4_1_gguf_from_hf(&testkit::tiny_dir("llama"), &path).unwrap();
    for p in ["f32", "native", "q8_0"] {
        assert_streamed_equals_held(&path, p, Some(1));
    }
}

fn text() -> String {
    "The quick brown fox jumps over the lazy dog. Pack my box with five dozen liquor jugs. "
        .repeat(20)
}

fn opts() -> PplOptions {
    PplOptions {
        seq_len: 32,
        max_windows: Some(6),
        second_half: false,
        bos: None,
    }
}

fn run(
    src: &ModelSource,
    stream: bool,
    max_memory: Option<u64>,
) -> llmdrop::Result<llmdrop::pipeline::PplRun> {
    run_at(src, "f32", stream, max_memory)
}

fn run_at(
    src: &ModelSource,
    precision: &str,
    stream: bool,
    max_memory: Option<u64>,
) -> llmdrop::Result<llmdrop::pipeline::PplRun> {
    ppl_model(
        src,
        Precision::parse(precision).unwrap(),
        &DropPlan::empty(),
        &text(),
        &opts(),
        &MemoryPolicy { stream, max_memory },
        &mut NoProgress,
    )
}

#[test]
fn ppl_model_streams_when_asked_or_when_only_that_fits_in_groups_if_need_be() {
    for arch in ["llama", "gemma3"] {
        let src = ModelSource::open(&testkit::tiny_dir(arch)).unwrap();
        let held = run(&src, false, None).unwrap();
        assert_eq!(held.memory.mode, ScoreMode::InMemory);
        assert_eq!(held.group, None);
        let forced = run(&src, true, None).unwrap();
        assert_eq!(
            (forced.memory.mode, forced.memory.forced),
            (ScoreMode::Streamed, true)
        );
        assert_eq!(forced.group, Some(6));
        assert_eq!(bits(&forced.result), bits(&held.result), "{arch}");
        assert!(forced.memory.need_bytes < held.memory.need_bytes);
        // a budget the held model exceeds: streamed unasked, all windows at once
        let between = (forced.memory.need_bytes + held.memory.need_bytes) / 2;
        let auto = run(&src, false, Some(between)).unwrap();
        assert_eq!(
            (auto.memory.mode, auto.group),
            (ScoreMode::Streamed, Some(6))
        );
        assert_eq!(bits(&auto.result), bits(&held.result), "{arch}");
        assert_eq!(auto.head_rows, Some(256));
        // a budget below all windows' states at once: fewer windows a pass, the same bits
        let tight = forced.memory.need_bytes - 1;
        let grouped = run(&src, false, Some(tight)).unwrap();
        let g = grouped.group.unwrap();
        assert!((1..6).contains(&g), "{g}");
        assert_eq!(grouped.head_rows, Some(256));
        assert!(grouped.memory.need_bytes <= tight);
        assert_eq!(bits(&grouped.result), bits(&held.result), "{arch}");
        // the least budget that runs: one window, the head in slices where its phase binds
        // (the explicit shapes above slice it for certain); the same bits
        let mut sliced = Vec::new();
        for p in ["f32", "q8_0", "q4_1"] {
            let want = run_at(&src, p, false, None).unwrap();
            let (mut lo, mut hi) = (1u64, want.memory.need_bytes);
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                match run_at(&src, p, false, Some(mid)) {
                    Ok(_) => hi = mid,
                    Err(Error::MemoryBudget { .. }) => lo = mid + 1,
                    Err(e) => panic!("{e}"),
                }
            }
            let least = run_at(&src, p, false, Some(lo)).unwrap();
            assert_eq!(least.group, Some(1), "{arch} {p}");
            assert!(least.memory.need_bytes <= lo);
            assert_eq!(bits(&least.result), bits(&want.result), "{arch} {p}");
            sliced.push(least.head_rows.unwrap());
        }
        // reading a layer's largest tensor (its stored pages and copies) outweighs these
        // tiny models' 256-row head, so the layers bind: the head stays whole
        eprintln!("{arch}: head rows at the least budget (f32, q8_0, q4_1): {sliced:?}");
        assert!(sliced.iter().all(|&r| r == 256), "{arch}: {sliced:?}");
    }
}

#[test]
fn a_ppl_budget_below_one_layer_or_the_head_is_refused_with_the_bytes_needed() {
    let src = ModelSource::open(&testkit::tiny_dir("llama")).unwrap();
    match run(&src, false, Some(4096)).unwrap_err() {
        Error::MemoryBudget {
            need,
            budget,
            detail,
            ..
        } => {
            assert_eq!(budget, 4096);
            // one tiny llama layer alone is 4 * (4 * 64 * 64 + 3 * 64 * 160) bytes
            assert!(need > 4 * (4 * 64 * 64 + 3 * 64 * 160), "{need}");
            assert!(
                detail.contains("one layer") && detail.contains("output head"),
                "{detail}"
            );
        }
        e => panic!("{e}"),
    }
}

/// The default model (Q4_1 GGUF, tied head, in f32) held and streamed: the same bits.
#[test]
fn default_model_streamed_ppl_equals_held_ppl() {
    let src = ModelSource::open(&testkit::default_model()).unwrap();
    let text = ids(src.config().vocab_size, 4 * 128);
    let f32 = Precision::parse("f32").unwrap();
    let plan = DropPlan::empty();
    let opts = PplOptions {
        seq_len: 128,
        max_windows: Some(4),
        second_half: true,
        bos: None,
    };
    let held = src.load_decoder(&plan, f32, &Device::Cpu).unwrap();
    let want = perplexity(&held, &text, &opts, &mut NoProgress).unwrap();
    drop(held);
    let stream = LayerStream::open(&src, &plan, f32, &Device::Cpu).unwrap();
    assert!(want.is_finite());
    for head_rows in [None, Some(4096), Some(1000)] {
        let shape = StreamShape {
            group: None,
            head_rows,
        };
        let got = perplexity_streamed(&stream, &text, &opts, shape, &mut NoProgress).unwrap();
        assert_eq!(bits(&got), bits(&want), "{head_rows:?}");
    }
}

//! Layer-streamed scoring gives the in-memory scores bit for bit: tiny models of every
//! family (HF folders, sharded safetensors, GGUF in f32 and in Q4_1 blocks like the
//! default model) at each precision, with and without the residual, with the unit hidden
//! states held or spilled to disk and read back; the memory budget is honoured or refused
//! with the bytes it lacks; and the default model, scored both ways.

use candle_core::Device;
use std::sync::Arc;

use llmdrop::budget::{MemoryPolicy, ScoreMode};
use llmdrop::dest::SpillDir;
use llmdrop::model::{LayerStream, Outputs};
use llmdrop::pipeline::{score_model, ModelOptions, ScoringOptions};
use llmdrop::progress::NoProgress;
use llmdrop::score::{score, score_streamed, ScoreOptions, ScoreTable};
use llmdrop::{DropPlan, Error, ModelSource, Precision};
use llmdrop_testkit::{self as testkit, score_bits};

/// Blocks of pseudo-random ids below `vocab` (ids repeat across blocks, as text does).
fn blocks(vocab: usize, n: usize, len: usize) -> Vec<Vec<u32>> {
    let mut s = 0x2545_f491_4f6c_dd1du64;
    (0..n)
        .map(|_| {
            (0..len)
                .map(|_| {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    (s % vocab as u64) as u32
                })
                .collect()
        })
        .collect()
}

/// Every value of the table as bits, with its counts.
fn all_bits(t: &ScoreTable) -> (usize, u64, bool, Vec<u64>) {
    (t.num_layers, t.tokens, t.residual, score_bits(t))
}

/// Streamed scores of `b`, the unit hidden states spilled into a fresh folder that is
/// gone afterwards.
fn spilled(stream: &LayerStream<'_>, b: &[Vec<u32>], opts: &ScoreOptions) -> ScoreTable {
    let tmp = tempfile::tempdir().unwrap();
    let spill = Arc::new(SpillDir::new(tmp.path(), 0).unwrap());
    let t = score_streamed(stream, b, opts, Some(&spill), &mut NoProgress).unwrap();
    let files = std::fs::read_dir(spill.path()).unwrap().count();
    assert_eq!(
        files, 1,
        "every block file is removed once read back (the lock stays)"
    );
    drop(spill);
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
    t
}

/// Scores `path` at `precision` held and streamed (units held and spilled), with and
/// without the residual, and asserts the tables are the same bits.
fn assert_streamed_equals_held(path: &std::path::Path, precision: Precision) {
    let src = ModelSource::open(path).unwrap();
    let b = blocks(src.config().vocab_size, 5, 24);
    let held = src
        .load_decoder_for(
            &DropPlan::empty(),
            precision,
            &Device::Cpu,
            Outputs::HiddenStates,
        )
        .unwrap();
    let stream = LayerStream::open(&src, &DropPlan::empty(), precision, &Device::Cpu).unwrap();
    for residual in [true, false] {
        let opts = ScoreOptions {
            residual,
            consecutive: true,
        };
        let want = score(&held, &b, &opts, &mut NoProgress).unwrap();
        let got = score_streamed(&stream, &b, &opts, None, &mut NoProgress).unwrap();
        assert!(want.consecutive.is_some());
        assert_eq!(
            all_bits(&got),
            all_bits(&want),
            "{} at {}, residual {residual}",
            path.display(),
            precision.name()
        );
        assert_eq!(
            all_bits(&spilled(&stream, &b, &opts)),
            all_bits(&want),
            "{} at {}, residual {residual}, spilled",
            path.display(),
            precision.name()
        );
    }
}

fn f32() -> Precision {
    Precision::parse("f32").unwrap()
}

#[test]
fn streamed_scores_equal_held_scores_on_every_tiny_family() {
    for arch in ["llama", "qwen2", "qwen3", "gemma3", "mistral"] {
        let dir = testkit::tiny_dir(arch);
        for p in ["f32", "bf16", "bf16-mixed", "q8_0", "q4_1"] {
            assert_streamed_equals_held(&dir, Precision::parse(p).unwrap());
        }
    }
}

#[test]
fn streamed_scores_equal_held_scores_from_gguf_and_shards() {
    for arch in ["llama", "qwen2"] {
        let gguf = testkit::tiny_dir(arch).join("model.gguf");
        for p in ["f32", "bf16", "bf16-mixed", "native"] {
            assert_streamed_equals_held(&gguf, Precision::parse(p).unwrap());
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let sharded = tmp.path().join("sharded");
    testkit::write_sharded_copy(&testkit::tiny_dir("llama"), &sharded).unwrap();
    assert_streamed_equals_held(&sharded, f32());
}

/// The default model's layout: every matrix (the embedding too) in Q4_1 blocks, which
/// f32 scoring keeps as stored for the embedding and dequantizes for the layers.
#[test]
fn streamed_scores_equal_held_scores_from_q4_1_blocks() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("q4_1.gguf");
    testkit::write_q4_1_gguf_from_hf(&testkit::tiny_dir("llama"), &path).unwrap();
    for p in ["f32", "native", "q8_0"] {
        assert_streamed_equals_held(&path, Precision::parse(p).unwrap());
    }
}

fn calibration_text(dir: &std::path::Path) -> std::path::PathBuf {
    let text = dir.join("calib.txt");
    std::fs::write(
        &text,
        "The quick brown fox jumps over the lazy dog. Pack my box with five dozen liquor jugs. "
            .repeat(40),
    )
    .unwrap();
    text
}

fn scoring(dir: &std::path::Path, memory: MemoryPolicy, out: &str) -> ScoringOptions {
    let mut o = ScoringOptions {
        out: dir.join(out),
        memory,
        ..ScoringOptions::default()
    };
    o.calib.data = Some(calibration_text(dir));
    o.calib.samples = 4;
    o.calib.seq_len = 32;
    o
}

#[test]
fn score_model_streams_when_asked_or_when_only_that_fits_and_reports_it() {
    let tmp = tempfile::tempdir().unwrap();
    let model = ModelOptions::new(testkit::tiny_dir("llama"));
    let held = score_model(
        &model,
        &scoring(tmp.path(), MemoryPolicy::default(), "a.json"),
        &mut NoProgress,
    )
    .unwrap();
    let held_choice = held.memory.unwrap();
    assert_eq!(held_choice.mode, ScoreMode::InMemory);
    let forced = MemoryPolicy {
        stream: true,
        max_memory: None,
    };
    let streamed = score_model(
        &model,
        &scoring(tmp.path(), forced, "b.json"),
        &mut NoProgress,
    )
    .unwrap();
    let s = streamed.memory.unwrap();
    assert_eq!((s.mode, s.forced), (ScoreMode::Streamed, true));
    // every layer's unit hidden states of every token went to disk: (L+1) x 4 blocks x 32
    // tokens x hidden f32, in a folder beside the output that is gone now
    let cfg = ModelSource::open(&testkit::tiny_dir("llama"))
        .unwrap()
        .config()
        .clone();
    let units = (cfg.num_layers as u64 + 1) * 4 * 32 * cfg.hidden_size as u64 * 4;
    assert_eq!(
        (s.spill_bytes, held_choice.spill_bytes),
        (Some(units), None)
    );
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("spill"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(all_bits(&streamed.table), all_bits(&held.table));
    // a budget the held model exceeds but one layer fits: streamed without being asked
    let between = MemoryPolicy {
        stream: false,
        max_memory: Some((s.need_bytes + held_choice.need_bytes) / 2),
    };
    assert!(s.need_bytes < held_choice.need_bytes);
    let auto = score_model(
        &model,
        &scoring(tmp.path(), between, "c.json"),
        &mut NoProgress,
    )
    .unwrap();
    assert_eq!(auto.memory.unwrap().mode, ScoreMode::Streamed);
    assert_eq!(all_bits(&auto.table), all_bits(&held.table));
    // and what scores.json says is what the run reported
    let back = llmdrop::report::ScoreReport::read(&tmp.path().join("c.json")).unwrap();
    assert_eq!(back.memory, auto.memory);
}

#[test]
fn a_budget_below_one_layer_and_the_hidden_states_is_refused_with_the_bytes_needed() {
    let tmp = tempfile::tempdir().unwrap();
    let model = ModelOptions::new(testkit::tiny_dir("llama"));
    let tiny = MemoryPolicy {
        stream: false,
        max_memory: Some(4096),
    };
    let opts = scoring(tmp.path(), tiny, "scores.json");
    match score_model(&model, &opts, &mut NoProgress).unwrap_err() {
        Error::MemoryBudget {
            need,
            budget,
            detail,
            ..
        } => {
            assert_eq!(budget, 4096);
            // one tiny llama layer alone is 4 * (4 * 64 * 64 + 3 * 64 * 160) bytes
            assert!(need > 4 * (4 * 64 * 64 + 3 * 64 * 160), "{need}");
            assert!(detail.contains("one layer"), "{detail}");
            let msg = Error::MemoryBudget {
                need,
                budget,
                budget_from: "`max_memory`".into(),
                detail,
            }
            .to_string();
            assert!(msg.contains(&format!("{need} bytes")), "{msg}");
        }
        e => panic!("{e}"),
    }
    assert!(!opts.out.exists(), "nothing is written");
}

/// The default model (Q4_1 GGUF, scored in f32) held and streamed: the same bits.
#[test]
fn default_model_streamed_scores_equal_held_scores() {
    let src = ModelSource::open(&testkit::default_model()).unwrap();
    let b = blocks(src.config().vocab_size, 4, 64);
    let held = src
        .load_decoder_for(
            &DropPlan::empty(),
            f32(),
            &Device::Cpu,
            Outputs::HiddenStates,
        )
        .unwrap();
    let opts = ScoreOptions::default();
    let want = score(&held, &b, &opts, &mut NoProgress).unwrap();
    drop(held);
    let stream = LayerStream::open(&src, &DropPlan::empty(), f32(), &Device::Cpu).unwrap();
    let got = score_streamed(&stream, &b, &opts, None, &mut NoProgress).unwrap();
    assert_eq!(all_bits(&got), all_bits(&want));
    assert_eq!(all_bits(&spilled(&stream, &b, &opts)), all_bits(&want));
}

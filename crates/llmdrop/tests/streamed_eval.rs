//! Layer-streamed multiple choice gives the in-memory results bit for bit (every
//! log-likelihood, greedy flag, prediction, acc and acc_norm): tiny models of several
//! families (tied and untied heads, Gemma's BOS), f32, bf16 and quantized, from HF folders
//! and a Q4_1 GGUF like the default model, with a drop plan; shared contexts with batched
//! continuations, one-token continuations (no batch), varying contexts (WinoGrande) and a
//! request longer than the window (run alone); all examples at once and in groups, the
//! head whole and in slices. The evaluation pipeline streams when asked or when the model
//! does not fit, with the same report, and refuses a budget below one layer naming the
//! bytes; and the default model, both ways.

use candle_core::Device;

use llmdrop::budget::{MemoryPolicy, ScoreMode};
use llmdrop::eval::{
    evaluate_task, evaluate_task_streamed, resolve, McExample, McResult, StreamShape, Task,
    TaskScore,
};
use llmdrop::model::LayerStream;
use llmdrop::pipeline::{evaluate_models, EvalOptions, ModelOptions};
use llmdrop::progress::NoProgress;
use llmdrop::{DropPlan, Error, ModelSource, Precision};
use llmdrop_testkit as testkit;

fn spec(file: &str) -> String {
    let p = testkit::fixtures_dir().join("tasks").join(file);
    let p = p.display().to_string();
    match file {
        "mini_winogrande.jsonl" => format!("winogrande:{p}"),
        "mini_arc.jsonl" => format!("arc:{p}"),
        _ => p,
    }
}

/// The fixture tasks, and one with one-token choices and a context past the tiny models'
/// 256 positions.
fn tasks() -> Vec<Task> {
    let mut t: Vec<Task> = ["mini_mc.jsonl", "mini_winogrande.jsonl", "mini_arc.jsonl"]
        .iter()
        .map(|f| resolve(&spec(f)).unwrap().remove(0))
        .collect();
    t.push(Task {
        name: "edges".into(),
        examples: vec![
            McExample::shared_context("Pick a letter:", vec!["a".into(), "b".into()], 1),
            McExample::shared_context(
                &"word ".repeat(60),
                vec!["end".into(), "stop here".into()],
                0,
            ),
            McExample::shared_context("The sky is", vec!["blue".into(), "x".into()], 0),
        ],
    });
    t
}

type Bits = (Vec<u64>, Vec<bool>, usize, usize, usize);

fn bits(r: &[McResult]) -> Vec<Bits> {
    r.iter()
        .map(|r| {
            let ll = r.loglikelihoods.iter().map(|x| x.to_bits()).collect();
            (ll, r.greedy.clone(), r.gold, r.pred, r.pred_norm)
        })
        .collect()
}

fn score_bits(s: &TaskScore) -> [u64; 5] {
    [
        s.acc.to_bits(),
        s.acc_norm.to_bits(),
        s.acc_stderr.to_bits(),
        s.acc_norm_stderr.to_bits(),
        s.examples as u64,
    ]
}

const SHAPES: [StreamShape; 4] = [
    StreamShape {
        group: None,
        head_rows: None,
    },
    StreamShape {
        group: Some(2),
        head_rows: None,
    },
    StreamShape {
        group: Some(3),
        head_rows: Some(37),
    },
    StreamShape {
        group: Some(1),
        head_rows: Some(64),
    },
];

/// Every task held and streamed in every shape: the same bits (the tokenizer of the
/// tiny llama where the file has none).
fn assert_streamed_equals_held(path: &std::path::Path, precision: &str, plan: &DropPlan) {
    let precision = Precision::parse(precision).unwrap();
    let src = ModelSource::open(path).unwrap();
    let tok = src.tokenizer().unwrap_or_else(|_| {
        let llama = ModelSource::open(&testkit::tiny_dir("llama")).unwrap();
        llama.tokenizer().unwrap()
    });
    let held = src.load_decoder(plan, precision, &Device::Cpu).unwrap();
    let stream = LayerStream::open(&src, plan, precision, &Device::Cpu).unwrap();
    for task in tasks() {
        let (ws, wr) = evaluate_task(&held, &tok, &task, &mut NoProgress).unwrap();
        assert!(wr.iter().all(McResult::is_finite));
        for shape in SHAPES {
            let (gs, gr) =
                evaluate_task_streamed(&stream, &tok, &task, shape, &mut NoProgress).unwrap();
            let at = format!(
                "{} {} {} {shape:?}",
                path.display(),
                precision.name(),
                task.name
            );
            assert_eq!(bits(&gr), bits(&wr), "{at}");
            assert_eq!(score_bits(&gs), score_bits(&ws), "{at}");
        }
    }
}

#[test]
fn streamed_mc_equals_held_mc_on_tiny_families() {
    for arch in ["llama", "qwen2", "qwen3", "gemma3"] {
        let dir = testkit::tiny_dir(arch);
        for p in ["f32", "q8_0", "q4_1"] {
            assert_streamed_equals_held(&dir, p, &DropPlan::empty());
        }
    }
    let llama = testkit::tiny_dir("llama");
    assert_streamed_equals_held(&llama, "bf16", &DropPlan::empty());
    // a dropped attention layer and a dropped MLP: no cache slot, no MLP
    assert_streamed_equals_held(&llama, "f32", &DropPlan::new([1], [2]));
}

#[test]
fn streamed_mc_equals_held_mc_from_q4_1_gguf() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("q4_1.gguf");
    testkit::write_q4_1_gguf_from_hf(&testkit::tiny_dir("llama"), &path).unwrap();
    for p in ["f32", "native"] {
        assert_streamed_equals_held(&path, p, &DropPlan::empty());
    }
}

fn eval_opts(dir: &std::path::Path, memory: MemoryPolicy) -> EvalOptions {
    let text = dir.join("ppl.txt");
    std::fs::write(
        &text,
        "The quick brown fox jumps over the lazy dog. Pack my box with five dozen jugs. ".repeat(8),
    )
    .unwrap();
    EvalOptions {
        tasks: vec![spec("mini_mc.jsonl"), spec("mini_winogrande.jsonl")],
        ppl_data: Some(text),
        seq_len: 32,
        max_windows: Some(4),
        plan: DropPlan::new([1], []),
        memory,
        ..EvalOptions::default()
    }
}

#[test]
fn evaluate_models_streams_when_asked_or_when_the_model_does_not_fit() {
    let tmp = tempfile::tempdir().unwrap();
    for arch in ["llama", "gemma3"] {
        let model = ModelOptions::new(testkit::tiny_dir(arch));
        let run = |stream, max_memory| {
            evaluate_models(
                &model,
                &eval_opts(tmp.path(), MemoryPolicy { stream, max_memory }),
                &mut NoProgress,
            )
        };
        let held = run(false, None).unwrap();
        let forced = run(true, None).unwrap();
        let held_need = held.columns[0].memory.unwrap().need_bytes;
        let streamed_need = forced.columns[0].memory.unwrap().need_bytes;
        assert!(streamed_need < held_need, "{arch}");
        let tight = run(false, Some(streamed_need)).unwrap();
        for (report, mode) in [
            (&held, ScoreMode::InMemory),
            (&forced, ScoreMode::Streamed),
            (&tight, ScoreMode::Streamed),
        ] {
            assert_eq!(report.columns.len(), 2);
            for (c, h) in report.columns.iter().zip(&held.columns) {
                assert_eq!(c.memory.unwrap().mode, mode, "{arch}");
                assert_eq!(c.plan, h.plan);
                let ts: Vec<_> = c.tasks.iter().map(score_bits).collect();
                let hs: Vec<_> = h.tasks.iter().map(score_bits).collect();
                assert_eq!(ts, hs, "{arch} {}", c.name);
                let (p, q) = (c.ppl.as_ref().unwrap(), h.ppl.as_ref().unwrap());
                assert_eq!(p.nll.to_bits(), q.nll.to_bits(), "{arch} {}", c.name);
            }
        }
        assert!(tight.columns[0].memory.unwrap().need_bytes <= streamed_need);
    }
}

#[test]
fn an_eval_budget_below_one_layer_is_refused_with_the_bytes_needed() {
    let tmp = tempfile::tempdir().unwrap();
    let model = ModelOptions::new(testkit::tiny_dir("llama"));
    let opts = eval_opts(
        tmp.path(),
        MemoryPolicy {
            stream: false,
            max_memory: Some(4096),
        },
    );
    match evaluate_models(&model, &opts, &mut NoProgress).unwrap_err() {
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

/// The default model (Q4_1 GGUF, tied head, in f32), a few examples held and streamed,
/// the head whole and in slices: the same bits.
#[test]
fn default_model_streamed_mc_equals_held_mc() {
    let src = ModelSource::open(&testkit::default_model()).unwrap();
    let tok = src.tokenizer().unwrap();
    let f32 = Precision::parse("f32").unwrap();
    let plan = DropPlan::empty();
    let mut task = resolve(&spec("mini_mc.jsonl")).unwrap().remove(0);
    task.examples.truncate(4);
    let arc = resolve(&spec("mini_arc.jsonl")).unwrap().remove(0);
    let held = src.load_decoder(&plan, f32, &Device::Cpu).unwrap();
    let want: Vec<_> = [&task, &arc]
        .iter()
        .map(|t| evaluate_task(&held, &tok, t, &mut NoProgress).unwrap())
        .collect();
    drop(held);
    let stream = LayerStream::open(&src, &plan, f32, &Device::Cpu).unwrap();
    for shape in [
        StreamShape::default(),
        StreamShape {
            group: Some(2),
            head_rows: Some(10_000),
        },
    ] {
        for (t, (ws, wr)) in [&task, &arc].iter().zip(&want) {
            let (gs, gr) =
                evaluate_task_streamed(&stream, &tok, t, shape, &mut NoProgress).unwrap();
            assert_eq!(bits(&gr), bits(wr), "{} {shape:?}", t.name);
            assert_eq!(score_bits(&gs), score_bits(ws), "{} {shape:?}", t.name);
        }
    }
}

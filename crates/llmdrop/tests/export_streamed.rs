//! Exports of models larger than memory: the reload check run layer by layer gives the
//! held check's numbers bit for bit (every format, HF and GGUF sources, quantized GGUF
//! output), a budget below the held check streams it, and `drop` scores layer-streamed
//! (also iteratively) with the held run's scores and plan.

mod export_common;

use candle_core::quantized::GgmlDType;
use candle_core::{DType, Device};
use llmdrop::budget::{ExportNeed, MemoryPolicy, Need, ScoreMode};
use llmdrop::export::{export, ExportFormat, ExportRequest, Reference};
use llmdrop::pipeline::{self, DropOptions, Event, ExportOptions, ModelOptions, Observer};
use llmdrop::progress::Progress;
use llmdrop::strategy::Strategy;
use llmdrop::{DropPlan, ModelSource};
use llmdrop_testkit as testkit;

/// Exports `plan` of `model` with the held and the streamed check; returns both results'
/// (max |Δlogit| bits, agreement, lossless, reload_streamed).
fn both(
    model: &std::path::Path,
    plan: &DropPlan,
    format: ExportFormat,
    quant: Option<GgmlDType>,
) -> [(u32, u64, bool, bool); 2] {
    let src = ModelSource::open(model).unwrap();
    let tok = src.tokenizer().unwrap();
    let held = src.load_decoder(plan, DType::F32, &Device::Cpu).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let ext = if format == ExportFormat::Gguf {
        ".gguf"
    } else {
        ""
    };
    let probe = export_common::probe();
    let info = export_common::info();
    [Reference::Held(&held), Reference::Streamed].map(|reference| {
        let streamed = matches!(reference, Reference::Streamed);
        let dest = tmp.path().join(format!("out-{streamed}{ext}"));
        let r = export(&ExportRequest {
            source: &src,
            tokenizer: &tok,
            plan,
            format,
            quant,
            info: &info,
            dest: &dest,
            force: false,
            reference,
            probe: &probe,
            allow_first_attn_drop: false,
        })
        .unwrap_or_else(|e| panic!("{format:?} streamed={streamed}: {e}"));
        (
            r.reload_max_abs_diff.to_bits(),
            r.reload_argmax_agreement.to_bits(),
            r.lossless,
            r.reload_streamed,
        )
    })
}

/// The tiny llama without RoPE scaling (which the GGUF writer refuses), as f32 safetensors.
fn plain_llama(dst: &std::path::Path) {
    testkit::copy_hf_dir_with(&testkit::tiny_dir("llama"), dst, |_, _, d| Some(d)).unwrap();
    let path = dst.join("config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let obj = cfg.as_object_mut().unwrap();
    obj.remove("rope_parameters");
    obj.insert("rope_theta".into(), 10000.0.into());
    std::fs::write(&path, cfg.to_string()).unwrap();
}

/// The tiny llama 4x wider (hidden 256, head_dim 64: rows of 256, so `q4_k` stays Q4_K,
/// but for the 160-wide MLP down projection), no RoPE scaling, seeded weights.
fn wide_llama(dst: &std::path::Path) {
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    testkit::copy_hf_dir_with(&testkit::tiny_dir("llama"), dst, |name, shape, _| {
        for d in shape.iter_mut() {
            *d = match *d {
                64 => 256,
                32 => 128,
                d => d,
            };
        }
        let n: usize = shape.iter().product();
        Some(if name.ends_with("norm.weight") {
            vec![1.0; n]
        } else {
            (0..n)
                .map(|_| {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    ((s >> 11) as f64 / (1u64 << 53) as f64 - 0.5) as f32 * 0.1
                })
                .collect()
        })
    })
    .unwrap();
    let path = dst.join("config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let obj = cfg.as_object_mut().unwrap();
    obj.remove("rope_parameters");
    obj.insert("rope_theta".into(), 10000.0.into());
    obj.insert("hidden_size".into(), 256.into());
    obj.insert("head_dim".into(), 64.into());
    std::fs::write(&path, cfg.to_string()).unwrap();
}

/// A q4_k GGUF of a model with 256-wide rows holds Q4_K blocks, reloads as the model
/// rounded through them (to 1e-4) though it is visibly not the unrounded model, and the
/// `gguf` types are the ones asked for.
#[test]
fn q4_k_export_reloads_as_the_rounded_model() {
    let tmp = tempfile::tempdir().unwrap();
    let wide = tmp.path().join("wide");
    wide_llama(&wide);
    let plan = DropPlan::new([1], [0]);
    let [h, s] = both(&wide, &plan, ExportFormat::Gguf, Some(GgmlDType::Q4K));
    assert_eq!((h.0, h.1, h.2), (s.0, s.1, s.2), "held and streamed checks");
    assert!(f32::from_bits(h.0) <= 1e-4 && !h.2, "{h:?}");
    let dest = tmp.path().join("wide.gguf");
    let (r, out) = export_common::run(
        &wide,
        &plan,
        ExportFormat::Gguf,
        Some(GgmlDType::Q4K),
        &dest,
    )
    .unwrap();
    let types: std::collections::BTreeSet<String> = out
        .weights()
        .tensors()
        .into_iter()
        .filter(|t| t.shape.len() == 2)
        .map(|t| format!("{}:{}", t.name.rsplit('.').nth(1).unwrap(), t.dtype))
        .collect();
    assert!(
        types.contains("q_proj:Q4K") && types.contains("down_proj:Q5_0"),
        "{types:?}"
    );
    let src = ModelSource::open(&wide).unwrap();
    let f32_model = src.load_decoder(&plan, DType::F32, &Device::Cpu).unwrap();
    let (unrounded, _) =
        llmdrop::export::compare_reload(&r.path, &f32_model, &export_common::probe()).unwrap();
    assert!(
        unrounded > 1e-3,
        "quantization is visible against f32: {unrounded}"
    );
}

#[test]
fn streamed_reload_check_equals_held() {
    let tmp = tempfile::tempdir().unwrap();
    let llama = tmp.path().join("llama");
    plain_llama(&llama);
    let gguf = testkit::tiny_dir("llama").join("model.gguf");
    let attn = DropPlan::new([1], []);
    let mixed = DropPlan::new([2], [0]);
    let cases: Vec<(&std::path::Path, &DropPlan, ExportFormat, Option<GgmlDType>)> = vec![
        (&llama, &attn, ExportFormat::HfLlmdrop, None),
        (&llama, &mixed, ExportFormat::NemotronNas, None),
        (&llama, &attn, ExportFormat::Gguf, Some(GgmlDType::Q8_0)),
        (&llama, &mixed, ExportFormat::Gguf, Some(GgmlDType::Q4K)),
        (&gguf, &attn, ExportFormat::Gguf, None),
        (&gguf, &attn, ExportFormat::HfLlmdrop, None),
    ];
    for (model, plan, format, quant) in cases {
        let [h, s] = both(model, plan, format, quant);
        let what = format!("{} {plan:?} {format:?} {quant:?}", model.display());
        assert!(!h.3 && s.3, "{what}: modes");
        assert_eq!(h.0, s.0, "{what}: max |Δlogit| bits");
        assert_eq!(h.1, s.1, "{what}: agreement bits");
        assert_eq!(h.2, s.2, "{what}: lossless");
    }
}

/// Records the modes the workflows announce.
#[derive(Default)]
struct Modes {
    check: Vec<ScoreMode>,
    scoring: Vec<ScoreMode>,
}

impl Progress for Modes {}

impl Observer for Modes {
    fn event(&mut self, e: Event<'_>) {
        match e {
            Event::ExportCheckMode { choice } => self.check.push(choice.mode),
            Event::ScoringMode { choice, .. } => self.scoring.push(choice.mode),
            _ => {}
        }
    }
}

#[test]
fn export_streams_its_check_when_asked_or_short_of_memory() {
    let tmp = tempfile::tempdir().unwrap();
    let model = ModelOptions::new(testkit::tiny_dir("llama"));
    let run = |name: &str, memory: MemoryPolicy| {
        let mut o = ExportOptions::new(ExportFormat::NemotronNas, tmp.path().join(name));
        o.plan = DropPlan::new([1], []);
        o.memory = memory;
        let mut modes = Modes::default();
        let r = pipeline::export_model(&model, &o, &mut modes).unwrap();
        (r, modes.check)
    };
    let (held, m) = run("held", MemoryPolicy::default());
    assert_eq!(
        (m, held.reload_streamed),
        (vec![ScoreMode::InMemory], false)
    );
    let forced = MemoryPolicy {
        stream: true,
        max_memory: None,
    };
    let (s, m) = run("stream", forced);
    assert_eq!((m, s.reload_streamed), (vec![ScoreMode::Streamed], true));
    assert_eq!(
        s.reload_max_abs_diff.to_bits(),
        held.reload_max_abs_diff.to_bits()
    );
    // a budget below two held models but above one layer at a time streams
    let src = ModelSource::open(&testkit::tiny_dir("llama")).unwrap();
    let mut ids = src
        .tokenizer()
        .unwrap()
        .encode(pipeline::PROBE_TEXT)
        .unwrap();
    let n = ids.len();
    ids.sort_unstable();
    ids.dedup();
    let need = ExportNeed::estimate(&src, n, ids.len(), 2);
    assert!(need.streamed() < need.in_memory(), "{need:?}");
    let tight = MemoryPolicy {
        stream: false,
        max_memory: Some((need.streamed() + need.in_memory()) / 2),
    };
    let (b, m) = run("budget", tight);
    assert_eq!((m, b.reload_streamed), (vec![ScoreMode::Streamed], true));
    // below even that: refused before anything is written
    let tiny = MemoryPolicy {
        stream: false,
        max_memory: Some(need.streamed() - 1),
    };
    let mut o = ExportOptions::new(ExportFormat::NemotronNas, tmp.path().join("none"));
    o.memory = tiny;
    let e = pipeline::export_model(&model, &o, &mut Modes::default()).unwrap_err();
    assert!(matches!(e, llmdrop::Error::MemoryBudget { .. }), "{e}");
    assert!(!tmp.path().join("none").exists());
}

#[test]
fn drop_scores_layer_streamed_as_held() {
    let tmp = tempfile::tempdir().unwrap();
    let text = tmp.path().join("calib.txt");
    std::fs::write(
        &text,
        "The quick brown fox jumps over the lazy dog. ".repeat(24),
    )
    .unwrap();
    let model = ModelOptions::new(testkit::tiny_dir("llama"));
    for iterative in [false, true] {
        let run = |name: &str, stream: bool| {
            let mut o = DropOptions::new(Strategy::Joint, 2, tmp.path().join(name));
            o.calib.data = Some(text.clone());
            o.calib.samples = 3;
            o.calib.seq_len = 24;
            o.iterative = iterative;
            o.scores = Some(tmp.path().join(format!("{name}.json")));
            o.memory = MemoryPolicy {
                stream,
                max_memory: None,
            };
            let mut modes = Modes::default();
            let r = pipeline::drop_layers(&model, &o, &mut modes).unwrap();
            let scores = std::fs::read_to_string(tmp.path().join(format!("{name}.json"))).unwrap();
            let v: serde_json::Value = serde_json::from_str(&scores).unwrap();
            (r, modes, v["table"].clone())
        };
        let (h, hm, ht) = run(&format!("held-{iterative}"), false);
        let (s, sm, st) = run(&format!("stream-{iterative}"), true);
        assert_eq!(hm.scoring, vec![ScoreMode::InMemory]);
        assert_eq!(sm.scoring, vec![ScoreMode::Streamed]);
        assert_eq!(sm.check, vec![ScoreMode::Streamed]);
        assert_eq!(ht, st, "iterative={iterative}: score tables");
        assert_eq!(h.plan, s.plan, "iterative={iterative}: plans");
        assert_eq!(
            h.reload_max_abs_diff.to_bits(),
            s.reload_max_abs_diff.to_bits()
        );
    }
    // without a scores file nothing but the output is left beside it
    let mut o = DropOptions::new(Strategy::Attn, 1, tmp.path().join("solo/out"));
    o.calib.data = Some(text.clone());
    o.calib.samples = 2;
    o.calib.seq_len = 24;
    o.memory.stream = true;
    pipeline::drop_layers(&model, &o, &mut Modes::default()).unwrap();
    let left: Vec<_> = std::fs::read_dir(tmp.path().join("solo"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, vec!["out".to_string()]);
}

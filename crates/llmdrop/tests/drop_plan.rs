//! A DropPlan removes exactly what it names: the residual passes through unchanged, the
//! dropped weights are never read, and a dropped attention layer has no KV slot.

use candle_core::{Device, Tensor};
use llmdrop::{DropPlan, Logits, NoProbe};
use llmdrop_testkit::{self as testkit, copy_hf_dir_with};

fn ids() -> Vec<Vec<u32>> {
    vec![(0..20).map(|i| (i * 37 + 5) % 256).collect()]
}

#[test]
fn empty_plan_is_bit_identical_to_the_model_without_plan() {
    let dir = testkit::tiny_dir("qwen2");
    let (_, a) = testkit::load(&dir, &DropPlan::default()).unwrap();
    let (_, b) = testkit::load(&dir, &DropPlan::new([], [])).unwrap();
    assert_eq!(
        testkit::logits(&a, &ids()).unwrap(),
        testkit::logits(&b, &ids()).unwrap()
    );
}

/// Dropping attention i must equal running the full model whose o_proj (and bias) of
/// layer i is zero — the attention then adds exactly 0 to the residual — bit for bit.
#[test]
fn dropped_attention_equals_zeroed_o_proj() {
    let dir = testkit::tiny_dir("llama");
    let tmp = tempfile::tempdir().unwrap();
    copy_hf_dir_with(&dir, tmp.path(), |name, _, data| {
        Some(if name.starts_with("model.layers.1.self_attn.o_proj") {
            vec![0.0; data.len()]
        } else {
            data
        })
    })
    .unwrap();
    let (_, zeroed) = testkit::load(tmp.path(), &DropPlan::empty()).unwrap();
    let (_, dropped) = testkit::load(&dir, &DropPlan::new([1], [])).unwrap();
    let (_, full) = testkit::load(&dir, &DropPlan::empty()).unwrap();
    let z = testkit::logits(&zeroed, &ids()).unwrap();
    let d = testkit::logits(&dropped, &ids()).unwrap();
    assert_eq!(z, d, "attention drop differs from a zero attention output");
    assert!(testkit::max_abs_diff(&d, &testkit::logits(&full, &ids()).unwrap()) > 1e-3);
}

#[test]
fn dropped_mlp_equals_zeroed_down_proj() {
    let dir = testkit::tiny_dir("mistral");
    let tmp = tempfile::tempdir().unwrap();
    copy_hf_dir_with(&dir, tmp.path(), |name, _, data| {
        Some(if name.starts_with("model.layers.2.mlp.down_proj") {
            vec![0.0; data.len()]
        } else {
            data
        })
    })
    .unwrap();
    let (_, zeroed) = testkit::load(tmp.path(), &DropPlan::empty()).unwrap();
    let (_, dropped) = testkit::load(&dir, &DropPlan::new([], [2])).unwrap();
    assert_eq!(
        testkit::logits(&zeroed, &ids()).unwrap(),
        testkit::logits(&dropped, &ids()).unwrap()
    );
}

/// Weights of dropped modules are never read: a checkpoint without them loads with the
/// plan and fails without it, naming the missing tensor.
#[test]
fn dropped_weights_are_never_read() {
    let dir = testkit::tiny_dir("qwen3");
    let tmp = tempfile::tempdir().unwrap();
    copy_hf_dir_with(&dir, tmp.path(), |name, _, data| {
        let gone = name.starts_with("model.layers.0.self_attn.")
            || name == "model.layers.0.input_layernorm.weight"
            || name.starts_with("model.layers.1.mlp.")
            || name == "model.layers.1.post_attention_layernorm.weight";
        (!gone).then_some(data)
    })
    .unwrap();
    let plan = DropPlan::new([0], [1]);
    let (_, pruned) = testkit::load(tmp.path(), &plan).unwrap();
    let (_, reference) = testkit::load(&dir, &plan).unwrap();
    assert_eq!(
        testkit::logits(&pruned, &ids()).unwrap(),
        testkit::logits(&reference, &ids()).unwrap()
    );
    let err = testkit::load(tmp.path(), &DropPlan::empty())
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("model.layers.0.") && err.contains("missing"),
        "{err}"
    );
}

#[test]
fn dropped_attention_has_no_kv_slot() {
    let dir = testkit::tiny_dir("llama");
    let (_, full) = testkit::load(&dir, &DropPlan::empty()).unwrap();
    let (_, pruned) = testkit::load(&dir, &DropPlan::new([0, 2], [1])).unwrap();
    let run = |dec: &llmdrop::Decoder| {
        let mut cache = dec.new_cache();
        let t = Tensor::new(ids(), &Device::Cpu).unwrap();
        dec.forward(&t, Some(&mut cache), &mut NoProbe, Logits::Last)
            .unwrap();
        let next = Tensor::new(&[[3u32]], &Device::Cpu).unwrap();
        dec.forward(&next, Some(&mut cache), &mut NoProbe, Logits::Last)
            .unwrap();
        cache
    };
    let (cf, cp) = (run(&full), run(&pruned));
    assert_eq!(cf.num_slots(), 3);
    assert_eq!(cp.num_slots(), 1);
    assert!(!cp.has_slot(0) && cp.has_slot(1) && !cp.has_slot(2));
    assert_eq!(cp.seq_len(), 21);
    assert_eq!(cp.bytes() * 3, cf.bytes());
    // per slot: k and v, 2 kv heads x 21 positions x 16 dims x 4 bytes
    assert_eq!(cp.bytes(), 2 * 2 * 21 * 16 * 4);
}

/// Decoding with the KV cache gives the same logits as recomputing the whole sequence.
#[test]
fn cached_decoding_equals_full_forward() {
    for arch in ["llama", "mistral", "qwen2", "qwen3"] {
        let (_, dec) = testkit::load(&testkit::tiny_dir(arch), &DropPlan::new([1], [])).unwrap();
        let seq: Vec<u32> = ids()[0].clone();
        let full = testkit::logits(&dec, std::slice::from_ref(&seq)).unwrap();
        let vocab = 256;
        let mut cache = dec.new_cache();
        testkit::cached_logits(&dec, &seq[..12], &mut cache, Logits::All).unwrap();
        for (p, &tok) in seq.iter().enumerate().skip(12) {
            let l = testkit::cached_logits(&dec, &[tok], &mut cache, Logits::Last).unwrap();
            let want = &full[p * vocab..(p + 1) * vocab];
            let d = testkit::max_abs_diff(&l, want);
            assert!(d < 1e-4, "{arch} position {p}: |Δ| = {d}");
        }
    }
}

/// Perplexity is exactly reproducible run to run (and with the model reloaded).
#[test]
fn perplexity_is_exactly_reproducible() {
    use llmdrop::eval::{perplexity, PplOptions};
    let ids: Vec<u32> = (0..200).map(|i| (i * 7 + 3) % 256).collect();
    let o = PplOptions {
        seq_len: 64,
        max_windows: None,
        second_half: false,
        bos: None,
    };
    let run = || {
        let (_, dec) = testkit::load(&testkit::tiny_dir("qwen3"), &DropPlan::new([0], [])).unwrap();
        perplexity(&dec, &ids, &o, &mut llmdrop::progress::NoProgress).unwrap()
    };
    let (a, b) = (run(), run());
    assert_eq!(a.nll.to_bits(), b.nll.to_bits());
    assert_eq!((a.windows, a.tokens_scored), (3, 189));
    let half = PplOptions {
        second_half: true,
        ..o
    };
    let (_, dec) = testkit::load(&testkit::tiny_dir("qwen3"), &DropPlan::new([0], [])).unwrap();
    let h = perplexity(&dec, &ids, &half, &mut llmdrop::progress::NoProgress).unwrap();
    assert_eq!(
        h.tokens_scored,
        3 * 31,
        "llama-perplexity scores positions 32..63 of each window"
    );
}

//! Similarities: the default model against a PyTorch implementation of the paper's
//! definition (scripts/fixtures/make_fixtures.py, LLM-Drop's layer_drop_norm=True), and
//! properties on tiny models.

use candle_core::{DType, Device, Tensor};
use llmdrop::calib::{pack, read_documents, PackOptions, TextSource};
use llmdrop::progress::NoProgress;
use llmdrop::score::{score, ScoreOptions};
use llmdrop::strategy::{select, select_iterative, SelectOptions, Strategy};
use llmdrop::{DropPlan, Logits, NoProbe, Probe, Site};
use llmdrop_testkit::{self as testkit, copy_hf_dir_with};
use serde_json::Value;

fn vec_of(v: &Value) -> Vec<f64> {
    serde_json::from_value(v.clone()).unwrap()
}

fn assert_close(name: &str, got: &[f64], want: &[f64], tol: f64) -> f64 {
    assert_eq!(got.len(), want.len(), "{name}: length");
    let mut worst = 0f64;
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let d = (g - w).abs();
        assert!(d <= tol, "{name}[{i}]: {g} vs {w} (|Δ| {d:e})");
        worst = worst.max(d);
    }
    worst
}

/// The PyTorch reference (scripts/fixtures/make_fixtures.py).
fn reference() -> Value {
    let path = testkit::fixtures_dir().join("smollm2/scores.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The reference's calibration blocks, packed from the English text by `src`'s tokenizer.
fn reference_blocks(src: &llmdrop::ModelSource, r: &Value) -> llmdrop::calib::CalibBlocks {
    let tok = src.tokenizer().unwrap();
    let docs = read_documents(&TextSource::new(testkit::english_text_dir().join("docs"))).unwrap();
    let opts = PackOptions {
        seq_len: r["seq_len"].as_u64().unwrap() as usize,
        samples: r["samples"].as_u64().unwrap() as usize,
        shuffle: false,
        seed: 0,
    };
    pack(&docs, &tok, &opts).unwrap()
}

#[test]
fn default_model_similarities_match_pytorch() {
    let r = reference();
    // loaded as `llmdrop score` loads it: hidden states only
    let (src, dec) = testkit::load_scorer(&testkit::default_model()).unwrap();
    let tok = src.tokenizer().unwrap();
    assert_eq!(tok.eos, vec![r["eos"].as_u64().unwrap() as u32]);
    let blocks = reference_blocks(&src, &r);
    assert_eq!(
        blocks.hash,
        r["blocks_sha256"].as_str().unwrap(),
        "calibration blocks differ"
    );

    let t = score(
        &dec,
        &blocks.blocks,
        &ScoreOptions::default(),
        &mut NoProgress,
    )
    .unwrap();
    assert_eq!(t.tokens, r["tokens"].as_u64().unwrap());
    let mut worst = 0f64;
    worst = worst.max(assert_close("block", &t.block, &vec_of(&r["block"]), 1e-4));
    worst = worst.max(assert_close("attn", &t.attn, &vec_of(&r["attn"]), 1e-4));
    worst = worst.max(assert_close("mlp", &t.mlp, &vec_of(&r["mlp"]), 1e-4));
    let cons = t.consecutive.as_ref().unwrap();
    let want: Vec<Vec<f64>> = serde_json::from_value(r["consecutive"].clone()).unwrap();
    for (i, (row, w)) in cons.iter().zip(&want).enumerate() {
        worst = worst.max(assert_close(&format!("consecutive[{i}]"), row, w, 1e-4));
    }
    // S[i][1] is cos(h_i, h_{i+1}) = cos(X_i, Z_i): the block similarity
    let n1: Vec<f64> = cons.iter().map(|row| row[0]).collect();
    assert_close("consecutive n=1 vs block", &n1, &t.block, 1e-6);
    eprintln!("similarities vs PyTorch: max |Δ| = {worst:e}");

    let nores = ScoreOptions {
        residual: false,
        consecutive: false,
    };
    let t2 = score(&dec, &blocks.blocks, &nores, &mut NoProgress).unwrap();
    assert_close(
        "attn (no residual)",
        &t2.attn,
        &vec_of(&r["attn_nores"]),
        1e-4,
    );
    assert_close("mlp (no residual)", &t2.mlp, &vec_of(&r["mlp_nores"]), 1e-4);
    assert!(t2.consecutive.is_none());
}

/// `--dtype bf16-mixed` (bf16 layer matrices, each product's input rounded to bf16, f32
/// elsewhere) against PyTorch's f32 similarities: within bf16's rounding (measured 2.4e-4
/// on 16 x 512 tokens; the bound is 4x that), and the same 8 most redundant attention
/// layers, the paper's drop set.
#[test]
fn default_model_bf16_mixed_similarities_stay_near_pytorch_f32() {
    let r = reference();
    let src = llmdrop::ModelSource::open(&testkit::default_model()).unwrap();
    let dec = src
        .load_decoder_for(
            &DropPlan::empty(),
            llmdrop::Precision::parse("bf16-mixed").unwrap(),
            &Device::Cpu,
            llmdrop::model::Outputs::HiddenStates,
        )
        .unwrap();
    let blocks = reference_blocks(&src, &r);
    let t = score(
        &dec,
        &blocks.blocks,
        &ScoreOptions::default(),
        &mut NoProgress,
    )
    .unwrap();
    let mut worst = 0f64;
    for (name, got) in [("block", &t.block), ("attn", &t.attn), ("mlp", &t.mlp)] {
        worst = worst.max(assert_close(name, got, &vec_of(&r[name]), 1e-3));
    }
    let top = |v: &[f64]| {
        let mut i: Vec<usize> = (0..v.len()).collect();
        i.sort_by(|&a, &b| v[b].total_cmp(&v[a]));
        i.truncate(8);
        i.sort();
        i
    };
    assert_eq!(
        top(&t.attn),
        top(&vec_of(&r["attn"])),
        "the 8 most redundant attention layers"
    );
    eprintln!("bf16-mixed similarities vs PyTorch f32: max |Δ| = {worst:e}");
}

#[test]
fn default_model_hidden_state_decoder_scores_bit_for_bit_as_the_full_one_and_holds_less() {
    let (_, full) = testkit::load(&testkit::default_model(), &DropPlan::empty()).unwrap();
    let (_, lean) = testkit::load_scorer(&testkit::default_model()).unwrap();
    let blocks: Vec<Vec<u32>> = (0..2)
        .map(|b| (0..48).map(|i| (b * 7919 + i * 131) % 49152).collect())
        .collect();
    let a = score(&full, &blocks, &ScoreOptions::default(), &mut NoProgress).unwrap();
    let b = score(&lean, &blocks, &ScoreOptions::default(), &mut NoProgress).unwrap();
    assert_eq!(testkit::score_bits(&a), testkit::score_bits(&b));
    // the Q8_0 embedding table stays in its blocks, and there is no output head
    let f32_table = 49152 * 576 * 4;
    assert!(
        lean.weight_bytes() + f32_table / 2 < full.weight_bytes(),
        "{} vs {}",
        lean.weight_bytes(),
        full.weight_bytes()
    );
    let ids = Tensor::new(vec![blocks[0].clone()], &Device::Cpu).unwrap();
    let err = lean
        .forward(&ids, None, &mut NoProbe, Logits::All)
        .unwrap_err();
    assert!(err.to_string().contains("hidden states only"), "{err}");
}

fn tiny_blocks() -> Vec<Vec<u32>> {
    (0..3)
        .map(|b| {
            (0..16)
                .map(|i| ((i * 31 + b * 7 + 3) % 256) as u32)
                .collect()
        })
        .collect()
}

#[test]
fn zeroed_o_proj_gives_attention_similarity_one_and_ranks_first() {
    let tmp = tempfile::tempdir().unwrap();
    copy_hf_dir_with(&testkit::tiny_dir("llama"), tmp.path(), |name, _, d| {
        Some(if name == "model.layers.2.self_attn.o_proj.weight" {
            vec![0.0; d.len()]
        } else {
            d
        })
    })
    .unwrap();
    let (_, dec) = testkit::load(tmp.path(), &DropPlan::empty()).unwrap();
    let t = score(
        &dec,
        &tiny_blocks(),
        &ScoreOptions::default(),
        &mut NoProgress,
    )
    .unwrap();
    assert!((t.attn[2] - 1.0).abs() < 1e-6, "{}", t.attn[2]);
    assert!(t.attn[0] < 0.999 && t.attn[1] < 0.999, "{:?}", t.attn);
    let plan = select(
        &t,
        Strategy::Attn,
        &SelectOptions {
            n: 1,
            keep_first: 0,
            keep_last: 0,
        },
    )
    .unwrap();
    assert_eq!(plan, DropPlan::new([2], []));
}

/// Collects every X, Y, Z to compute the same means in one batch, in f64.
#[derive(Default)]
struct Collect {
    h: Vec<(usize, Site, Vec<Vec<f64>>)>,
}

impl Probe for Collect {
    fn observe(&mut self, layer: usize, site: Site, h: &Tensor) -> llmdrop::Result<()> {
        let d = h.dim(2)?;
        let rows = h.to_dtype(DType::F64)?.reshape(((), d))?.to_vec2::<f64>()?;
        self.h.push((layer, site, rows));
        Ok(())
    }
}

fn cos(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| x * x).sum::<f64>().sqrt();
    dot / (na * nb)
}

#[test]
fn streaming_scores_equal_batch_computation_and_are_reproducible() {
    let (_, dec) = testkit::load(&testkit::tiny_dir("qwen2"), &DropPlan::new([], [1])).unwrap();
    let blocks = tiny_blocks();
    let t = score(&dec, &blocks, &ScoreOptions::default(), &mut NoProgress).unwrap();
    let again = score(&dec, &blocks, &ScoreOptions::default(), &mut NoProgress).unwrap();
    assert_eq!(t, again, "scores differ between runs");

    // batch: all blocks in one forward pass, all tokens' states kept, means in f64
    let mut c = Collect::default();
    let ids = Tensor::new(blocks.clone(), &Device::Cpu).unwrap();
    dec.forward(&ids, None, &mut c, Logits::None).unwrap();
    let get = |l: usize, s: Site| &c.h.iter().find(|(a, b, _)| *a == l && *b == s).unwrap().2;
    let mean = |a: &Vec<Vec<f64>>, b: &Vec<Vec<f64>>| {
        a.iter().zip(b).map(|(x, y)| cos(x, y)).sum::<f64>() / a.len() as f64
    };
    for l in 0..2 {
        let (x, y, z) = (
            get(l, Site::Input),
            get(l, Site::AfterAttn),
            get(l, Site::AfterMlp),
        );
        assert!((t.attn[l] - mean(x, y)).abs() < 1e-6);
        assert!((t.mlp[l] - mean(y, z)).abs() < 1e-6);
        assert!((t.block[l] - mean(x, z)).abs() < 1e-6);
    }
    assert!(
        (t.mlp[1] - 1.0).abs() < 1e-6,
        "a dropped MLP changes nothing"
    );
    let h0 = get(0, Site::Input);
    let h2 = get(1, Site::AfterMlp);
    let s02 = t.consecutive.as_ref().unwrap()[0][1];
    assert!((s02 - mean(h0, h2)).abs() < 1e-6);
}

#[test]
fn iterative_keeps_the_surviving_sibling_running() {
    let (_, dec) = testkit::load(&testkit::tiny_dir("mistral"), &DropPlan::empty()).unwrap();
    let blocks = tiny_blocks();
    let opts = ScoreOptions::default();
    let mut rescore = |plan: &DropPlan| score(&dec.pruned(plan)?, &blocks, &opts, &mut NoProgress);
    let o = SelectOptions {
        n: 2,
        keep_first: 0,
        keep_last: 0,
    };
    let (plan, tables) = select_iterative(Strategy::Attn, &o, 3, &mut rescore).unwrap();
    assert_eq!(plan.attn.len(), 2);
    assert!(plan.mlp.is_empty());
    // after the first drop, the MLP of that layer still runs: its similarity is not 1
    let first = *select(&tables[0], Strategy::Attn, &SelectOptions { n: 1, ..o })
        .unwrap()
        .attn
        .first()
        .unwrap();
    assert!(plan.attn.contains(&first));
    assert!((tables[1].attn[first] - 1.0).abs() < 1e-6);
    assert!(tables[1].mlp[first] < 0.9999, "{}", tables[1].mlp[first]);
    // and the second step's scores differ from the first's
    assert_ne!(tables[0].mlp, tables[1].mlp);
}

#[test]
fn packing_follows_the_paper_and_checks_sizes() {
    let src = llmdrop::ModelSource::open(&testkit::tiny_dir("llama")).unwrap();
    let tok = src.tokenizer().unwrap();
    let docs = vec!["abc".to_string(), "de".to_string()];
    let o = PackOptions {
        seq_len: 2,
        samples: 3,
        shuffle: false,
        seed: 0,
    };
    // bytes + EOS (id 2 from config.json), no BOS: a b c EOS d e EOS -> [a b] [c EOS] [d e]
    let b = pack(&docs, &tok, &o).unwrap();
    let (a, c, d, e) = (b'a' as u32, b'c' as u32, b'd' as u32, b'e' as u32);
    assert_eq!(b.blocks, vec![vec![a, a + 1], vec![c, 2], vec![d, e]]);
    assert_eq!(b.available, 3);
    let e4 = pack(&docs, &tok, &PackOptions { samples: 4, ..o })
        .unwrap_err()
        .to_string();
    assert!(e4.contains("only 3 blocks"), "{e4}");
    let e_short = pack(
        &docs,
        &tok,
        &PackOptions {
            seq_len: 100,
            samples: 1,
            ..o
        },
    )
    .unwrap_err()
    .to_string();
    assert!(e_short.contains("fewer than one block"), "{e_short}");
    let shuffled = pack(
        &docs,
        &tok,
        &PackOptions {
            samples: 3,
            shuffle: true,
            seed: 1,
            ..o
        },
    )
    .unwrap();
    let mut sorted = shuffled.blocks.clone();
    sorted.sort();
    let mut orig = b.blocks.clone();
    orig.sort();
    assert_eq!(sorted, orig);
}

//! Unit tests of multiple-choice scoring: shared-context scoring equals the full forward.
use candle_core::{DType, Device};

use super::*;
use crate::eval::log_softmax::log_softmax_at;
use crate::{DropPlan, ModelSource};

#[test]
fn stderr_uses_the_sample_deviation() {
    // values 1, 0, 1, 0: mean 0.5, sample variance 1/3, stderr sqrt(1/12)
    assert!((mean_stderr(&[1.0, 0.0, 1.0, 0.0]) - (1.0f64 / 12.0).sqrt()).abs() < 1e-15);
    assert_eq!(mean_stderr(&[1.0]), 0.0);
}

/// Sharing the context's KV cache across a batch of continuations gives the same
/// log-likelihoods as scoring each (context + continuation) in a full forward pass; a
/// context longer than the model's window is cut from the left instead of failing.
#[test]
fn shared_context_scoring_equals_full_forward() {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/tiny/llama"
    );
    let src = ModelSource::open(std::path::Path::new(dir)).unwrap();
    let plan = DropPlan::new([1], []);
    let dec = src.load_decoder(&plan, DType::F32, &Device::Cpu).unwrap();
    let tok = src.tokenizer().unwrap();
    let ex = McExample::shared_context(
        "The quick brown fox jumps over the",
        vec!["lazy dog".into(), "moon".into(), "fence, twice".into()],
        0,
    );
    let got = score_example(&dec, &tok, &ex).unwrap();
    for ((ctx, cont), ll) in ex.requests.iter().zip(&got.loglikelihoods) {
        let (c, k) = encode_pair(&tok, ctx, cont).unwrap();
        let mut all = c.clone();
        all.extend(&k);
        let ids = Tensor::new(&all[..all.len() - 1], &Device::Cpu)
            .and_then(|t| t.unsqueeze(0))
            .unwrap();
        let out = dec.forward(&ids, None, &mut NoProbe, Logits::All).unwrap();
        let rows = out.unwrap().squeeze(0).unwrap().to_vec2::<f32>().unwrap();
        let want: f64 = k
            .iter()
            .enumerate()
            .map(|(j, &t)| log_softmax_at(&rows[c.len() - 1 + j], t as usize))
            .sum();
        assert!((ll - want).abs() < 1e-4, "{cont:?}: {ll} vs {want}");
    }
    // 300 bytes of context with a 256-position model: cut from the left, still scored
    let long = McExample::shared_context(&"word ".repeat(60), vec!["end".into(), "stop".into()], 0);
    let r = score_example(&dec, &tok, &long).unwrap();
    assert!(r.loglikelihoods.iter().all(|l| l.is_finite() && *l < 0.0));
}

/// Examples scored side by side on two threads give the bits of each example scored alone
/// on one thread, in the task's order (contexts of different lengths, so the threads finish
/// out of turn).
#[test]
fn examples_side_by_side_equal_examples_alone() {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/tiny/llama"
    );
    let src = ModelSource::open(std::path::Path::new(dir)).unwrap();
    let dec = src
        .load_decoder(&DropPlan::default(), DType::F32, &Device::Cpu)
        .unwrap();
    let tok = src.tokenizer().unwrap();
    let examples: Vec<McExample> = (0..11)
        .map(|i| {
            McExample::shared_context(
                &"a fox and a dog ".repeat(1 + (i * 7) % 5),
                vec![
                    format!("ran {i} times"),
                    "sat".into(),
                    "jumped over it".into(),
                ],
                i % 3,
            )
        })
        .collect();
    let task = Task {
        name: "side-by-side".into(),
        examples,
    };
    let pool = |n| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .unwrap()
    };
    let alone: Vec<McResult> = pool(1).install(|| {
        task.examples
            .iter()
            .map(|ex| score_example(&dec, &tok, ex).unwrap())
            .collect()
    });
    let (score, together) = pool(2)
        .install(|| evaluate_task(&dec, &tok, &task, &mut crate::progress::NoProgress))
        .unwrap();
    assert_eq!(together.len(), alone.len());
    for (i, (a, b)) in alone.iter().zip(&together).enumerate() {
        let bits = |r: &McResult| {
            r.loglikelihoods
                .iter()
                .map(|x| x.to_bits())
                .collect::<Vec<_>>()
        };
        assert_eq!(bits(a), bits(b), "example {i}");
        assert_eq!(a.greedy, b.greedy, "example {i}");
        assert_eq!((a.pred, a.pred_norm, a.gold), (b.pred, b.pred_norm, b.gold));
    }
    let acc = alone.iter().map(McResult::acc).sum::<f64>() / alone.len() as f64;
    assert_eq!(score.acc, acc);
}

//! The parallel paths (f32 and quantized matrix products split by output panels or rows,
//! threaded activation quantization, prefill attention tiles and decode query heads in
//! parallel, scoring blocks side by side and the probe's per-token work) give what one
//! thread gives. CI runs the suite with one rayon thread, so these tests build their own
//! 2-thread pools.

use candle_core::{DType, Device};
use llmdrop::quant::{Precision, QuantMode};
use llmdrop::{Decoder, DropPlan, Logits, ModelSource};
use llmdrop_testkit as testkit;

/// Logits of a 300-token prompt and of 8 decode steps after it.
fn run(dec: &Decoder) -> Vec<f32> {
    let ids: Vec<u32> = (0..300u32).map(|i| (i * 7919 + 13) % 49152).collect();
    let mut cache = dec.new_cache();
    let mut out = testkit::cached_logits(dec, &ids, &mut cache, Logits::All).unwrap();
    for step in 0..8u32 {
        let next = [step * 101 + 7];
        out.extend(testkit::cached_logits(dec, &next, &mut cache, Logits::Last).unwrap());
    }
    out
}

#[test]
fn two_threads_compute_what_one_does() {
    let src = ModelSource::open(&testkit::default_model()).unwrap();
    for p in [
        Precision::Float(DType::F32),
        Precision::Quant(QuantMode::Native),
    ] {
        let dec = src
            .load_decoder(&DropPlan::empty(), p, &Device::Cpu)
            .unwrap();
        let pool = |n| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build()
                .unwrap()
        };
        let one = pool(1).install(|| run(&dec));
        let two = pool(2).install(|| run(&dec));
        let d = testkit::max_abs_diff(&one, &two);
        eprintln!("{}: 1 vs 2 threads, max |Δlogit| {d:e}", p.name());
        // threads split outputs, never a sum: the arithmetic of every value is the same
        assert_eq!(d, 0.0, "{}: 1 vs 2 threads differ", p.name());
    }
}

#[test]
fn two_threads_score_what_one_does() {
    // blocks run side by side (two at once, then the third alone, whose kernels split
    // across the threads instead), each into a probe of its own added in block order
    use llmdrop::progress::NoProgress;
    use llmdrop::score::{score, ScoreOptions};
    let src = ModelSource::open(&testkit::default_model()).unwrap();
    let dec = src
        .load_decoder(&DropPlan::empty(), DType::F32, &Device::Cpu)
        .unwrap();
    let blocks: Vec<Vec<u32>> = (0..3u32)
        .map(|b| {
            (0..200u32)
                .map(|i| (b * 104_729 + i * 7919 + 13) % 49152)
                .collect()
        })
        .collect();
    let bits = |threads: usize| -> Vec<u64> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let t = pool
            .install(|| score(&dec, &blocks, &ScoreOptions::default(), &mut NoProgress))
            .unwrap();
        testkit::score_bits(&t)
    };
    assert_eq!(bits(1), bits(2), "1 vs 2 threads score differently");
}

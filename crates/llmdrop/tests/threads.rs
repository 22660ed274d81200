//! The parallel paths (quantized matmul rows split across threads, threaded activation
//! quantization, query heads of a decode step in parallel, dense decode products split in
//! halves) give what one thread gives. CI runs the suite with one rayon thread, so this
//! test builds its own 2-thread pool.

use candle_core::{DType, Device, Tensor};
use llmdrop::quant::{Precision, QuantMode};
use llmdrop::testkit;
use llmdrop::{Decoder, DropPlan, Logits, ModelSource, NoProbe};

/// Logits of a 300-token prompt and of 8 decode steps after it.
fn run(dec: &Decoder) -> Vec<f32> {
    let ids: Vec<u32> = (0..300u32).map(|i| (i * 7919 + 13) % 49152).collect();
    let mut cache = dec.new_cache();
    let t = Tensor::new(ids.as_slice(), &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let mut out = dec
        .forward(&t, Some(&mut cache), &mut NoProbe, Logits::All)
        .unwrap()
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    for step in 0..8u32 {
        let t = Tensor::new(&[[step * 101 + 7]], &Device::Cpu).unwrap();
        let l = dec
            .forward(&t, Some(&mut cache), &mut NoProbe, Logits::Last)
            .unwrap()
            .unwrap();
        out.extend(l.flatten_all().unwrap().to_vec1::<f32>().unwrap());
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

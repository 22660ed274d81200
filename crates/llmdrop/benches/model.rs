//! Benchmarks of the library above the kernels, so regressions show:
//! `cargo bench -p llmdrop --bench model`. The similarity probe's row cosines, and — when
//! the default model is cached — a full prefill and a decode step, f32 and quantized.
//! The kernels' own micro-benchmarks are `cargo bench -p llmdrop-kernels`.
//! Prints the median of several runs; set RAYON_NUM_THREADS to fix the thread count.

use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use llmdrop::quant::{Precision, QuantMode};
use llmdrop::score::cosine::Rows;
use llmdrop::{DropPlan, Logits, ModelSource, NoProbe};

fn median_secs(reps: usize, mut f: impl FnMut()) -> f64 {
    f(); // warm-up
    let mut v: Vec<f64> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .collect();
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() -> llmdrop::Result<()> {
    // as the CLI does: candle's spinning elementwise pool off (see llmdrop-cli's main)
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
    let dev = Device::Cpu;
    println!("threads {}", candle_core::utils::get_num_threads());
    let a = Tensor::randn(0f32, 1.0, (512, 576), &dev)?;
    let b = Tensor::randn(0f32, 1.0, (512, 576), &dev)?;
    let s = median_secs(20, || {
        let (ra, rb) = (Rows::new(&a).expect("rows"), Rows::new(&b).expect("rows"));
        let _ = ra.cosines(&rb);
    });
    println!("probe row cosines 512x576              {:>9.3} ms", s * 1e3);

    match llmdrop::assets::default_model() {
        Ok(path) => {
            let src = ModelSource::open(&path)?;
            for p in [
                Precision::Float(DType::F32),
                Precision::Quant(QuantMode::Native),
            ] {
                model_benches(&src, p, &dev)?;
            }
        }
        Err(e) => println!("default model not cached ({e}): skipping the model benchmarks"),
    }
    Ok(())
}

fn model_benches(src: &ModelSource, p: Precision, dev: &Device) -> llmdrop::Result<()> {
    let name = p.name();
    let dec = src.load_decoder(&DropPlan::empty(), p, dev)?;
    let s = prefill_secs(&dec, 512, dev)?;
    let gflops = llmdrop::bench::forward_flops(&dec, 512) / s / 1e9;
    println!(
        "default model {name:<6} prefill 512 (no lm_head)    {:>9.1} ms {gflops:>7.1} GFLOP/s",
        s * 1e3
    );
    println!(
        "default model {name:<6} decode step after 512      {:>9.2} ms",
        decode_step_secs(&dec, 512, dev)? * 1e3
    );
    // attention alone: every MLP dropped, so what remains is the 30 attention layers
    // (projections, RoPE, scores, softmax, KV cache)
    let layers = dec.config().num_layers;
    let attn = dec.pruned(&DropPlan::new([], 0..layers))?;
    for t in [512, 2048] {
        let s = prefill_secs(&attn, t, dev)?;
        println!(
            "attention only {name:<6} prefill {t:<5}            {:>9.1} ms {:>7.1} tok/s",
            s * 1e3,
            t as f64 / s
        );
    }
    println!(
        "attention only {name:<6} decode step after 2048    {:>9.2} ms",
        decode_step_secs(&attn, 2048, dev)? * 1e3
    );
    Ok(())
}

fn prompt(t: usize, dev: &Device) -> llmdrop::Result<Tensor> {
    let ids: Vec<u32> = (0..t as u32).map(|i| (i * 7919 + 13) % 49152).collect();
    Ok(Tensor::new(ids.as_slice(), dev)?.unsqueeze(0)?)
}

/// Median seconds of a `t`-token forward pass without logits.
fn prefill_secs(dec: &llmdrop::Decoder, t: usize, dev: &Device) -> llmdrop::Result<f64> {
    let input = prompt(t, dev)?;
    Ok(median_secs(3, || {
        dec.forward(&input, None, &mut NoProbe, Logits::None)
            .expect("forward");
    }))
}

/// Median seconds of one decode step after a `t`-token prompt (each step a fresh copy of
/// the prompt's cache, so every step sees the same context).
fn decode_step_secs(dec: &llmdrop::Decoder, t: usize, dev: &Device) -> llmdrop::Result<f64> {
    let mut cache = dec.new_cache();
    dec.forward(
        &prompt(t, dev)?,
        Some(&mut cache),
        &mut NoProbe,
        Logits::Last,
    )?;
    let one = Tensor::new(&[[42u32]], dev)?;
    let mut times = Vec::new();
    for _ in 0..21 {
        let mut c = cache.clone();
        let t0 = Instant::now();
        dec.forward(&one, Some(&mut c), &mut NoProbe, Logits::Last)?;
        times.push(t0.elapsed().as_secs_f64());
    }
    times.sort_by(|a, b| a.total_cmp(b));
    Ok(times[times.len() / 2])
}

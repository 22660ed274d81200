//! Micro-benchmarks of the hot kernels, so regressions show: `cargo bench -p llmdrop`.
//! Matmul shapes of the default model (prefill m = 512, decode m = 1), the similarity probe's
//! row cosines, and — when the default model is cached — a full prefill and a decode step.
//! Prints the median of several runs; set RAYON_NUM_THREADS to fix the thread count.

use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use llmdrop::kernels::quant::{matmul, QKind, QMatrix};
use llmdrop::kernels::{caps, gemm, Kernel};
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
    // SmolLM2-135M shapes: q/o 576x576, k/v 192x576, gate/up 1536x576, down 576x1536, lm_head 49152x576
    for (m, k, n, what) in [
        (512, 576, 576, "q/o proj"),
        (512, 576, 192, "k/v proj"),
        (512, 576, 1536, "gate/up"),
        (512, 1536, 576, "down"),
        (1, 576, 1536, "gate/up (decode)"),
        (1, 1536, 576, "down (decode)"),
        (1, 576, 49152, "lm_head (decode)"),
    ] {
        let x = Tensor::randn(0f32, 1.0, (m, k), &dev)?;
        let w = Tensor::randn(0f32, 1.0, (n, k), &dev)?; // HF layout [out, in]
        let s = median_secs(20, || {
            let _ = x.matmul(&w.t().expect("2d")).expect("matmul");
        });
        let gflops = 2.0 * (m * k * n) as f64 / s / 1e9;
        println!(
            "matmul {m:>4}x{k}x{n:<6} {what:<18} {:>9.3} ms {gflops:>7.1} GFLOP/s (candle)",
            s * 1e3
        );
        if caps().avx512f() {
            let p = gemm::PackedMatrix::pack(&w.flatten_all()?.to_vec1::<f32>()?, n, k);
            let xs = x.flatten_all()?.to_vec1::<f32>()?;
            let s = median_secs(20, || {
                let _ = gemm::matmul(&p, &xs, Kernel::Auto);
            });
            let gflops = 2.0 * (m * k * n) as f64 / s / 1e9;
            println!(
                "matmul {m:>4}x{k}x{n:<6} {what:<18} {:>9.3} ms {gflops:>7.1} GFLOP/s (packed avx512)",
                s * 1e3
            );
        }
    }
    // gate and up with SiLU: two products and a SiLU pass vs one gated product
    if caps().avx512f() {
        for m in [512, 1] {
            let (k, n) = (576, 1536);
            let xs: Vec<f32> = (0..m * k)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0)
                .collect();
            let wg: Vec<f32> = (0..n * k)
                .map(|i| ((i * 53 % 97) as f32 - 48.0) / 480.0)
                .collect();
            let wu: Vec<f32> = (0..n * k)
                .map(|i| ((i * 29 % 89) as f32 - 44.0) / 440.0)
                .collect();
            let (g, u) = (
                gemm::PackedMatrix::pack(&wg, n, k),
                gemm::PackedMatrix::pack(&wu, n, k),
            );
            let pair = gemm::GatedPair::new(&g, &u);
            let separate = median_secs(20, || {
                let (a, b) = (
                    gemm::matmul(&g, &xs, Kernel::Auto),
                    gemm::matmul(&u, &xs, Kernel::Auto),
                );
                let mut h = vec![0f32; m * n];
                llmdrop::kernels::vexp::silu_mul_slices(&a, &b, &mut h);
            });
            let paired = median_secs(20, || {
                let _ = pair.product(&xs, Kernel::Auto);
            });
            let gf = |s: f64| 4.0 * (m * k * n) as f64 / s / 1e9;
            println!(
                "gate+up+SiLU {m:>4}x{k}x{n}  separate {:>7.3} ms {:>6.1} GFLOP/s, gated pair {:>7.3} ms {:>6.1} GFLOP/s",
                separate * 1e3,
                gf(separate),
                paired * 1e3,
                gf(paired)
            );
        }
    }
    // the same shapes through the quantized kernels (activations quantized inside)
    println!("quantized kernel: {}", Kernel::Auto.quant_name());
    for (m, k, n, what) in [
        (512, 576, 1536, "gate/up"),
        (1, 576, 576, "q/o proj (decode)"),
        (1, 576, 1536, "gate/up (decode)"),
        (1, 1536, 576, "down (decode)"),
        (1, 576, 49152, "lm_head (decode)"),
    ] {
        let x: Vec<f32> = (0..m * k)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0)
            .collect();
        let w: Vec<f32> = (0..n * k)
            .map(|i| ((i * 53 % 97) as f32 - 48.0) / 48.0)
            .collect();
        for kind in [QKind::Q4, QKind::Q8] {
            let q = QMatrix::quantize(kind, &w, n, k)?;
            let s = median_secs(20, || {
                let _ = matmul(&q, &x, Kernel::Auto);
            });
            let gops = 2.0 * (m * k * n) as f64 / s / 1e9;
            let gbs = q.bytes() as f64 / s / 1e9;
            println!(
                "{kind:?} {m:>4}x{k}x{n:<6} {what:<18} {:>9.3} ms {gops:>7.1} GOP/s {gbs:>6.1} GB/s of weights",
                s * 1e3
            );
        }
    }
    let a = Tensor::randn(0f32, 1.0, (512, 576), &dev)?;
    let b = Tensor::randn(0f32, 1.0, (512, 576), &dev)?;
    let s = median_secs(20, || {
        let (ra, rb) = (Rows::new(&a).expect("rows"), Rows::new(&b).expect("rows"));
        let _ = ra.cosines(&rb);
    });
    println!("probe row cosines 512x576              {:>9.3} ms", s * 1e3);
    // the consecutive matrix of one 512-token block: 31 unit hidden states, all pairs
    let (n, len) = (31, 512 * 576);
    let units: Vec<f32> = (0..n * len)
        .map(|i| ((i * 7919) % 1013) as f32 / 506.0 - 1.0)
        .collect();
    let s = median_secs(5, || {
        let _ = llmdrop::kernels::gram::gram(&units, n, len);
    });
    println!("probe gram 31 x (512x576)              {:>9.3} ms", s * 1e3);

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

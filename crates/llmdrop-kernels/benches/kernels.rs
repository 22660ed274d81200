//! Micro-benchmarks of the hot kernels, so regressions show: `cargo bench -p llmdrop-kernels`.
//! Matmul shapes of the default model (prefill m = 512, decode m = 1), f32 packed, bf16
//! (AVX-512 BF16, against the f32 kernel in the same run, with the CPU's f32 FMA limit) and
//! quantized, against candle's; both f32 kernel calls on a product in cache and prefill
//! attention in both (GFLOP/s next to the FMA limit); softmax's exp against libm's; a
//! decode step's attention; and the consecutive matrix's Gram product. The probe's row
//! cosines and the whole-model figures are `cargo bench -p llmdrop --bench model`.
//! Prints the median of several runs; set RAYON_NUM_THREADS to fix the thread count.

use std::time::Instant;

use candle_core::{Device, Tensor};
use llmdrop_kernels::gemm::bf16::Order;
use llmdrop_kernels::quant::{matmul, QKind, QMatrix};
use llmdrop_kernels::{caps, gemm, Kernel};

use llmdrop_kernels::gemm::tune::activations;

/// `len` weight-like values in [-0.1, 0.1], the same in every run (the probe's first matrix).
fn weights(len: usize) -> Vec<f32> {
    gemm::tune::weights(len, 0)
}

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

/// The fastest of `reps` runs of `f` and of `g`, run in turn so that both see the same
/// machine: on a shared machine other load only ever slows a run, so the best run is the
/// kernel's speed and the ratio of the two compares like with like.
fn best_of_alternating(reps: usize, mut f: impl FnMut(), mut g: impl FnMut()) -> (f64, f64) {
    f();
    g(); // warm-up
    let time = |h: &mut dyn FnMut()| {
        let t = Instant::now();
        h();
        t.elapsed().as_secs_f64()
    };
    (0..reps).fold((f64::MAX, f64::MAX), |(a, b), _| {
        (a.min(time(&mut f)), b.min(time(&mut g)))
    })
}

/// The CPU's model name, as `lscpu` shows it.
fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
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
            let xs = activations(m * k);
            let wg = weights(n * k);
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
                llmdrop_kernels::vexp::silu_mul_slices(&a, &b, &mut h);
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
    // bf16 weights, activations rounded to bf16 inside, f32 sums: against the f32 kernel,
    // the best of 30 runs each, taken in turn
    println!(
        "cpu {}; bf16 kernel: {}; f32 FMA limit {:.1} GFLOP/s, bf16 limit {} on {} thread(s)",
        cpu_model(),
        Kernel::Auto.bf16_name(),
        llmdrop_kernels::peak::fma_peak_gflops(5_000_000, 20),
        llmdrop_kernels::peak::bf16_peak_gflops(5_000_000, 20)
            .map_or("none".into(), |p| format!("{p:.1} GFLOP/s")),
        rayon::current_num_threads()
    );
    if caps().avx512f() && caps().avx512_bf16() {
        for (m, k, n, what) in [
            (512, 576, 576, "q/o proj"),
            (512, 576, 1536, "gate/up"),
            (512, 1536, 576, "down"),
            (1, 576, 1536, "gate/up (decode)"),
            (1, 1536, 576, "down (decode)"),
            (512, 4096, 14336, "8B gate/up"),
        ] {
            let x = activations(m * k);
            let w = weights(n * k);
            let p = gemm::PackedMatrix::pack(&w, n, k);
            let b = gemm::bf16::Bf16Matrix::from_f32(&w, n, k)?;
            let reps = if k * n > 1 << 24 { 5 } else { 30 };
            let (f32_s, bf16_s) = best_of_alternating(
                reps,
                || {
                    let _ = gemm::matmul(&p, &x, Kernel::Auto);
                },
                || {
                    let _ = gemm::bf16::matmul(&b, &x, Kernel::Auto);
                },
            );
            let gf = |s: f64| 2.0 * (m * k * n) as f64 / s / 1e9;
            // on AMX the chain order's kernel (vdpbf16ps) too, for comparison
            let chain = caps().amx_bf16().then(|| {
                let s = median_secs(reps, || {
                    let _ = gemm::bf16::matmul_in(&b, &x, Kernel::Auto, Order::Chain);
                });
                format!(", avx512-bf16 chain {:>6.1} GFLOP/s", gf(s))
            });
            println!(
                "matmul {m:>4}x{k}x{n:<6} {what:<18} f32 {:>7.3} ms {:>6.1} GFLOP/s, bf16 {:>7.3} ms {:>6.1} GFLOP/s, bf16/f32 {:.2}x{}",
                f32_s * 1e3,
                gf(f32_s),
                bf16_s * 1e3,
                gf(bf16_s),
                f32_s / bf16_s,
                chain.unwrap_or_default()
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
        let x = activations(m * k);
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
    // both f32 kernel calls on one product kept in cache (the weights of one panel pair
    // stay in L2 across the rows): the kernel's own ceiling on this machine, next to the
    // limit, whichever call the machine chose (a slip in either call shows here)
    if caps().avx512f() {
        use gemm::{Blocking, Shape};
        let (m, k, n) = (516, 576, 64);
        let x = activations(m * k);
        let w = weights(n * k);
        let w = gemm::PackedMatrix::pack(&w, n, k);
        let run = |shape: Shape| {
            let b = Blocking {
                shape,
                ..Blocking::get()
            };
            for _ in 0..8 {
                std::hint::black_box(gemm::matmul_blocked(&w, &x, Kernel::Auto, b));
            }
        };
        let (a, b) = best_of_alternating(100, || run(Shape::Rows12), || run(Shape::Rows6));
        let limit = llmdrop_kernels::peak::fma_peak_gflops(5_000_000, 20);
        let gflops = |s: f64| 8.0 * 2.0 * (m * k * n) as f64 / s / 1e9;
        println!(
            "f32 kernel in cache {m}x{k}x{n}: 12x1 calls {:.1} GFLOP/s ({:.0}%), 6x2 calls {:.1} GFLOP/s ({:.0}%) of the FMA limit {limit:.1}; this machine runs {} ({:?})",
            gflops(a),
            100.0 * gflops(a) / limit,
            gflops(b),
            100.0 * gflops(b) / limit,
            Blocking::get().shape.name(),
            Blocking::chosen().1
        );
    }
    // prefill attention at the default model's shape (9 query heads on 3 kv heads of 64,
    // 512 causal positions): both kernel calls in turn, GFLOP/s over the causal triangle
    // (QKᵀ and PV, 2 FLOPs a multiply-add) next to the FMA limit
    if caps().avx512f() {
        use llmdrop_kernels::attention::{prefill_attention_with, Visibility};
        use llmdrop_kernels::gemm::Shape;
        let (t, d) = (512, 64);
        let vals = |n: usize, m: usize| -> Vec<f32> {
            (0..n)
                .map(|i| ((i * m % 997) as f32 - 498.0) / 4980.0)
                .collect()
        };
        let q = Tensor::from_vec(vals(9 * t * d, 31), (1, 9, t, d), &dev)?;
        let k = Tensor::from_vec(vals(3 * t * d, 37), (1, 3, t, d), &dev)?;
        let v = Tensor::from_vec(vals(3 * t * d, 41), (1, 3, t, d), &dev)?;
        let vis = Visibility {
            offset: 0,
            causal: true,
            window: None,
        };
        let run = |call| {
            let _ = prefill_attention_with(&q, &k, &v, vis, Kernel::Auto, call);
        };
        let (a, b) = best_of_alternating(30, || run(Shape::Rows12), || run(Shape::Rows6));
        let flops = 2.0 * 2.0 * (t * (t + 1) / 2) as f64 * (9 * d) as f64;
        let limit = llmdrop_kernels::peak::fma_peak_gflops(5_000_000, 20);
        for (name, s) in [("12x1", a), ("6x2", b)] {
            println!(
                "prefill attention 9/3 heads x 64, 512 causal, {name:>4} calls: {:>7.1} us {:>6.1} GFLOP/s ({:.0}% of the f32 FMA limit {limit:.1})",
                s * 1e6,
                flops / s / 1e9,
                100.0 * flops / s / 1e9 / limit
            );
        }
    }
    // a decode step's attention at the default model's shape (9 query heads on 3 kv
    // heads of 64), over a cache of `depth` positions: the AVX-512 path against the plain
    // loops (scalar lane sums, libm's exp), alternating
    for depth in [128, 512, 2048] {
        let dev = Device::Cpu;
        let vals = |n: usize, m: usize| -> Vec<f32> {
            (0..n)
                .map(|i| ((i * m % 997) as f32 - 498.0) / 498.0)
                .collect()
        };
        let q = Tensor::from_vec(vals(9 * 64, 31), (1, 9, 1, 64), &dev)?;
        let k = Tensor::from_vec(vals(3 * depth * 64, 37), (1, 3, depth, 64), &dev)?;
        let v = Tensor::from_vec(vals(3 * depth * 64, 41), (1, 3, depth, 64), &dev)?;
        let run = |kernel| {
            let _ = llmdrop_kernels::attention::decode_attention(&q, &k, &v, 0, kernel);
        };
        let (fast, plain) =
            best_of_alternating(200, || run(Kernel::Auto), || run(Kernel::Portable));
        println!(
            "decode attention 9/3 heads x 64, depth {depth:>4}: {:>7.1} us, plain loops {:>7.1} us, {:.2}x",
            fast * 1e6,
            plain * 1e6,
            plain / fast
        );
    }
    // softmax's exp over a prefill attention's score rows (one row per query, as long as
    // the keys it sees): the AVX-512 path against libm's exp, alternating, per value
    for len in [64, 512] {
        let rows = (1 << 15) / len;
        let scores: Vec<f32> = (0..rows * len)
            .map(|i| ((i * 31 % 997) as f32 - 498.0) / 100.0)
            .collect();
        let run = |work: &mut Vec<f32>, f: fn(&mut [f32]) -> f32| {
            work.copy_from_slice(&scores);
            let sum: f32 = work.chunks_exact_mut(len).map(f).sum();
            std::hint::black_box(sum);
        };
        let (mut a, mut b) = (scores.clone(), scores.clone());
        let copy = best_of_alternating(200, || run(&mut a, |_| 0.0), || run(&mut b, |_| 0.0)).0;
        let (fast, plain) = best_of_alternating(
            200,
            || run(&mut a, llmdrop_kernels::vexp::exp_shifted),
            || run(&mut b, llmdrop_kernels::vexp::exp_shifted_portable),
        );
        let per = |s: f64| (s - copy).max(0.0) * 1e9 / (rows * len) as f64;
        println!(
            "softmax exp, rows of {len:>3}: {:>6.3} ns a value, libm {:>6.3} ns, {:.1}x",
            per(fast),
            per(plain),
            per(plain) / per(fast)
        );
    }
    // the consecutive matrix of one 512-token block: 31 unit hidden states, all pairs
    let (n, len) = (31, 512 * 576);
    let units: Vec<f32> = (0..n * len)
        .map(|i| ((i * 7919) % 1013) as f32 / 506.0 - 1.0)
        .collect();
    let s = median_secs(5, || {
        let _ = llmdrop_kernels::gram::gram(&units, n, len);
    });
    println!("probe gram 31 x (512x576)              {:>9.3} ms", s * 1e3);

    Ok(())
}

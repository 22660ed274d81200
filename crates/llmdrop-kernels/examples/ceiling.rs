//! What this core gives the f32 kernel's instructions, beside the FMA limit: the 6x2
//! call's exact mix per input step (4 weight loads from two panels, 6 broadcasts from six
//! rows, 24 multiply-adds into 24 registers) looped on data in L1, then the product
//! itself on a problem that fits L1 and on one whose weights stream from L2 (row tiles
//! over a panel pair, as in a forward pass). The four alternate in one process over
//! ROUNDS rounds on one core; medians: `cargo run --release -p llmdrop-kernels --example
//! ceiling [ROUNDS]`. On hosts whose speed drifts, the loop's share of the limit says how much of
//! a product's gap is the host's (the same instructions with nothing to wait for) and how
//! much the kernel's.

use std::time::Instant;

use llmdrop_kernels::gemm::{self, Blocking, PackedMatrix};
use llmdrop_kernels::machine::Machine;
use llmdrop_kernels::Kernel;

/// Input steps per pass of the loop: two panels of 32 weights each, 32 KiB in all.
const STEPS: usize = 128;
/// Row stride of the loop's activations (the default model's width).
const LDA: usize = 576;

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(7);
    if !llmdrop_kernels::caps().avx512f() {
        println!("no AVX-512 F here: the loop is the AVX-512 kernel's mix");
        return;
    }
    println!("machine: {}", Machine::detect().summary());
    // one core: the limit, the loop and the products alike
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("a one-thread pool");
    pool.install(|| measure(rounds));
}

fn measure(rounds: usize) {
    let mut limit = Vec::new();
    let mut cases: Vec<(&str, Vec<f64>)> = [
        "6x2 mix, in L1 ",
        "product in L1 ",
        "product, weights in L2",
    ]
    .iter()
    .map(|&n| (n, Vec::new()))
    .collect();
    let a = vec![0.5f32; LDA * 6];
    let b = vec![1e-3f32; 2 * 32 * STEPS];
    let in_l1 = Product::new(24, 128, 64);
    let in_l2 = Product::new(1032, 576, 64);
    for _ in 0..rounds {
        limit.push(llmdrop_kernels::peak::fma_peak_gflops(2_000_000, 5));
        let passes = 20_000;
        let t = Instant::now();
        // SAFETY: AVX-512 F checked above; `a` holds 6 rows of LDA values, `b` two panels
        // of STEPS x 32
        let s = unsafe { mix(&a, &b, passes) };
        std::hint::black_box(s);
        let flops = 2.0 * 6.0 * 64.0 * (STEPS * passes) as f64;
        cases[0].1.push(flops / t.elapsed().as_secs_f64() / 1e9);
        cases[1].1.push(in_l1.gflops(3e8));
        cases[2].1.push(in_l2.gflops(1e9));
    }
    let lim = median(&mut limit);
    println!("f32 FMA limit {lim:.1} GFLOP/s per core (median of {rounds} rounds)");
    for (name, v) in &mut cases {
        let g = median(v);
        println!(
            "{name:<24} {g:7.1} GFLOP/s  {:5.1}% of the limit",
            100.0 * g / lim
        );
    }
}

/// `passes` passes of STEPS input steps of the 6x2 call's mix; returns a sum of the
/// results (so that nothing is optimised away).
///
/// # Safety
/// The CPU must have AVX-512 F; `a` must hold 6 rows of [`LDA`] values and `b` two
/// panels of `STEPS * 32` values.
#[target_feature(enable = "avx512f")]
unsafe fn mix(a: &[f32], b: &[f32], passes: usize) -> f32 {
    use std::arch::x86_64::*;
    assert!(a.len() >= 5 * LDA + STEPS && b.len() >= 2 * STEPS * 32);
    let stride = STEPS * 32;
    let mut total = _mm512_setzero_ps();
    for _ in 0..passes {
        let mut acc = [[_mm512_setzero_ps(); 4]; 6];
        for p in 0..STEPS {
            // SAFETY: p < STEPS: weights p * 32.. of each panel, input p of each row lie
            // in `b` and `a` (asserted above)
            unsafe {
                let (b0, b1) = (b.as_ptr().add(p * 32), b.as_ptr().add(stride + p * 32));
                let w = [
                    _mm512_loadu_ps(b0),
                    _mm512_loadu_ps(b0.add(16)),
                    _mm512_loadu_ps(b1),
                    _mm512_loadu_ps(b1.add(16)),
                ];
                for (r, row) in acc.iter_mut().enumerate() {
                    let x = _mm512_set1_ps(*a.as_ptr().add(r * LDA + p));
                    for (v, w) in row.iter_mut().zip(&w) {
                        *v = _mm512_fmadd_ps(x, *w, *v);
                    }
                }
            }
        }
        for v in acc.iter().flatten() {
            total = _mm512_add_ps(total, *v);
        }
    }
    _mm512_reduce_add_ps(total)
}

/// A product of `m` rows, `k` inputs and `n` outputs, in the chosen blocking.
struct Product {
    w: PackedMatrix,
    x: Vec<f32>,
    flops: f64,
}

impl Product {
    fn new(m: usize, k: usize, n: usize) -> Self {
        let w: Vec<f32> = (0..n * k).map(|i| (i % 97) as f32 / 970.0).collect();
        Self {
            w: PackedMatrix::pack(&w, n, k),
            x: (0..m * k).map(|i| (i % 101) as f32 / 101.0).collect(),
            flops: 2.0 * (m * n * k) as f64,
        }
    }

    /// GFLOP/s over repetitions worth about `work` FLOPs (one warm-up first).
    fn gflops(&self, work: f64) -> f64 {
        let reps = ((work / self.flops) as usize).max(1);
        let run = || gemm::matmul_blocked(&self.w, &self.x, Kernel::Auto, Blocking::get());
        std::hint::black_box(run());
        let t = Instant::now();
        for _ in 0..reps {
            std::hint::black_box(run());
        }
        self.flops * reps as f64 / t.elapsed().as_secs_f64() / 1e9
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

//! What this core gives the f32 kernel's instructions, beside the FMA limit. First a
//! ladder of loops, each with 24 accumulators: on data in L1, the multiply-adds alone,
//! then with the 6x2 call's 6 broadcasts per input step, with its 4 weight loads, with
//! both (the call's exact mix); that mix over a whole input row of the default model's
//! down projection (its two weight panels, 384 KiB, stream from L2); and the mixes of the
//! 12x1 call and of an 8-row x 48-output call for comparison. Then the product itself on
//! a problem that fits L1 and on one whose weights stream from L2 (row tiles over a panel
//! pair, as in a forward pass). All alternate in one process over ROUNDS rounds on one
//! core; medians: `cargo run --release -p llmdrop-kernels --example ceiling [ROUNDS]`.
//! The ladder says which part of an input step costs the FMA units what on this core,
//! and so how much of a product's gap to the limit is the host's (the same instructions
//! with nothing to wait for), how much the L2 stream's and how much the kernel's.

use std::time::Instant;

use llmdrop_kernels::gemm::{self, Blocking, PackedMatrix};
use llmdrop_kernels::machine::Machine;
use llmdrop_kernels::Kernel;

/// Input steps per pass of a ladder loop on data in L1: up to 4 weight vectors a step,
/// 32 KiB in all.
const STEPS: usize = 128;
/// Input steps per pass of the loop whose weights stream from L2 (the default model's
/// intermediate size: a down projection's whole input row).
const LONG: usize = 1536;
/// Row stride of the loops' activations.
const LDA: usize = LONG;
/// Input steps each ladder loop takes in a round (passes of its steps).
const WORK: usize = 12_800_000;

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

/// A loop of the ladder (see [`mix`]).
type Loop = unsafe fn(&[f32], &[f32], usize, usize) -> f64;

/// From the multiply-adds alone to the 6x2 call's whole mix, then that mix with its
/// weights from L2 and the other calls' mixes: what each prints, the loop, its steps.
const LADDER: [(&str, Loop, usize); 7] = [
    ("24 FMAs alone", mix::<6, 4, false, false>, STEPS),
    ("+ 6 broadcasts", mix::<6, 4, false, true>, STEPS),
    ("+ 4 weight loads", mix::<6, 4, true, false>, STEPS),
    ("6x2 call's mix (both)", mix::<6, 4, true, true>, STEPS),
    ("same, weights from L2", mix::<6, 4, true, true>, LONG),
    ("12x1 call's mix", mix::<12, 2, true, true>, STEPS),
    ("8 rows x 48 mix", mix::<8, 3, true, true>, STEPS),
];

fn measure(rounds: usize) {
    let mut limit = Vec::new();
    let mut cases: Vec<(&str, Vec<f64>)> = LADDER
        .iter()
        .map(|l| l.0)
        .chain(["product in L1", "product, weights in L2"])
        .map(|n| (n, Vec::new()))
        .collect();
    let a = vec![0.5f32; LDA * 12];
    // LONG steps of up to 4 weight vectors, from a cache line's start as packed panels
    // are (a load split over two lines costs more)
    let buf = vec![1e-3f32; 4 * 16 * LONG + 16];
    let b = &buf[buf.as_ptr().align_offset(64)..];
    let in_l1 = Product::new(24, 128, 64);
    let in_l2 = Product::new(1032, 576, 64);
    for _ in 0..rounds {
        limit.push(llmdrop_kernels::peak::fma_peak_gflops(2_000_000, 5));
        for ((_, run, steps), (_, got)) in LADDER.iter().zip(&mut cases) {
            let t = Instant::now();
            // SAFETY: AVX-512 F checked by `main`; `a` holds 12 rows of LDA values and
            // `b` LONG steps of 4 vectors (steps <= LONG)
            let flops = unsafe { run(&a, b, *steps, WORK / steps) };
            got.push(flops / t.elapsed().as_secs_f64() / 1e9);
        }
        let n = cases.len();
        cases[n - 2].1.push(in_l1.gflops(3e8));
        cases[n - 1].1.push(in_l2.gflops(1e9));
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

/// `passes` passes of `steps` input steps of `R` rows x `Z` vectors of 16 outputs, into
/// `R * Z` registers; returns the FLOPs done. With `LOAD` each step loads its `Z` weight
/// vectors (else they stay in registers), with `BCAST` it broadcasts each row's input
/// (else the multiply-adds take two weight registers): the loads and broadcasts of a
/// call's step, one at a time.
///
/// # Safety
/// The CPU must have AVX-512 F; `a` must hold `R` rows of [`LDA`] values and `b` `steps *
/// Z * 16` values from a 64-byte boundary; `steps <= LDA`.
#[target_feature(enable = "avx512f")]
unsafe fn mix<const R: usize, const Z: usize, const LOAD: bool, const BCAST: bool>(
    a: &[f32],
    b: &[f32],
    steps: usize,
    passes: usize,
) -> f64 {
    use std::arch::x86_64::*;
    assert!(steps <= LDA && a.len() >= (R - 1) * LDA + steps && b.len() >= steps * Z * 16);
    let mut total = _mm512_setzero_ps();
    // SAFETY: the first Z vectors of `b` (asserted above)
    let mut w: [__m512; Z] = std::array::from_fn(|z| unsafe { _mm512_loadu_ps(&b[z * 16]) });
    for _ in 0..passes {
        let mut acc = [[_mm512_setzero_ps(); Z]; R];
        for p in 0..steps {
            if LOAD {
                for (z, w) in w.iter_mut().enumerate() {
                    // SAFETY: vector z < Z of step p < steps lies in `b` (asserted above)
                    *w = unsafe { _mm512_load_ps(b.as_ptr().add((p * Z + z) * 16)) };
                }
            }
            for (r, row) in acc.iter_mut().enumerate() {
                // SAFETY: input p < steps of row r < R lies in `a` (asserted above)
                let x = BCAST.then(|| _mm512_set1_ps(unsafe { *a.as_ptr().add(r * LDA + p) }));
                for (z, v) in row.iter_mut().enumerate() {
                    let m = x.unwrap_or(w[(z + 1) % Z]);
                    *v = _mm512_fmadd_ps(m, w[z], *v);
                }
            }
        }
        for v in acc.iter().flatten() {
            total = _mm512_add_ps(total, *v);
        }
    }
    std::hint::black_box(_mm512_reduce_add_ps(total));
    2.0 * 16.0 * (R * Z * steps * passes) as f64
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

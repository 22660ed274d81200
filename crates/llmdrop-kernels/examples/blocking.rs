//! Sweeps the f32 kernel's blocking on the default model's and Llama-3.1-8B's prefill shapes
//! and prints GFLOP/s per (call shape, kc, mc) next to the FMA limit, the blocking this
//! machine's caches and vendor choose marked: `cargo run --release -p llmdrop-kernels --example blocking [REPS]
//! [WHAT]` (WHAT: only the shapes whose name contains it, e.g. `8B`). Every blocking gives
//! the same bits (checked here too).

use std::time::Instant;

use llmdrop_kernels::gemm::{self, Blocking, PackedMatrix, Shape};
use llmdrop_kernels::machine::Machine;
use llmdrop_kernels::Kernel;

fn main() {
    let reps: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(15);
    let only = std::env::args().nth(2).unwrap_or_default();
    let chosen = Blocking::get();
    println!("machine: {}", Machine::detect().summary());
    println!(
        "f32 FMA limit {:.1} GFLOP/s on {} thread(s)",
        llmdrop_kernels::peak::fma_peak_gflops(5_000_000, 20),
        rayon::current_num_threads()
    );
    let m = 512;
    for (k, n, what) in [
        (576, 576, "q/o"),
        (576, 3072, "gate+up"),
        (1536, 576, "down"),
        (4096, 4096, "8B q/o"),
        (4096, 14336, "8B gate/up"),
        (14336, 4096, "8B down"),
    ] {
        if !what.contains(&only) {
            continue;
        }
        let x: Vec<f32> = (0..m * k)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0)
            .collect();
        let w: Vec<f32> = (0..n * k)
            .map(|i| ((i * 53 % 97) as f32 - 48.0) / 480.0)
            .collect();
        let p = PackedMatrix::pack(&w, n, k);
        let base = gemm::matmul_blocked(&p, &x, Kernel::Auto, Blocking { kc: k, ..chosen });
        let mut cands = Vec::new();
        for shape in [Shape::Rows12, Shape::Rows6] {
            for kc in [128, 256, 512, 1024, 2048, 4096, k] {
                for mc in [24, 48, 96, 192, 384] {
                    let b = Blocking { kc, mc, shape };
                    if kc <= k && !cands.contains(&b) {
                        cands.push(b);
                    }
                }
            }
        }
        let mine = Blocking {
            kc: chosen.kc.min(k),
            ..chosen
        };
        if !cands.contains(&mine) {
            cands.push(mine);
        }
        let mut best = vec![f64::MAX; cands.len()];
        for _ in 0..reps {
            for (b, t) in cands.iter().zip(best.iter_mut()) {
                let t0 = Instant::now();
                let y = gemm::matmul_blocked(&p, &x, Kernel::Auto, *b);
                *t = t.min(t0.elapsed().as_secs_f64());
                assert!(y == base, "blocking {b:?} changed the bits");
            }
        }
        println!("{m}x{k}x{n} {what}:");
        for (b, t) in cands.iter().zip(&best) {
            println!(
                "  {:>4} kc {:>5} mc {:>4}: {:>6.1} GFLOP/s{}",
                match b.shape {
                    Shape::Rows12 => "12x1",
                    Shape::Rows6 => "6x2",
                },
                b.kc,
                b.mc,
                2.0 * (m * k * n) as f64 / t / 1e9,
                if *b == mine {
                    "  <- this machine's choice"
                } else {
                    ""
                }
            );
        }
    }
}

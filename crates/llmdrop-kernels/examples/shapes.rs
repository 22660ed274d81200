//! The f32 kernel's call shapes ([`Shape`]) and row blocks on the default model's prefill
//! products, with the weights as a forward pass meets them: 30 layers' distinct matrices,
//! each used once per round, so they come from memory rather than from a cache a repeated
//! product keeps warm. The blockings alternate in one process (the same machine for each)
//! and every one is checked to give the same bits: `cargo run --release -p
//! llmdrop-kernels --example shapes [ROUNDS] [POSITIONS]`. Prints median GFLOP/s per
//! blocking next to the FMA limit, and each one's speed relative to the first; the one
//! this machine chooses is marked, and measured also on one matrix used again and again
//! (its weights in cache) in the same rounds: what the forward pass loses to memory.

use std::time::Instant;

use llmdrop_kernels::gemm::{self, tune, Blocking, PackedMatrix, Shape};
use llmdrop_kernels::machine::Machine;
use llmdrop_kernels::Kernel;

const LAYERS: usize = 30;

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(15);
    let (chosen, choice) = Blocking::chosen();
    let peak = llmdrop_kernels::peak::fma_peak_gflops(5_000_000, 20);
    println!("machine: {}", Machine::detect().summary());
    println!(
        "f32 FMA limit {peak:.1} GFLOP/s on {} thread(s); chosen: {chosen:?} ({choice:?})",
        rayon::current_num_threads()
    );
    let m: usize = std::env::args()
        .nth(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(512);
    // each shape with each shape's row block
    let shapes = [Shape::Rows12, Shape::Rows6];
    let calls: Vec<(Shape, usize)> = shapes
        .iter()
        .flat_map(|&s| shapes.map(|r| (s, r.row_block())))
        .collect();
    for (k, n, what) in [
        (576, 576, "q/o"),
        (576, 192, "k/v"),
        (576, 1536, "gate"),
        (1536, 576, "down"),
    ] {
        let x = tune::activations(m * k);
        let ws: Vec<PackedMatrix> = (0..LAYERS)
            .map(|l| PackedMatrix::pack(&tune::weights(n * k, l), n, k))
            .collect();
        let blockings: Vec<Blocking> = calls
            .iter()
            .map(|&(shape, mc)| Blocking {
                shape,
                kc: Blocking::for_l2(Machine::detect().data_cache_bytes(2), shape).kc,
                mc,
            })
            .collect();
        let base = gemm::matmul_blocked(&ws[0], &x, Kernel::Auto, blockings[0]);
        for b in &blockings[1..] {
            let y = gemm::matmul_blocked(&ws[0], &x, Kernel::Auto, *b);
            assert!(y == base, "{b:?} changed the bits");
        }
        let mut times = vec![Vec::new(); blockings.len()];
        // the chosen blocking on one matrix used again and again (its weights in cache):
        // what the call reaches when nothing comes from memory, in the same rounds
        let mut warm = Vec::new();
        for _ in 0..rounds {
            for (b, t) in blockings.iter().zip(times.iter_mut()) {
                for w in &ws {
                    let start = Instant::now();
                    std::hint::black_box(gemm::matmul_blocked(w, &x, Kernel::Auto, *b));
                    t.push(start.elapsed().as_secs_f64());
                }
            }
            for _ in &ws {
                let start = Instant::now();
                std::hint::black_box(gemm::matmul_blocked(&ws[0], &x, Kernel::Auto, chosen));
                warm.push(start.elapsed().as_secs_f64());
            }
        }
        warm.sort_by(f64::total_cmp);
        let medians: Vec<f64> = times
            .iter_mut()
            .map(|t| {
                t.sort_by(f64::total_cmp);
                t[t.len() / 2]
            })
            .collect();
        let flops = 2.0 * (m * k * n) as f64;
        print!("{m}x{k}x{n} {what:<5}");
        for (b, s) in blockings.iter().zip(&medians) {
            let gflops = flops / s / 1e9;
            print!(
                "  {:?}/{} {gflops:.1} GFLOP/s ({:.0}%) {:.3}x{}",
                b.shape,
                b.mc,
                100.0 * gflops / peak,
                medians[0] / s,
                if (b.shape, b.mc) == (chosen.shape, chosen.mc) {
                    " <-"
                } else {
                    ""
                }
            );
        }
        let gflops = flops / warm[warm.len() / 2] / 1e9;
        println!(
            "  | chosen, one matrix in cache: {gflops:.1} GFLOP/s ({:.0}%)",
            100.0 * gflops / peak
        );
    }
}

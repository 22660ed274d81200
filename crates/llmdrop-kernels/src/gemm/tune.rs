//! The f32 call [`Shape`] by measurement: both calls timed once per process on products
//! shaped as a forward pass meets them, on the core that will run them.
//!
//! Which call is faster depends on the core, not on the vendor alone: on an Intel Xeon
//! (family 6 model 167) 6 rows x 2 panels ran products 4-12% faster than 12 rows x 1,
//! on a Zen 5 12 x 1 reached 85% of the FMA limit. A CPU neither was tuned on (another
//! Intel generation, Zen 4's 256-bit halves) gets whichever its own core runs faster.
//! Every shape gives the same bits, so the choice moves only the speed.

use std::time::Instant;

use serde::Serialize;

use super::blocking::{Blocking, Shape};
use super::kernel::matmul_on_this_thread;
use super::packed::PackedMatrix;
use crate::Kernel;

/// Activation rows of a probe product: whole tiles of either call.
const PROBE_ROWS: usize = 240;
/// Inputs and outputs of a probe matrix: the default model's q/o projection.
const PROBE_WIDTH: usize = 576;
// The probe runs inside `Blocking::chosen`'s one-time initialisation, on whichever thread
// asks first (a rayon worker, say): it must not hand work to the pool, where that thread
// could pick up a task that asks for the blocking again and wait on itself. Its products
// stay on the calling thread (`matmul_on_this_thread`); its matrices must be small enough
// that packing them does too.
const _: () = assert!(PROBE_WIDTH * PROBE_WIDTH < super::packed::PARALLEL_PACK);
/// Distinct matrices a round multiplies, 1.3 MiB each: together more than a core's L2,
/// so each product's weights come from farther out, as a forward pass's do.
const PROBE_MATRICES: usize = 4;
/// Rounds of each call, taken in turn; each call's best round counts.
const PROBE_ROUNDS: usize = 3;
/// How much faster a call must be to win: the probe's ratio moved between 1.02x and 1.19x
/// from run to run on an Intel Xeon where forward passes ran 6x2 4-12% faster; closer
/// than this, the vendor's call stays.
pub const MARGIN: f64 = 1.03;

/// How this process's f32 call was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChosenBy {
    /// `LLMDROP_GEMM_TILE` named it.
    Env,
    /// Timed on this core ([`measure`]).
    Measured,
    /// No AVX-512 kernel to time: the vendor's call ([`Shape::for_vendor`]).
    Vendor,
}

/// The f32 blocking this process runs and how its call was chosen, as `bench --json` and
/// `score --json` report it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TileChoice {
    /// `12x1` or `6x2` (rows x panels of 32 outputs).
    pub tile: &'static str,
    pub chosen_by: ChosenBy,
    /// The 12x1 call's time over the 6x2 call's on the probe products (when measured):
    /// above 1, 6x2 was faster.
    pub rows12_over_rows6: Option<f64>,
    /// Inputs per chunk and rows per block ([`Blocking`]).
    pub kc: usize,
    pub mc: usize,
}

/// Times both calls on this thread alone: 3 rounds of each in turn, a round being one
/// product of 240 rows with each of 4 matrices of 576 x 576, with the blocking `for_l2`
/// gives each call. Returns the 12x1 call's best round over the 6x2 call's. ~25 ms on one
/// core of an Intel Xeon.
pub fn measure(kernel: Kernel, l2_bytes: Option<u64>) -> f64 {
    let (m, k) = (PROBE_ROWS, PROBE_WIDTH);
    let x = activations(m * k);
    let weights: Vec<PackedMatrix> = (0..PROBE_MATRICES)
        .map(|l| PackedMatrix::pack(&weights(k * k, l), k, k))
        .collect();
    let calls = [Shape::Rows12, Shape::Rows6].map(|s| Blocking::for_l2(l2_bytes, s));
    let mut best = [f64::INFINITY; 2];
    for _ in 0..PROBE_ROUNDS {
        for (b, best) in calls.iter().zip(&mut best) {
            let start = Instant::now();
            for w in &weights {
                std::hint::black_box(matmul_on_this_thread(w, &x, kernel, *b));
            }
            *best = best.min(start.elapsed().as_secs_f64());
        }
    }
    best[0] / best[1].max(f64::MIN_POSITIVE)
}

/// `len` activations in [-1, 1), the same on every run.
pub fn activations(len: usize) -> Vec<f32> {
    (0..len)
        .map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0)
        .collect()
}

/// `len` weights of matrix number `l`, within ±0.1, the same on every run.
pub fn weights(len: usize, l: usize) -> Vec<f32> {
    (0..len)
        .map(|i| (((i + l) * 53 % 97) as f32 - 48.0) / 480.0)
        .collect()
}

/// The call a [`measure`] ratio (12x1's time over 6x2's) picks: the faster one by more than
/// [`MARGIN`], else `fallback`. A ratio that is no number keeps `fallback`.
pub fn decide(ratio: f64, fallback: Shape) -> Shape {
    if ratio > MARGIN {
        Shape::Rows6
    } else if ratio < 1.0 / MARGIN {
        Shape::Rows12
    } else {
        fallback
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_faster_call_wins_only_by_more_than_the_margin() {
        for fallback in [Shape::Rows12, Shape::Rows6] {
            assert_eq!(decide(1.10, fallback), Shape::Rows6);
            assert_eq!(decide(0.90, fallback), Shape::Rows12);
            assert_eq!(decide(1.0, fallback), fallback);
            assert_eq!(decide(1.02, fallback), fallback);
            assert_eq!(decide(0.98, fallback), fallback);
            assert_eq!(decide(f64::NAN, fallback), fallback);
        }
    }

    #[test]
    fn the_probe_times_both_calls() {
        // only timed where the AVX-512 kernel runs (elsewhere the vendor's call is kept)
        if !crate::caps().avx512f() {
            return;
        }
        let r = measure(Kernel::Auto, Some(2 << 20));
        assert!(r.is_finite() && r > 0.0, "ratio {r}");
    }
}

//! The machine's f32 arithmetic limit: fused multiply-adds on registers only, on every
//! thread of the pool at once. The yardstick for "fraction of the FLOP limit" figures.

use std::time::Instant;

/// Independent accumulators per thread: enough to cover the FMA latency on two pipes.
const CHAINS: usize = 12;

/// f32 GFLOP/s of fused multiply-adds on all threads of the current rayon pool together,
/// at the widest vector width this CPU has (AVX-512, else AVX2+FMA, else scalar), each
/// thread running `iters` steps of `CHAINS` independent FMAs. The best of `reps`: on a
/// shared machine other load only ever lowers a run, and a limit is the most the
/// machine does (so "fraction of the limit" figures err low, never high).
pub fn fma_peak_gflops(iters: usize, reps: usize) -> f64 {
    (0..reps.max(1) + 1)
        .map(|_| {
            let start = Instant::now();
            let flops: f64 = rayon::broadcast(|_| one_thread(iters)).iter().sum();
            flops / start.elapsed().as_secs_f64() / 1e9
        })
        .skip(1) // warm-up: clocks settle
        .fold(0.0, f64::max)
}

/// The bf16 kernels' arithmetic limit, as [`fma_peak_gflops`] measures f32's: GFLOP/s
/// of AMX `tdpbf16ps` on tiles (where [`Caps::amx_bf16`](crate::Caps::amx_bf16)), else of
/// AVX-512 BF16 `vdpbf16ps` on registers (a multiply and an add per input pair half), on
/// every thread of the current rayon pool. `None` on a CPU with neither (the portable
/// kernel has no limit worth quoting). `iters` counts `vdpbf16ps` steps; AMX runs a
/// sixteenth as many (each instruction does 256 times the work of one `vdpbf16ps`).
pub fn bf16_peak_gflops(iters: usize, reps: usize) -> Option<f64> {
    let caps = super::caps();
    if !caps.avx512_bf16() {
        return None;
    }
    let best = (0..reps.max(1) + 1)
        .map(|_| {
            let start = Instant::now();
            let flops: f64 = rayon::broadcast(|_| bf16_one_thread(iters, caps.amx_bf16()))
                .iter()
                .sum();
            flops / start.elapsed().as_secs_f64() / 1e9
        })
        .skip(1)
        .fold(0.0, f64::max);
    Some(best)
}

/// FLOPs done (see [`bf16_peak_gflops`]).
#[cfg(target_arch = "x86_64")]
fn bf16_one_thread(iters: usize, amx: bool) -> f64 {
    if amx {
        // SAFETY: only where `Caps::amx_bf16` holds
        return unsafe { crate::gemm::bf16::amx::peak_steps(iters / 16) };
    }
    // SAFETY: only where `Caps::avx512_bf16` holds (checked by the caller)
    unsafe { crate::gemm::bf16::avx512_peak_steps(iters) }
}

#[cfg(not(target_arch = "x86_64"))]
fn bf16_one_thread(_iters: usize, _amx: bool) -> f64 {
    0.0
}

/// FLOPs done.
fn one_thread(iters: usize) -> f64 {
    #[cfg(target_arch = "x86_64")]
    {
        let caps = super::caps();
        if caps.avx512f() {
            // SAFETY: `Caps::avx512f` checked AVX-512 F and everything it implies
            let s = unsafe { x86::fma512(iters) };
            std::hint::black_box(s);
            return (iters * CHAINS * 16 * 2) as f64;
        }
        if caps.avx2_fma() {
            // SAFETY: `Caps::avx2_fma` checked AVX2, FMA and what they imply
            let s = unsafe { x86::fma256(iters) };
            std::hint::black_box(s);
            return (iters * CHAINS * 8 * 2) as f64;
        }
    }
    let mut acc = [0f32; CHAINS];
    for _ in 0..iters {
        for a in acc.iter_mut() {
            *a = std::hint::black_box(*a).mul_add(1.000_000_1, 1e-7);
        }
    }
    std::hint::black_box(acc);
    (iters * CHAINS * 2) as f64
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::CHAINS;

    /// # Safety
    /// The CPU must have AVX-512 F and what it implies ([`crate::Caps::avx512f`]).
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn fma512(iters: usize) -> f32 {
        let mut a = [_mm512_setzero_ps(); CHAINS];
        let (b, c) = (_mm512_set1_ps(1.000_000_1), _mm512_set1_ps(1e-7));
        for _ in 0..iters {
            for x in a.iter_mut() {
                *x = _mm512_fmadd_ps(*x, b, c);
            }
        }
        a.iter().map(|&x| _mm512_reduce_add_ps(x)).sum()
    }

    /// # Safety
    /// The CPU must have AVX2, FMA and what they imply ([`crate::Caps::avx2_fma`]).
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn fma256(iters: usize) -> f32 {
        let mut a = [_mm256_setzero_ps(); CHAINS];
        let (b, c) = (_mm256_set1_ps(1.000_000_1), _mm256_set1_ps(1e-7));
        for _ in 0..iters {
            for x in a.iter_mut() {
                *x = _mm256_fmadd_ps(*x, b, c);
            }
        }
        let mut out = [0f32; 8];
        let s = a
            .iter()
            .fold(_mm256_setzero_ps(), |s, &x| _mm256_add_ps(s, x));
        // SAFETY: `out` holds the 8 values stored
        unsafe { _mm256_storeu_ps(out.as_mut_ptr(), s) };
        out.iter().sum()
    }
}

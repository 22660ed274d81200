//! The x86-64 kernel: `R` activation rows × `P` panels of 32 outputs, held in 2·`R`·`P`
//! AVX-512 registers, each step one `vdpbf16ps` per register (two inputs of 16 outputs).

use std::arch::x86_64::*;

use super::tile::Tile;
use crate::gemm::avx512::masks;
use crate::gemm::NR;

/// Runs `t` (see [`Tile`]). Panics for rows outside `1..=12`.
///
/// # Safety
/// The CPU must have AVX-512 F and BF16 ([`crate::Caps::avx512_bf16`]); `t` must satisfy
/// [`Tile`]'s contract.
pub(crate) unsafe fn tile(t: &Tile) {
    // SAFETY: the caller's contract; each `run::<R, P>` takes R == rows rows and
    // P <= panels panels
    unsafe {
        match (t.rows, t.panels) {
            (1, 4) => run::<1, 4>(t),
            (1, 2) => run::<1, 2>(t),
            (1, _) => run::<1, 1>(t),
            (2, 2) => run::<2, 2>(t),
            (2, _) => run::<2, 1>(t),
            (3, 2) => run::<3, 2>(t),
            (3, _) => run::<3, 1>(t),
            (4, _) => run::<4, 1>(t),
            (5, _) => run::<5, 1>(t),
            (6, _) => run::<6, 1>(t),
            (7, _) => run::<7, 1>(t),
            (8, _) => run::<8, 1>(t),
            (9, _) => run::<9, 1>(t),
            (10, _) => run::<10, 1>(t),
            (11, _) => run::<11, 1>(t),
            (12, _) => run::<12, 1>(t),
            _ => unreachable!("tiles have 1..=12 rows"),
        }
    }
}

/// 16 lanes of bf16 pairs as the instruction's operand type (same bits).
#[inline(always)]
fn pairs(v: __m512i) -> __m512bh {
    // SAFETY: both are 64-byte vectors of plain integers; every bit pattern is valid
    unsafe { std::mem::transmute::<__m512i, __m512bh>(v) }
}

/// `t` with `R` rows and `P` panels (the first `P` of its panels).
///
/// # Safety
/// As [`tile`], with `R == t.rows` and `P <= t.panels`.
#[target_feature(enable = "avx512bf16,avx512f")]
unsafe fn run<const R: usize, const P: usize>(t: &Tile) {
    debug_assert!(t.rows == R && (P == 1 || t.panels == P));
    // every panel full except possibly a single last one
    let (m0, m1) = masks(t.cols);
    let full = (0xffff, 0xffff);
    let mask = |q: usize| if q + 1 == P { (m0, m1) } else { full };
    let mut acc = [[[_mm512_setzero_ps(); 2]; P]; R];
    if t.load {
        for (r, row) in acc.iter_mut().enumerate() {
            for (q, v) in row.iter_mut().enumerate() {
                let (k0, k1) = mask(q);
                // SAFETY: row r < rows of `c`, outputs q * NR.. of which the masks keep
                // those the contract makes valid (all NR but in the last panel, `cols`)
                unsafe {
                    let c = t.c.add(r * t.ldc + q * NR);
                    v[0] = _mm512_maskz_loadu_ps(k0, c);
                    v[1] = _mm512_maskz_loadu_ps(k1, c.add(16));
                }
            }
        }
    }
    let (mut a, mut b) = (t.a, t.b);
    for _ in 0..t.steps {
        let mut w = [[pairs(_mm512_setzero_si512()); 2]; P];
        for (q, wq) in w.iter_mut().enumerate() {
            // SAFETY: step p < steps of panel q < panels: NR lanes of the steps * NR the
            // contract makes valid at `b + q * stride`
            unsafe {
                let bq = b.add(q * t.stride);
                *wq = [
                    pairs(_mm512_loadu_si512(bq.cast())),
                    pairs(_mm512_loadu_si512(bq.add(16).cast())),
                ];
            }
        }
        for (r, row) in acc.iter_mut().enumerate() {
            // SAFETY: A[r][p] for r < rows, p < steps
            let x = pairs(_mm512_set1_epi32(unsafe { *a.add(r * t.lda) } as i32));
            for (v, wq) in row.iter_mut().zip(&w) {
                v[0] = _mm512_dpbf16_ps(v[0], wq[0], x);
                v[1] = _mm512_dpbf16_ps(v[1], wq[1], x);
            }
        }
        // SAFETY: at most one step past the last lane read, inside (or one past the end
        // of) the same allocation
        unsafe {
            a = a.add(1);
            b = b.add(NR);
        }
    }
    for (r, row) in acc.iter().enumerate() {
        for (q, v) in row.iter().enumerate() {
            let (k0, k1) = mask(q);
            // SAFETY: as for the loads of `c` above
            unsafe {
                let c = t.c.add(r * t.ldc + q * NR);
                _mm512_mask_storeu_ps(c, k0, v[0]);
                _mm512_mask_storeu_ps(c.add(16), k1, v[1]);
            }
        }
    }
}

/// [`super::arith::pairs_into`] compiled for AVX-512 F and BW (the same integer code,
/// vectorized by the compiler: the same bits).
///
/// # Safety
/// The CPU must have AVX-512 F and BW ([`crate::Caps::avx512_bf16`] implies them).
#[target_feature(enable = "avx512f,avx512bw")]
pub(crate) unsafe fn pairs_into(x: &[f32], cols: usize, out: &mut [u32]) {
    super::arith::pairs_into(x, cols, out);
}

/// [`arith::tile_pairs_into`](super::arith::tile_pairs_into) compiled for AVX-512 (the
/// same bits).
///
/// # Safety
/// The CPU must have AVX-512 F and BW ([`crate::Caps::avx512_bf16`] implies them).
#[target_feature(enable = "avx512f,avx512bw")]
pub(crate) unsafe fn tile_pairs_into(
    x: &[f32],
    cols: usize,
    lanes: usize,
    tile: (usize, usize),
    out: &mut [u32],
) {
    super::arith::tile_pairs_into(x, cols, lanes, tile, out);
}

/// Runs `iters` steps of 12 independent `vdpbf16ps`: the FLOPs of
/// [`crate::peak::bf16_peak_gflops`] without AMX.
///
/// # Safety
/// The CPU must have AVX-512 F and BF16 ([`crate::Caps::avx512_bf16`]).
#[target_feature(enable = "avx512bf16,avx512f")]
pub(crate) unsafe fn peak_steps(iters: usize) -> f64 {
    const CHAINS: usize = 12;
    let mut acc = [_mm512_setzero_ps(); CHAINS];
    let (w, x) = (
        pairs(_mm512_set1_epi32(0x3f80_3f80)),
        pairs(_mm512_set1_epi32(0x3300_3300)),
    );
    for _ in 0..iters {
        for a in acc.iter_mut() {
            *a = _mm512_dpbf16_ps(*a, w, x);
        }
    }
    let sum: f32 = acc.iter().map(|&a| _mm512_reduce_add_ps(a)).sum();
    std::hint::black_box(sum);
    (iters * CHAINS * 16 * 2 * 2) as f64
}

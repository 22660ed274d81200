//! The x86-64 kernel: `R` activation rows × `P` panels of 32 outputs, held in 2·`R`·`P`
//! AVX-512 registers.

use std::arch::x86_64::*;

use super::packed::NR;
use super::tile::{Tile, SUM_BLOCK};

/// Runs `t` (see [`Tile`]). Panics for rows outside `1..=12`.
///
/// # Safety
/// The CPU must have AVX-512 F and what it implies ([`crate::Caps::avx512f`]); `t` must
/// satisfy [`Tile`]'s contract.
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
            (4, 2) => run::<4, 2>(t),
            (4, _) => run::<4, 1>(t),
            (5, 2) => run::<5, 2>(t),
            (5, _) => run::<5, 1>(t),
            (6, 2) => run::<6, 2>(t),
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

/// The lanes of the two 16-lane halves that hold one of the first `cols` outputs (a
/// panel of [`NR`](super::NR) = 32 outputs, as the f32 and the bf16 tiles store them).
pub(super) fn masks(cols: usize) -> (__mmask16, __mmask16) {
    let lanes = |n: usize| {
        if n >= 16 {
            0xffff
        } else {
            ((1u32 << n) - 1) as u16
        }
    };
    (lanes(cols), lanes(cols.saturating_sub(16)))
}

/// `t` with `R` rows and `P` panels (the first `P` of its panels).
///
/// # Safety
/// As [`tile`], with `R == t.rows` and `P <= t.panels`.
#[target_feature(enable = "avx512f")]
unsafe fn run<const R: usize, const P: usize>(t: &Tile) {
    debug_assert!(t.rows == R && (P == 1 || t.panels == P));
    // every panel full except possibly a single last one
    let (m0, m1) = masks(t.cols);
    let full = (0xffff, 0xffff);
    let mask = |q: usize| if q + 1 == P { (m0, m1) } else { full };
    // blocks of SUM_BLOCK inputs, each summed from zero and then added to C (stored as it
    // is when C holds nothing yet)
    let mut started = t.load;
    let (mut a, mut b) = (t.a, t.b);
    let mut left = t.kc;
    loop {
        let steps = left.min(SUM_BLOCK);
        if steps == 0 && started {
            break; // nothing to add
        }
        let mut acc = [[[_mm512_setzero_ps(); 2]; P]; R];
        // SAFETY: `a` and `b` point at this block's first input of the tile's rows and
        // panels, `steps` inputs of which the contract makes valid
        unsafe {
            if R <= UNROLLED_ROWS {
                block_unrolled(&mut acc, a, t.lda, b, t.stride, steps);
            } else {
                block(&mut acc, a, t.lda, b, t.stride, steps);
            }
            a = a.add(steps);
            b = b.add(steps * NR);
        }
        for (r, row) in acc.iter().enumerate() {
            for (q, v) in row.iter().enumerate() {
                let (k0, k1) = mask(q);
                // SAFETY: row r < rows of `c`, outputs q * NR.. of which the masks keep
                // those the contract makes valid (all NR but in the last panel, `cols`);
                // read only once written (by an earlier chunk when `load`, or block)
                unsafe {
                    let c = t.c.add(r * t.ldc + q * NR);
                    let (mut v0, mut v1) = (v[0], v[1]);
                    if started {
                        v0 = _mm512_add_ps(_mm512_maskz_loadu_ps(k0, c), v0);
                        v1 = _mm512_add_ps(_mm512_maskz_loadu_ps(k1, c.add(16)), v1);
                    }
                    _mm512_mask_storeu_ps(c, k0, v0);
                    _mm512_mask_storeu_ps(c.add(16), k1, v1);
                }
            }
        }
        started = true;
        left -= steps;
        if left == 0 {
            break;
        }
    }
}

/// Tiles of at most this many rows run [`block_unrolled`]; taller ones [`block`].
const UNROLLED_ROWS: usize = 6;
/// Input steps per round of [`block_unrolled`].
const UNROLL: usize = 4;

/// One input step: `acc[r][q] += x(r) · b[q * stride ..][..NR]` for every row and panel.
///
/// Each row's input is read where it is broadcast (`x(r)`, inlined), not gathered into an
/// array first: with the 12 inputs gathered (next to 24 sums and 2 weight registers) the
/// 12-row call ran at ~0.7x on an Intel Xeon (51-56% of the FMA limit instead of 72-82%,
/// one product repeated in cache, the two builds alternating).
///
/// # Safety
/// `b` and `b + q * stride` (`q < P`) hold [`NR`] values; `x(r)` is row `r`'s input.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn step<const R: usize, const P: usize>(
    acc: &mut [[[__m512; 2]; P]; R],
    x: impl Fn(usize) -> f32,
    b: *const f32,
    stride: usize,
) {
    let mut w = [[_mm512_setzero_ps(); 2]; P];
    for (q, wq) in w.iter_mut().enumerate() {
        // SAFETY: the caller's contract
        unsafe {
            let bq = b.add(q * stride);
            *wq = [_mm512_loadu_ps(bq), _mm512_loadu_ps(bq.add(16))];
        }
    }
    for (r, row) in acc.iter_mut().enumerate() {
        let x = _mm512_set1_ps(x(r));
        for (v, wq) in row.iter_mut().zip(&w) {
            v[0] = _mm512_fmadd_ps(x, wq[0], v[0]);
            v[1] = _mm512_fmadd_ps(x, wq[1], v[1]);
        }
    }
}

/// `steps` input steps into `acc`, one at a time; rows read at `a + r * lda`, panels at
/// `b + q * stride`, both advancing by a step (one input, [`NR`] weights). Tall tiles
/// (12 rows: the Zen 5 call) run this: their row addresses do not fit in registers.
///
/// # Safety
/// `steps` inputs of each of the `R` rows and `steps` steps of each of the `P` panels are
/// valid to read.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn block<const R: usize, const P: usize>(
    acc: &mut [[[__m512; 2]; P]; R],
    mut a: *const f32,
    lda: usize,
    mut b: *const f32,
    stride: usize,
    steps: usize,
) {
    for _ in 0..steps {
        // SAFETY: the caller's contract; the pointers end at most one step past the last
        // value read, inside (or one past the end of) the same allocation
        unsafe {
            // (the closure reads input p of row r < R, valid by the contract)
            step(acc, |r| *a.add(r * lda), b, stride);
            a = a.add(1);
            b = b.add(NR);
        }
    }
}

/// [`block`] for short tiles, [`UNROLL`] steps a round from each row's own address: the
/// loop's address arithmetic falls from ~7 integer instructions per 24 multiply-adds to
/// ~2, which would otherwise take turns on the ports the multiply-adds issue from. 6x2
/// products ran 5-8% faster on an Intel Xeon (`--example shapes`, 1 thread).
///
/// # Safety
/// As [`block`].
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn block_unrolled<const R: usize, const P: usize>(
    acc: &mut [[[__m512; 2]; P]; R],
    a: *const f32,
    lda: usize,
    b: *const f32,
    stride: usize,
    steps: usize,
) {
    // SAFETY: row r < R starts lda · r values after `a` (the caller's contract)
    let rows: [*const f32; R] = std::array::from_fn(|r| unsafe { a.add(r * lda) });
    // input p of row r (step calls it with r < R, and the loops below with p < steps)
    let at = |p: usize| {
        move |r: usize| {
            // SAFETY: input p < steps of row r < R: valid to read by the contract
            unsafe { *rows[r].add(p) }
        }
    };
    let mut p = 0;
    while p + UNROLL <= steps {
        for u in 0..UNROLL {
            // SAFETY: p + u < steps: that input of every row, that step of every panel
            unsafe { step(acc, at(p + u), b.add((p + u) * NR), stride) };
        }
        p += UNROLL;
    }
    while p < steps {
        // SAFETY: as above, p < steps
        unsafe { step(acc, at(p), b.add(p * NR), stride) };
        p += 1;
    }
}

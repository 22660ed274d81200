//! The x86-64 kernel: AVX-512 VNNI `vpdpbusd` on 16 interleaved rows at a time.
//!
//! Per block, each 64-byte load of weight quants is multiplied with 4 activation quants
//! broadcast to all lanes, giving each of the 16 rows a partial dot product in its own
//! i32 lane. Two independent accumulators per activation row hide the instruction's
//! latency; up to 4 activation rows share each weight load.

use std::arch::x86_64::*;

use super::act::QActs;
use super::matrix::{QKind, QMatrix, Scales, BLOCK, ROWS};
use crate::prefetch::prefetch;
#[cfg(doc)]
use crate::Caps;

/// 16 scales of one (group, block) starting at element `at`, as f32.
///
/// # Safety
/// The CPU must have AVX-512 F and what it implies ([`Caps::avx512_vnni`]); `at + 16` must not
/// pass the end of `s`.
#[inline(always)]
unsafe fn scales16(s: &Scales, at: usize) -> __m512 {
    // SAFETY: 16 values from `at` lie in `s` and the CPU has AVX-512 F (the caller's
    // contract)
    unsafe {
        match s {
            Scales::F16(v) => {
                _mm512_cvtph_ps(_mm256_loadu_si256(v.as_ptr().add(at) as *const __m256i))
            }
            Scales::F32(v) => _mm512_loadu_ps(v.as_ptr().add(at)),
        }
    }
}

/// Same contract as [`super::portable::tile`].
///
/// # Safety
/// The CPU must have AVX-512 F, BW, VNNI and what they imply ([`Caps::avx512_vnni`]); `w`'s
/// buffers must hold its groups and blocks ([`QMatrix::assert_layout`]); `g` must be
/// one of `w`'s groups; `a` must have `w.cols()` columns and rows `j0..j0 + mt`, with
/// `mt` in `1..=4` ([`super::matmul`] checks all of these).
pub(crate) unsafe fn tile(
    w: &QMatrix,
    g: usize,
    a: &QActs,
    j0: usize,
    mt: usize,
    out: &mut [[f32; ROWS]; 4],
) {
    // SAFETY: the caller's contract (`q8::<MT>` and `q4::<MT>` take MT <= mt rows)
    unsafe {
        match (w.kind(), mt) {
            (QKind::Q8, 1) => q8::<1>(w, g, a, j0, out),
            (QKind::Q8, 2) => q8::<2>(w, g, a, j0, out),
            (QKind::Q8, 3) => q8::<3>(w, g, a, j0, out),
            (QKind::Q8, _) => q8::<4>(w, g, a, j0, out),
            (QKind::Q4, 1) => q4::<1>(w, g, a, j0, out),
            (QKind::Q4, 2) => q4::<2>(w, g, a, j0, out),
            (QKind::Q4, 3) => q4::<3>(w, g, a, j0, out),
            (QKind::Q4, _) => q4::<4>(w, g, a, j0, out),
        }
    }
}

/// 4 activation quants at `p` as one i32, broadcast to every lane.
///
/// # Safety
/// `p` must be valid for 4 bytes; the CPU must have AVX-512 F ([`Caps::avx512_vnni`]).
#[inline(always)]
unsafe fn bcast4(p: *const i8) -> __m512i {
    // SAFETY: the caller's contract
    unsafe { _mm512_set1_epi32((p as *const i32).read_unaligned()) }
}

/// Rows `j0..j0 + MT` of `a` times group `g` of a Q8 `w`.
///
/// # Safety
/// As [`tile`], with `MT <= mt`.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn q8<const MT: usize>(
    w: &QMatrix,
    g: usize,
    a: &QActs,
    j0: usize,
    out: &mut [[f32; ROWS]; 4],
) {
    let nb = w.blocks();
    let gbb = QKind::Q8.group_block_bytes();
    // SAFETY: group g < groups starts at quant g * nb * gbb and scale g * nb * ROWS of
    // `w`; row j0 of `a` at quant j0 * cols and scale j0 * nb (cols == w.cols(), the
    // caller's contract)
    let (qs, x, xd, xs) = unsafe {
        (
            w.qs.as_ptr().add(g * nb * gbb),
            a.q.as_ptr().add(j0 * a.cols),
            a.d.as_ptr().add(j0 * nb),
            a.s.as_ptr().add(j0 * nb),
        )
    };
    let ds = g * nb * ROWS;
    let mut acc = [_mm512_setzero_ps(); MT];
    for b in 0..nb {
        // SAFETY: block b < nb of group g: its 16 scales lie in `w.d`, its gbb quants in
        // `w.qs` (the caller's contract on `w`'s layout)
        let (dw, p) = unsafe { (scales16(&w.d, ds + b * ROWS), qs.add(b * gbb)) };
        let mut i0 = [_mm512_setzero_si512(); MT];
        let mut i1 = [_mm512_setzero_si512(); MT];
        for step in (0..BLOCK / 4).step_by(2) {
            if MT == 1 {
                prefetch(p.wrapping_add(step * 64), PREFETCH_AHEAD);
                prefetch(p.wrapping_add(step * 64 + 64), PREFETCH_AHEAD);
            }
            // SAFETY: bytes step * 64..(step + 2) * 64 <= gbb of the block
            let (w0, w1) = unsafe {
                (
                    _mm512_loadu_si512(p.add(step * 64) as *const _),
                    _mm512_loadu_si512(p.add(step * 64 + 64) as *const _),
                )
            };
            for j in 0..MT {
                // SAFETY: row j0 + j < rows of `a`, quants b * 32 + step * 4.. (8 of them)
                // within its block
                let (x0, x1) = unsafe {
                    let xp = x.add(j * a.cols + b * BLOCK + step * 4);
                    (bcast4(xp), bcast4(xp.add(4)))
                };
                i0[j] = _mm512_dpbusd_epi32(i0[j], w0, x0);
                i1[j] = _mm512_dpbusd_epi32(i1[j], w1, x1);
            }
        }
        for j in 0..MT {
            let dot = _mm512_cvtepi32_ps(_mm512_add_epi32(i0[j], i1[j]));
            // SAFETY: scale and sum of block b of row j0 + j < rows of `a`
            let (dj, sj) = unsafe { (*xd.add(j * nb + b), *xs.add(j * nb + b)) };
            let dx = _mm512_set1_ps(dj);
            let shift = _mm512_set1_ps(128.0 * sj);
            let t = _mm512_fmsub_ps(dx, dot, shift);
            acc[j] = _mm512_fmadd_ps(dw, t, acc[j]);
        }
    }
    for j in 0..MT {
        // SAFETY: `out[j]` holds the 16 values stored
        unsafe { _mm512_storeu_ps(out[j].as_mut_ptr(), acc[j]) };
    }
}

/// Rows `j0..j0 + MT` of `a` times group `g` of a Q4 `w`.
///
/// # Safety
/// As [`tile`], with `MT <= mt` and `w` of kind Q4 (offsets present).
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn q4<const MT: usize>(
    w: &QMatrix,
    g: usize,
    a: &QActs,
    j0: usize,
    out: &mut [[f32; ROWS]; 4],
) {
    let nb = w.blocks();
    let gbb = QKind::Q4.group_block_bytes();
    // SAFETY: group g < groups starts at quant g * nb * gbb and scale g * nb * ROWS of
    // `w`; row j0 of `a` at quant j0 * cols and scale j0 * nb (cols == w.cols(), the
    // caller's contract)
    let (qs, x, xd, xs) = unsafe {
        (
            w.qs.as_ptr().add(g * nb * gbb),
            a.q.as_ptr().add(j0 * a.cols),
            a.d.as_ptr().add(j0 * nb),
            a.s.as_ptr().add(j0 * nb),
        )
    };
    let ds = g * nb * ROWS;
    let nib = _mm512_set1_epi8(0x0F);
    let mut acc = [_mm512_setzero_ps(); MT];
    for b in 0..nb {
        // SAFETY: block b < nb of group g: its 16 scales and offsets lie in `w.d` and
        // `w.m`, its gbb quants in `w.qs` (the caller's contract on `w`'s layout)
        let (dw, mw, p) = unsafe {
            (
                scales16(&w.d, ds + b * ROWS),
                scales16(&w.m, ds + b * ROWS),
                qs.add(b * gbb),
            )
        };
        let mut i0 = [_mm512_setzero_si512(); MT];
        let mut i1 = [_mm512_setzero_si512(); MT];
        for step in 0..BLOCK / 8 {
            if MT == 1 {
                prefetch(p.wrapping_add(step * 64), PREFETCH_AHEAD);
            }
            // SAFETY: bytes step * 64..(step + 1) * 64 <= gbb of the block
            let v = unsafe { _mm512_loadu_si512(p.add(step * 64) as *const _) };
            let lo = _mm512_and_si512(v, nib);
            let hi = _mm512_and_si512(_mm512_srli_epi16::<4>(v), nib);
            for j in 0..MT {
                // SAFETY: row j0 + j < rows of `a`, quants b * 32 + step * 8.. (8 of them)
                // within its block
                let (x0, x1) = unsafe {
                    let xp = x.add(j * a.cols + b * BLOCK + step * 8);
                    (bcast4(xp), bcast4(xp.add(4)))
                };
                i0[j] = _mm512_dpbusd_epi32(i0[j], lo, x0);
                i1[j] = _mm512_dpbusd_epi32(i1[j], hi, x1);
            }
        }
        for j in 0..MT {
            let dot = _mm512_cvtepi32_ps(_mm512_add_epi32(i0[j], i1[j]));
            // SAFETY: scale and sum of block b of row j0 + j < rows of `a`
            let (dj, sj) = unsafe { (*xd.add(j * nb + b), *xs.add(j * nb + b)) };
            let dx = _mm512_set1_ps(dj);
            let sx = _mm512_set1_ps(sj);
            acc[j] = _mm512_fmadd_ps(dw, _mm512_mul_ps(dx, dot), acc[j]);
            acc[j] = _mm512_fmadd_ps(mw, sx, acc[j]);
        }
    }
    for j in 0..MT {
        // SAFETY: `out[j]` holds the 16 values stored
        unsafe { _mm512_storeu_ps(out[j].as_mut_ptr(), acc[j]) };
    }
}

/// How far ahead of the quants it reads a one-row product (a decode step) asks for them
/// to be brought into L1. Such a product reads every weight once, straight from memory, in
/// the order the groups lie; the hardware prefetchers alone left one core at ~10 GB/s.
/// Measured on an Intel Xeon (family 6 model 167; `bench --dtype native --context 1,512`,
/// the default model, alternating): 4-12 KiB ahead took decode at depth 0 from ~120 to
/// 200-230 tok/s on one thread and from 255-283 to 360-390 on two, depth 512 from ~83 to
/// 102-120 and from 143-155 to 180-199; 2 KiB gained half as much, 16 KiB no more.
const PREFETCH_AHEAD: usize = 8 << 10;

//! The x86-64 kernel: AVX-512 VNNI `vpdpbusd` on 16 interleaved rows at a time.
//!
//! Per block, each 64-byte load of weight quants is multiplied with 4 activation quants
//! broadcast to all lanes, giving each of the 16 rows a partial dot product in its own
//! i32 lane. Two independent accumulators per activation row hide the instruction's
//! latency; up to 4 activation rows share each weight load.

use std::arch::x86_64::*;

use super::act::QActs;
use super::matrix::{QKind, QMatrix, Scales, BLOCK, ROWS};

/// 16 scales of one (group, block) starting at element `at`, as f32.
#[inline(always)]
unsafe fn scales16(s: &Scales, at: usize) -> __m512 {
    match s {
        Scales::F16(v) => _mm512_cvtph_ps(_mm256_loadu_si256(v.as_ptr().add(at) as *const __m256i)),
        Scales::F32(v) => _mm512_loadu_ps(v.as_ptr().add(at)),
    }
}

/// Whether this CPU runs the kernel (checked once per process by std).
pub(crate) fn available() -> bool {
    is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512vnni")
}

/// Same contract as [`super::portable::tile`].
///
/// # Safety
/// The CPU must support AVX-512 F, BW and VNNI ([`available`]).
pub(crate) unsafe fn tile(
    w: &QMatrix,
    g: usize,
    a: &QActs,
    j0: usize,
    mt: usize,
    out: &mut [[f32; ROWS]; 4],
) {
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

/// Same contract as [`super::act::quantize_blocks`], 32 values per iteration.
///
/// # Safety
/// The CPU must support AVX-512 F and BW ([`available`]).
#[target_feature(enable = "avx512f,avx512bw")]
pub(crate) unsafe fn quantize_blocks(x: &[f32], q: &mut [i8], d: &mut [f32], s: &mut [f32]) {
    let blocks = x.len() / BLOCK;
    debug_assert!(q.len() == x.len() && d.len() == blocks && s.len() == blocks);
    for b in 0..blocks {
        let p = x.as_ptr().add(b * BLOCK);
        let (v0, v1) = (_mm512_loadu_ps(p), _mm512_loadu_ps(p.add(16)));
        let amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
        let nan =
            _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v0, v0) | _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v1, v1);
        let db = amax / 127.0;
        let id = _mm512_set1_ps(if db > 0.0 { 1.0 / db } else { 0.0 });
        // round half to even: the default MXCSR mode
        let q0 = _mm512_cvtps_epi32(_mm512_mul_ps(v0, id));
        let q1 = _mm512_cvtps_epi32(_mm512_mul_ps(v1, id));
        let out = q.as_mut_ptr().add(b * BLOCK) as *mut __m128i;
        _mm_storeu_si128(out, _mm512_cvtepi32_epi8(q0));
        _mm_storeu_si128(out.add(1), _mm512_cvtepi32_epi8(q1));
        let sum = _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
        let finite = amax.is_finite() && nan == 0;
        d[b] = if finite { db } else { f32::NAN };
        s[b] = d[b] * sum as f32;
    }
}

/// 4 activation quants at `p` as one i32, broadcast to every lane.
#[inline(always)]
unsafe fn bcast4(p: *const i8) -> __m512i {
    _mm512_set1_epi32((p as *const i32).read_unaligned())
}

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
    let qs = w.qs.as_ptr().add(g * nb * gbb);
    let ds = g * nb * ROWS;
    let x = a.q.as_ptr().add(j0 * a.cols);
    let (xd, xs) = (a.d.as_ptr().add(j0 * nb), a.s.as_ptr().add(j0 * nb));
    let mut acc = [_mm512_setzero_ps(); MT];
    for b in 0..nb {
        let dw = scales16(&w.d, ds + b * ROWS);
        let p = qs.add(b * gbb);
        let mut i0 = [_mm512_setzero_si512(); MT];
        let mut i1 = [_mm512_setzero_si512(); MT];
        for step in (0..BLOCK / 4).step_by(2) {
            let w0 = _mm512_loadu_si512(p.add(step * 64) as *const _);
            let w1 = _mm512_loadu_si512(p.add(step * 64 + 64) as *const _);
            for j in 0..MT {
                let xp = x.add(j * a.cols + b * BLOCK + step * 4);
                i0[j] = _mm512_dpbusd_epi32(i0[j], w0, bcast4(xp));
                i1[j] = _mm512_dpbusd_epi32(i1[j], w1, bcast4(xp.add(4)));
            }
        }
        for j in 0..MT {
            let dot = _mm512_cvtepi32_ps(_mm512_add_epi32(i0[j], i1[j]));
            let dx = _mm512_set1_ps(*xd.add(j * nb + b));
            let shift = _mm512_set1_ps(128.0 * *xs.add(j * nb + b));
            let t = _mm512_fmsub_ps(dx, dot, shift);
            acc[j] = _mm512_fmadd_ps(dw, t, acc[j]);
        }
    }
    for j in 0..MT {
        _mm512_storeu_ps(out[j].as_mut_ptr(), acc[j]);
    }
}

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
    let qs = w.qs.as_ptr().add(g * nb * gbb);
    let ds = g * nb * ROWS;
    let x = a.q.as_ptr().add(j0 * a.cols);
    let (xd, xs) = (a.d.as_ptr().add(j0 * nb), a.s.as_ptr().add(j0 * nb));
    let nib = _mm512_set1_epi8(0x0F);
    let mut acc = [_mm512_setzero_ps(); MT];
    for b in 0..nb {
        let dw = scales16(&w.d, ds + b * ROWS);
        let mw = scales16(&w.m, ds + b * ROWS);
        let p = qs.add(b * gbb);
        let mut i0 = [_mm512_setzero_si512(); MT];
        let mut i1 = [_mm512_setzero_si512(); MT];
        for step in 0..BLOCK / 8 {
            let v = _mm512_loadu_si512(p.add(step * 64) as *const _);
            let lo = _mm512_and_si512(v, nib);
            let hi = _mm512_and_si512(_mm512_srli_epi16::<4>(v), nib);
            for j in 0..MT {
                let xp = x.add(j * a.cols + b * BLOCK + step * 8);
                i0[j] = _mm512_dpbusd_epi32(i0[j], lo, bcast4(xp));
                i1[j] = _mm512_dpbusd_epi32(i1[j], hi, bcast4(xp.add(4)));
            }
        }
        for j in 0..MT {
            let dot = _mm512_cvtepi32_ps(_mm512_add_epi32(i0[j], i1[j]));
            let dx = _mm512_set1_ps(*xd.add(j * nb + b));
            let sx = _mm512_set1_ps(*xs.add(j * nb + b));
            acc[j] = _mm512_fmadd_ps(dw, _mm512_mul_ps(dx, dot), acc[j]);
            acc[j] = _mm512_fmadd_ps(mw, sx, acc[j]);
        }
    }
    for j in 0..MT {
        _mm512_storeu_ps(out[j].as_mut_ptr(), acc[j]);
    }
}

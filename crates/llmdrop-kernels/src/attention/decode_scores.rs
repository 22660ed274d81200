//! A decode step's scores of one query head, 16 cached keys at a time on AVX-512.
//!
//! The scalar score of one key ([`super::decode`]'s `dot`) keeps 16 partial sums, one per
//! lane, and adds them up one after another: 15 dependent scalar additions per key, which
//! cost more than the products. Here 16 keys' partial-sum vectors are transposed, so that
//! vector `i` holds lane `i` of every key, and the 15 additions run once for all 16 keys,
//! in the same order: the same bits, a sixteenth of the dependent additions.

use std::arch::x86_64::*;

use crate::prefetch::prefetch;

/// Keys per block.
pub(super) const BLOCK: usize = 16;

/// `scores[j] = q · keys[j * d..][..d]` for the first `scores.len() / 16 * 16` keys, with
/// the bits of the scalar `dot`; returns how many keys were scored. `d = q.len()` must be a
/// multiple of 16 (otherwise nothing is scored) and `keys` must hold every scored row.
///
/// # Safety
/// The CPU must have AVX-512 F ([`crate::Caps::avx512f`]).
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn block_scores(q: &[f32], keys: &[f32], scores: &mut [f32]) -> usize {
    let d = q.len();
    if d == 0 || !d.is_multiple_of(16) {
        return 0;
    }
    let blocks = (scores.len() / BLOCK).min(keys.len() / (d * BLOCK));
    // a decode step reads each cached key once, from memory: each load asks for the same
    // line of the next block (see `crate::prefetch`)
    let ahead = BLOCK * d * std::mem::size_of::<f32>();
    for blk in 0..blocks {
        let rows = &keys[blk * BLOCK * d..][..BLOCK * d];
        let mut acc = [_mm512_setzero_ps(); BLOCK];
        for c in (0..d).step_by(16) {
            // SAFETY: c + 16 <= d = q.len()
            let qc = unsafe { _mm512_loadu_ps(q.as_ptr().add(c)) };
            for (j, a) in acc.iter_mut().enumerate() {
                // SAFETY: j * d + c + 16 <= BLOCK * d = rows.len()
                let kc = unsafe { _mm512_loadu_ps(rows.as_ptr().add(j * d + c)) };
                // the same line of the next block's keys
                prefetch(rows.as_ptr().wrapping_add(j * d + c), ahead);
                // a product then a sum, each rounded, as the scalar `acc[i] += x[i] * y[i]`
                *a = _mm512_add_ps(*a, _mm512_mul_ps(qc, kc));
            }
        }
        let lanes = transpose(acc);
        let mut sum = lanes[0];
        for lane in &lanes[1..] {
            sum = _mm512_add_ps(sum, *lane);
        }
        // SAFETY: (blk + 1) * BLOCK <= scores.len()
        unsafe { _mm512_storeu_ps(scores.as_mut_ptr().add(blk * BLOCK), sum) };
    }
    blocks * BLOCK
}

/// The 16 x 16 transpose of `r` (row `j` = vector `j`): vector `i` of the result holds
/// element `i` of every input vector, in input order.
#[inline]
#[target_feature(enable = "avx512f")]
fn transpose(r: [__m512; 16]) -> [__m512; 16] {
    // pairs of rows interleaved within each 128-bit lane:
    // t[2p] lane L = r2p[4L], r2p+1[4L], r2p[4L+1], r2p+1[4L+1]; t[2p+1]: columns 4L+2, 4L+3
    let mut t = [_mm512_setzero_ps(); 16];
    for p in 0..8 {
        t[2 * p] = _mm512_unpacklo_ps(r[2 * p], r[2 * p + 1]);
        t[2 * p + 1] = _mm512_unpackhi_ps(r[2 * p], r[2 * p + 1]);
    }
    // u[4g + c] lane L = column 4L + c of rows 4g..4g+3
    let mut u = [_mm512_setzero_ps(); 16];
    for g in 0..4 {
        let lo = |a: __m512, b: __m512| {
            _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(a), _mm512_castps_pd(b)))
        };
        let hi = |a: __m512, b: __m512| {
            _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(a), _mm512_castps_pd(b)))
        };
        u[4 * g] = lo(t[4 * g], t[4 * g + 2]);
        u[4 * g + 1] = hi(t[4 * g], t[4 * g + 2]);
        u[4 * g + 2] = lo(t[4 * g + 1], t[4 * g + 3]);
        u[4 * g + 3] = hi(t[4 * g + 1], t[4 * g + 3]);
    }
    // the 4 x 4 matrix of 128-bit lanes (register g, lane L) of each column c, transposed:
    // out[4L + c] lane g = u[4g + c] lane L
    let mut out = [_mm512_setzero_ps(); 16];
    for c in 0..4 {
        let v0 = _mm512_shuffle_f32x4::<0b01_00_01_00>(u[c], u[4 + c]);
        let v1 = _mm512_shuffle_f32x4::<0b11_10_11_10>(u[c], u[4 + c]);
        let v2 = _mm512_shuffle_f32x4::<0b01_00_01_00>(u[8 + c], u[12 + c]);
        let v3 = _mm512_shuffle_f32x4::<0b11_10_11_10>(u[8 + c], u[12 + c]);
        out[c] = _mm512_shuffle_f32x4::<0b10_00_10_00>(v0, v2);
        out[4 + c] = _mm512_shuffle_f32x4::<0b11_01_11_01>(v0, v2);
        out[8 + c] = _mm512_shuffle_f32x4::<0b10_00_10_00>(v1, v3);
        out[12 + c] = _mm512_shuffle_f32x4::<0b11_01_11_01>(v1, v3);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random(n: usize, seed: u32) -> Vec<f32> {
        // a small LCG: values in [-1, 1) with every bit of the mantissa in play
        let mut s = seed.wrapping_mul(2654435761).wrapping_add(1);
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(1664525).wrapping_add(1013904223);
                (s >> 8) as f32 / (1u32 << 23) as f32 - 1.0
            })
            .collect()
    }

    #[test]
    fn block_scores_have_the_bits_of_the_scalar_dot() {
        if !crate::caps().avx512f() {
            return;
        }
        for d in [16, 32, 64, 128, 256] {
            for keys in [0, 15, 16, 17, 48, 100] {
                let q = random(d, d as u32);
                let k = random(keys * d, (d + keys) as u32);
                let mut scores = vec![f32::NAN; keys];
                // SAFETY: AVX-512 F checked above
                let done = unsafe { block_scores(&q, &k, &mut scores) };
                assert_eq!(done, keys / BLOCK * BLOCK);
                for (j, s) in scores[..done].iter().enumerate() {
                    let want = super::super::decode::dot(&q, &k[j * d..][..d]);
                    assert_eq!(s.to_bits(), want.to_bits(), "d {d} key {j}: {s} vs {want}");
                }
                assert!(scores[done..].iter().all(|s| s.is_nan()), "past the blocks");
            }
        }
        // a head size that is no multiple of 16 is left to the scalar loop
        let mut scores = [0f32; 16];
        // SAFETY: AVX-512 F checked above
        let done = unsafe { block_scores(&[1.0; 8], &[1.0; 128], &mut scores) };
        assert_eq!(done, 0);
    }
}

//! Activations quantized per 32-element block to i8, as the kernels consume them.

use std::mem::MaybeUninit;

use super::matrix::BLOCK;
use crate::Kernel;

/// `rows` activation rows of `cols` values: `x ≈ d * q` per block, and `s = d * Σq`
/// (the block sum the Q4 offset and the Q8 unsigned shift need).
#[derive(Debug, Clone)]
pub struct QActs {
    pub(crate) cols: usize,
    pub(crate) q: Vec<i8>,
    pub(crate) d: Vec<f32>,
    pub(crate) s: Vec<f32>,
}

impl QActs {
    /// Quantizes row-major `x` (`rows * cols` values, `cols` a multiple of 32) with
    /// `d = amax / 127` per block, rounded to nearest. A block holding NaN or infinity gets
    /// a NaN scale, so the outputs it feeds are NaN as they would be in f32.
    pub fn quantize(x: &[f32], cols: usize) -> Self {
        Self::quantize_with(x, cols, Kernel::Auto)
    }

    /// [`QActs::quantize`] with a chosen implementation (both give identical results).
    ///
    /// # Panics
    /// If `cols` is not a positive multiple of 32 or `x` not whole rows of `cols` values.
    pub fn quantize_with(x: &[f32], cols: usize, kernel: Kernel) -> Self {
        assert!(
            cols > 0 && cols.is_multiple_of(BLOCK) && x.len().is_multiple_of(cols),
            "quantized activations: {} values are not rows of {cols} (a positive multiple of {BLOCK})",
            x.len()
        );
        let blocks = x.len() / BLOCK;
        let (mut q, mut d, mut s) = (
            Vec::with_capacity(x.len()),
            Vec::with_capacity(blocks),
            Vec::with_capacity(blocks),
        );
        // rows of blocks in parallel when there are many
        let per_task = (1usize << 14) / BLOCK;
        let run = |(((xc, qc), dc), sc): Chunk| quantize_chunk(xc, qc, dc, sc, kernel);
        let chunks = x
            .chunks(per_task * BLOCK)
            .zip(q.spare_capacity_mut()[..x.len()].chunks_mut(per_task * BLOCK))
            .zip(d.spare_capacity_mut()[..blocks].chunks_mut(per_task))
            .zip(s.spare_capacity_mut()[..blocks].chunks_mut(per_task));
        if blocks > per_task && rayon::current_num_threads() > 1 {
            use rayon::prelude::*;
            chunks.par_bridge().for_each(run);
        } else {
            chunks.for_each(run);
        }
        // SAFETY: the chunks cover all x.len() quants and `blocks` scales and sums (x is
        // whole blocks, asserted above), and `quantize_chunk` writes every value of its
        // chunk (it checks the chunk's lengths before writing)
        unsafe {
            q.set_len(x.len());
            d.set_len(blocks);
            s.set_len(blocks);
        }
        Self { cols, q, d, s }
    }

    /// The values the quants stand for, row-major.
    pub fn dequantize(&self) -> Vec<f32> {
        self.q
            .chunks_exact(BLOCK)
            .zip(&self.d)
            .flat_map(|(qb, &d)| qb.iter().map(move |&q| d * q as f32))
            .collect()
    }
}

/// One task's share: input values, their quants, scales and sums.
type Chunk<'a> = (((&'a [f32], Out<'a, i8>), Out<'a, f32>), Out<'a, f32>);

/// Room for a chunk's values, written whole by the quantizer.
type Out<'a, T> = &'a mut [MaybeUninit<T>];

/// One chunk of whole blocks, on the SIMD quantizer where `kernel` and the CPU allow.
///
/// # Panics
/// If `x` is not whole blocks, `q` not as long as `x`, or `d` and `s` not one value per
/// block (what the SIMD quantizer's raw stores rely on; checked once per chunk).
fn quantize_chunk(x: &[f32], q: Out<i8>, d: Out<f32>, s: Out<f32>, kernel: Kernel) {
    let blocks = x.len() / BLOCK;
    assert!(
        x.len() == blocks * BLOCK && q.len() == x.len() && d.len() == blocks && s.len() == blocks,
        "quantize_chunk: {} values, {} quants, {} scales, {} sums",
        x.len(),
        q.len(),
        d.len(),
        s.len()
    );
    #[cfg(target_arch = "x86_64")]
    if kernel.avx512_vnni() {
        // SAFETY: `Caps::avx512_vnni` checked AVX-512 F, BW and what they imply; the
        // lengths are as the function needs (asserted above)
        unsafe { avx512::quantize_blocks(x, q, d, s) };
        return;
    }
    let _ = kernel;
    quantize_blocks(x, q, d, s);
}

/// The portable quantizer: `d = amax / 127`, `q = x / d` rounded half to even (as the
/// SIMD conversion rounds), `s = d * Σq`; a block with NaN or infinity gets a NaN scale, so
/// the outputs it feeds are NaN as they would be in f32.
pub(crate) fn quantize_blocks(x: &[f32], q: Out<i8>, d: Out<f32>, s: Out<f32>) {
    for (b, (xb, qb)) in x
        .chunks_exact(BLOCK)
        .zip(q.chunks_exact_mut(BLOCK))
        .enumerate()
    {
        let amax = xb.iter().fold(0f32, |a, v| a.max(v.abs()));
        let db = amax / 127.0;
        let id = if db > 0.0 { 1.0 / db } else { 0.0 };
        let mut sum = 0i32;
        for (o, v) in qb.iter_mut().zip(xb) {
            let r = to_i32(v * id);
            o.write(r as i8);
            sum = sum.wrapping_add(r);
        }
        let finite = amax.is_finite() && !xb.iter().any(|v| v.is_nan());
        let db = if finite { db } else { f32::NAN };
        d[b].write(db);
        s[b].write(db * sum as f32);
    }
}

/// `v` rounded half to even to an i32 as the SIMD conversion (`cvtps2dq`) does it: NaN and
/// values outside i32's range become `i32::MIN`. (A block whose largest value is below
/// ~1e-36 has a scale whose inverse overflows to infinity: its quants and sum are then
/// meaningless but tiny once scaled, and the same on both quantizers.)
fn to_i32(v: f32) -> i32 {
    let r = v.round_ties_even();
    if (-2_147_483_648.0..2_147_483_648.0).contains(&r) {
        r as i32
    } else {
        i32::MIN
    }
}

/// The x86-64 quantizer: AVX-512 F and BW, the same arithmetic as [`quantize_blocks`].
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;
    use std::mem::MaybeUninit;

    use super::{Out, BLOCK};

    /// Same contract and bits as [`super::quantize_blocks`], 16 blocks at a time.
    ///
    /// # Safety
    /// The CPU must have AVX-512 F, BW and what they imply ([`crate::Caps::avx512_vnni`]);
    /// `x` must be whole blocks, `q` as long as `x`, `d` and `s` one value per block (the
    /// safe `quantize_chunk` checks these).
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn quantize_blocks(x: &[f32], q: Out<i8>, d: Out<f32>, s: Out<f32>) {
        let blocks = x.len() / BLOCK;
        debug_assert!(q.len() == x.len() && d.len() == blocks && s.len() == blocks);
        let mut b0 = 0;
        while b0 + 16 <= blocks {
            // SAFETY: blocks b0..b0 + 16 lie in x, q, d and s (the caller's contract)
            unsafe { sixteen(x, q, d, s, b0) };
            b0 += 16;
        }
        // the last blocks (fewer than 16): padded with zero blocks to 16, and only theirs
        // kept (each block's values depend on that block alone)
        let rest = blocks - b0;
        if rest > 0 {
            let mut xp = [0f32; 16 * BLOCK];
            xp[..rest * BLOCK].copy_from_slice(&x[b0 * BLOCK..]);
            let mut qp = [MaybeUninit::<i8>::uninit(); 16 * BLOCK];
            let mut dp = [MaybeUninit::<f32>::uninit(); 16];
            let mut sp = [MaybeUninit::<f32>::uninit(); 16];
            // SAFETY: 16 whole blocks in each padded buffer
            unsafe { sixteen(&xp, &mut qp, &mut dp, &mut sp, 0) };
            q[b0 * BLOCK..].copy_from_slice(&qp[..rest * BLOCK]);
            d[b0..].copy_from_slice(&dp[..rest]);
            s[b0..].copy_from_slice(&sp[..rest]);
        }
    }

    /// Lane `j` of the result: `op` over the 16 lanes of `v[j]`, for 16 vectors at once
    /// (a transposed reduction: 15 combining steps for 16 blocks, where reducing each
    /// block alone takes 4 dependent steps of its own). `op` must be associative and
    /// commutative on the values it meets (max of finite values, integer add).
    #[inline(always)]
    unsafe fn across(v: [__m512; 16], op: impl Fn(__m512, __m512) -> __m512) -> __m512 {
        // SAFETY: register shuffles only; the CPU has AVX-512 F (the caller's contract)
        unsafe {
            // pairs of blocks: each 128-bit lane keeps 2 partial values of each
            let r: [__m512; 8] = std::array::from_fn(|j| {
                let (a, b) = (v[2 * j], v[2 * j + 1]);
                op(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b))
            });
            // 4 blocks a vector: each 128-bit lane holds one partial value of each
            let t: [__m512; 4] = std::array::from_fn(|j| {
                let (a, b) = (r[2 * j], r[2 * j + 1]);
                op(
                    _mm512_shuffle_ps::<0x44>(a, b),
                    _mm512_shuffle_ps::<0xEE>(a, b),
                )
            });
            // then across the 128-bit lanes: lane group k ends up holding blocks 4k..4k + 4
            let u: [__m512; 2] = std::array::from_fn(|j| {
                let (a, b) = (t[2 * j], t[2 * j + 1]);
                op(
                    _mm512_shuffle_f32x4::<0x88>(a, b),
                    _mm512_shuffle_f32x4::<0xDD>(a, b),
                )
            });
            op(
                _mm512_shuffle_f32x4::<0x88>(u[0], u[1]),
                _mm512_shuffle_f32x4::<0xDD>(u[0], u[1]),
            )
        }
    }

    /// Blocks `b0..b0 + 16`, the same arithmetic as the loop in [`quantize_blocks`] (the
    /// block maximum and the quant sum are exact in any order), their reductions done
    /// together by [`across`].
    ///
    /// # Safety
    /// As [`quantize_blocks`], with blocks `b0..b0 + 16` inside `x`, `q`, `d` and `s`.
    #[target_feature(enable = "avx512f,avx512bw")]
    unsafe fn sixteen(x: &[f32], q: Out<i8>, d: Out<f32>, s: Out<f32>, b0: usize) {
        // SAFETY: block b0 + j (j < 16) lies in `x` (the caller's contract)
        let load = |j: usize| unsafe {
            let p = x.as_ptr().add((b0 + j) * BLOCK);
            (_mm512_loadu_ps(p), _mm512_loadu_ps(p.add(16)))
        };
        let mut nan: u32 = 0;
        let m: [__m512; 16] = std::array::from_fn(|j| {
            let (v0, v1) = load(j);
            let un = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v0, v0)
                | _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v1, v1);
            nan |= u32::from(un != 0) << j;
            _mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1))
        });
        // SAFETY: register arithmetic on a CPU with AVX-512 F
        let amax = unsafe { across(m, |a, b| _mm512_max_ps(a, b)) };
        let db = _mm512_div_ps(amax, _mm512_set1_ps(127.0));
        let positive = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(db, _mm512_setzero_ps());
        let id = _mm512_maskz_div_ps(positive, _mm512_set1_ps(1.0), db);
        let finite = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(amax, _mm512_set1_ps(f32::INFINITY))
            & !(nan as __mmask16);
        let db = _mm512_mask_blend_ps(finite, _mm512_set1_ps(f32::NAN), db);
        let mut ids = [0f32; 16];
        // SAFETY: 16 values into a 16-value array
        unsafe { _mm512_storeu_ps(ids.as_mut_ptr(), id) };
        let sums: [__m512; 16] = std::array::from_fn(|j| {
            let (v0, v1) = load(j);
            let id = _mm512_set1_ps(ids[j]);
            // round half to even: the default MXCSR mode
            let q0 = _mm512_cvtps_epi32(_mm512_mul_ps(v0, id));
            let q1 = _mm512_cvtps_epi32(_mm512_mul_ps(v1, id));
            // SAFETY: quants (b0 + j) * 32.. (32 of them) lie in `q` (as long as `x`)
            unsafe {
                let out = q.as_mut_ptr().add((b0 + j) * BLOCK) as *mut __m128i;
                _mm_storeu_si128(out, _mm512_cvtepi32_epi8(q0));
                _mm_storeu_si128(out.add(1), _mm512_cvtepi32_epi8(q1));
            }
            _mm512_castsi512_ps(_mm512_add_epi32(q0, q1))
        });
        // integer sums through float shuffles (bits moved, never converted)
        // SAFETY: register arithmetic on a CPU with AVX-512 F
        let sum = unsafe {
            across(sums, |a, b| {
                _mm512_castsi512_ps(_mm512_add_epi32(
                    _mm512_castps_si512(a),
                    _mm512_castps_si512(b),
                ))
            })
        };
        let sv = _mm512_mul_ps(db, _mm512_cvtepi32_ps(_mm512_castps_si512(sum)));
        // SAFETY: scales and sums b0..b0 + 16 lie in `d` and `s` (one per block);
        // `MaybeUninit<f32>` is laid out as `f32`
        unsafe {
            _mm512_storeu_ps(d.as_mut_ptr().add(b0) as *mut f32, db);
            _mm512_storeu_ps(s.as_mut_ptr().add(b0) as *mut f32, sv);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room<T: Copy>(n: usize) -> Vec<MaybeUninit<T>> {
        vec![MaybeUninit::uninit(); n]
    }

    #[test]
    fn the_simd_quantizer_gives_the_portable_bits() {
        // 16-block groups and the blocks after them; all-zero, infinite, NaN, tiny and
        // half-step blocks among random ones
        for blocks in [1usize, 15, 16, 17, 33, 50] {
            let mut x: Vec<f32> = (0..blocks * BLOCK)
                .map(|i| ((i * 7919 % 2003) as f32 - 1001.0) / (1 + i % 97) as f32)
                .collect();
            if blocks > 16 {
                x[3 * BLOCK..4 * BLOCK].fill(0.0);
                x[5 * BLOCK + 3] = f32::INFINITY;
                x[7 * BLOCK + 9] = f32::NAN;
                x[9 * BLOCK..10 * BLOCK].fill(1e-40);
                for (i, v) in x[11 * BLOCK..12 * BLOCK].iter_mut().enumerate() {
                    *v = i as f32 + 0.5 - 16.0;
                }
                x[11 * BLOCK] = 127.0;
                // and among the last blocks, which run padded to 16
                x[(blocks - 1) * BLOCK + 5] = f32::NAN;
                x[(blocks - 2) * BLOCK..(blocks - 1) * BLOCK].fill(1e-40);
            }
            let run = |kernel| {
                let (mut q, mut d, mut s) = (room::<i8>(x.len()), room(blocks), room(blocks));
                quantize_chunk(&x, &mut q, &mut d, &mut s, kernel);
                let take = |v: &[MaybeUninit<f32>]| -> Vec<f32> {
                    // SAFETY: a chunk of matching lengths writes every value
                    v.iter().map(|v| unsafe { v.assume_init() }).collect()
                };
                // SAFETY: as above
                let q: Vec<i8> = q.iter().map(|v| unsafe { v.assume_init() }).collect();
                (q, take(&d), take(&s))
            };
            let (a, b) = (run(Kernel::Auto), run(Kernel::Portable));
            for blk in 0..blocks {
                let bits = |v: f32| if v.is_nan() { u32::MAX } else { v.to_bits() };
                assert_eq!(
                    bits(a.1[blk]),
                    bits(b.1[blk]),
                    "scale, block {blk} of {blocks}"
                );
                assert_eq!(
                    bits(a.2[blk]),
                    bits(b.2[blk]),
                    "sum, block {blk} of {blocks}"
                );
                if !a.1[blk].is_nan() {
                    let r = blk * BLOCK..(blk + 1) * BLOCK;
                    assert_eq!(a.0[r.clone()], b.0[r], "quants, block {blk} of {blocks}");
                }
            }
        }
    }

    #[test]
    fn chunks_of_mismatched_lengths_panic_before_the_kernel_writes() {
        let x = vec![0.5f32; 2 * BLOCK];
        for kernel in [Kernel::Auto, Kernel::Portable] {
            // quants shorter than the values, too few scales or sums, a partial block
            let cases: [(usize, usize, usize, usize); 4] = [
                (2 * BLOCK, 2 * BLOCK - 1, 2, 2),
                (2 * BLOCK, 2 * BLOCK, 1, 2),
                (2 * BLOCK, 2 * BLOCK, 2, 1),
                (2 * BLOCK - 3, 2 * BLOCK - 3, 1, 1),
            ];
            for (nx, nq, nd, ns) in cases {
                let r = std::panic::catch_unwind(|| {
                    let (mut q, mut d, mut s) = (room(nq), room(nd), room(ns));
                    quantize_chunk(&x[..nx], &mut q, &mut d, &mut s, kernel);
                });
                let msg = r.expect_err("mismatched lengths must panic");
                let msg = msg.downcast_ref::<String>().cloned().unwrap_or_default();
                assert!(msg.contains("quantize_chunk"), "{nx} {nq} {nd} {ns}: {msg}");
            }
            let (mut q, mut d, mut s) = (room::<i8>(2 * BLOCK), room(2), room(2));
            quantize_chunk(&x, &mut q, &mut d, &mut s, kernel);
            // SAFETY: a chunk of matching lengths writes every value
            let q: Vec<i8> = q.iter().map(|v| unsafe { v.assume_init() }).collect();
            assert_eq!(q, vec![127i8; 2 * BLOCK]);
        }
    }
}

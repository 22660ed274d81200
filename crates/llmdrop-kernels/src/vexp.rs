//! A vectorized `exp` on AVX-512 and what is built on it: the softmax of a row and the
//! gated SiLU `silu(g) · u` (libm's scalar `expf` was ~7% of a long prefill).

use std::mem::MaybeUninit;

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};

use crate::elementwise::{same_shape_f32, zip_parts};

/// In place: `row[j] = exp(row[j] - max) / Σ_j exp(row[j] - max)`. A NaN anywhere makes
/// the whole row NaN; an empty row stays empty.
pub fn softmax_in_place(row: &mut [f32]) {
    let inv = 1.0 / exp_shifted(row);
    row.iter_mut().for_each(|x| *x *= inv);
}

/// The same steps with libm's `exp`.
pub fn softmax_portable(row: &mut [f32]) {
    let inv = 1.0 / exp_shifted_portable(row);
    row.iter_mut().for_each(|x| *x *= inv);
}

/// In place: `row[j] = exp(row[j] - max)`; returns their sum (NaN if any value is NaN,
/// 0 for an empty row). Softmax without the division, for callers that fold `1 / sum`
/// into what they compute from the row.
pub fn exp_shifted(row: &mut [f32]) -> f32 {
    if row.is_empty() {
        return 0.0;
    }
    #[cfg(target_arch = "x86_64")]
    if super::caps().avx512f() {
        // SAFETY: `Caps::avx512f` checked AVX-512 F and what it implies
        return unsafe { avx512::exp_shifted(row) };
    }
    exp_shifted_portable(row)
}

/// [`exp_shifted`] with libm's `exp`.
pub fn exp_shifted_portable(row: &mut [f32]) -> f32 {
    let max = row.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
    let mut sum = 0f32;
    for x in row.iter_mut() {
        *x = (*x - max).exp();
        sum += *x;
    }
    if row.iter().any(|x| x.is_nan()) {
        f32::NAN
    } else {
        sum
    }
}

/// `exp` of each value, vectorized where the CPU allows (exposed for its accuracy test).
pub fn exp_all(x: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if super::caps().avx512f() {
        // SAFETY: `Caps::avx512f` checked AVX-512 F and what it implies
        unsafe { avx512::exp_all(x) };
        return;
    }
    x.iter_mut().for_each(|v| *v = v.exp());
}

/// `out[i] = g[i] / (1 + exp(-g[i])) · u[i]`.
///
/// # Panics
/// If the lengths differ.
pub fn silu_mul_slices(g: &[f32], u: &[f32], out: &mut [f32]) {
    // SAFETY: `MaybeUninit<f32>` has `f32`'s layout, and `silu_mul_uninit` stores only
    // initialised values, so `out` stays valid `f32`s
    let out = unsafe { &mut *(out as *mut [f32] as *mut [MaybeUninit<f32>]) };
    silu_mul_uninit(g, u, out);
}

/// [`silu_mul_slices`] into a buffer that may be uninitialised (the gated product writes
/// its output unzeroed): every value of `out` is written.
///
/// # Panics
/// If the lengths differ.
pub(crate) fn silu_mul_uninit(g: &[f32], u: &[f32], out: &mut [MaybeUninit<f32>]) {
    assert!(
        g.len() == u.len() && u.len() == out.len(),
        "silu_mul: lengths differ"
    );
    #[cfg(target_arch = "x86_64")]
    if super::caps().avx512f() {
        // SAFETY: `Caps::avx512f` checked AVX-512 F and what it implies; the three
        // lengths are equal (asserted above)
        unsafe { avx512::silu_mul(g, u, out) };
        return;
    }
    for ((o, &g), &u) in out.iter_mut().zip(g).zip(u) {
        o.write(g / (1.0 + (-g).exp()) * u);
    }
}

struct SiluMul;

impl CustomOp2 for SiluMul {
    fn name(&self) -> &'static str {
        "llmdrop-silu-mul"
    }

    fn cpu_fwd(
        &self,
        sg: &CpuStorage,
        lg: &Layout,
        su: &CpuStorage,
        lu: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (g, u) = same_shape_f32("silu_mul", (sg, lg), (su, lu))?;
        // SAFETY: `silu_mul_uninit` writes every value of its output (of the same length
        // as its inputs, asserted there)
        let out = unsafe { zip_parts(g, u, silu_mul_uninit) };
        Ok((CpuStorage::F32(out), lg.shape().clone()))
    }
}

/// `silu(g) · u` for f32 tensors of one shape, in one pass.
pub fn silu_mul(g: &Tensor, u: &Tensor) -> Result<Tensor> {
    // (`contiguous` is a cheap clone of a tensor that already is)
    g.contiguous()?.apply_op2_no_bwd(&u.contiguous()?, &SiluMul)
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;
    use std::mem::MaybeUninit;

    /// `e^x` for 16 lanes, within 2 ulp of the exact value: `x = n ln2 + r` with
    /// `|r| <= ln2 / 2`, a degree-6 polynomial for `e^r` (Cephes' `expf` coefficients),
    /// then `· 2^n` by `vscalefps` (which also gives 0 below the subnormals and ∞ above
    /// f32's range). NaN stays NaN.
    ///
    /// # Safety
    /// The CPU must have AVX-512 F and what it implies ([`crate::Caps::avx512f`]); it is
    /// only called (and inlined) from this module's `avx512f` functions.
    #[inline(always)]
    pub(super) unsafe fn exp16(x: __m512) -> __m512 {
        // SAFETY: register arithmetic only, on a CPU with AVX-512 F (the caller's contract);
        // the upper clamp first, then the rest (the same as clamping in the other order:
        // the bounds do not cross; NaN passes through `min`, which returns its second
        // operand)
        unsafe { exp16_upto_89(_mm512_min_ps(_mm512_set1_ps(89.0), x)) }
    }

    /// [`exp16`] of values at most 89 (or NaN), which its upper clamp leaves as they are:
    /// softmax's `x - max` (at most 0) skips that instruction. The same bits as
    /// [`exp16`] for such values.
    ///
    /// # Safety
    /// As [`exp16`].
    #[inline(always)]
    pub(super) unsafe fn exp16_upto_89(x: __m512) -> __m512 {
        // SAFETY: register arithmetic only, on a CPU with AVX-512 F (the caller's contract)
        unsafe {
            // clamping keeps n small; NaN passes through (max returns its second operand)
            let x = _mm512_max_ps(_mm512_set1_ps(-104.0), x);
            let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
                _mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::LOG2_E)),
            );
            // ln 2 in two parts, so n · ln2_hi is exact
            let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693_359_4), x);
            let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.121_944_4e-4), r);
            let mut p = _mm512_set1_ps(1.987_569_2e-4);
            for c in [1.398_2e-3, 8.333_452e-3, 4.166_579_6e-2, 0.166_666_65, 0.5] {
                p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
            }
            let r2 = _mm512_mul_ps(r, r);
            let y = _mm512_fmadd_ps(p, r2, _mm512_add_ps(r, _mm512_set1_ps(1.0)));
            _mm512_scalef_ps(y, n)
        }
    }

    fn tail_mask(n: usize) -> __mmask16 {
        if n >= 16 {
            0xffff
        } else {
            ((1u32 << n) - 1) as u16
        }
    }

    /// # Safety
    /// The CPU must have AVX-512 F and what it implies ([`crate::Caps::avx512f`]).
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn exp_all(x: &mut [f32]) {
        for chunk in x.chunks_mut(16) {
            let m = tail_mask(chunk.len());
            let p = chunk.as_mut_ptr();
            // SAFETY: the mask covers the chunk's values only; AVX-512 F by contract
            unsafe { _mm512_mask_storeu_ps(p, m, exp16(_mm512_maskz_loadu_ps(m, p))) };
        }
    }

    /// `out[i] = silu(g[i]) · u[i]`, every value of `out` written.
    ///
    /// # Safety
    /// The CPU must have AVX-512 F and what it implies ([`crate::Caps::avx512f`]);
    /// `g`, `u` and `out` must have one length (each 16-value load takes its mask from
    /// `out`'s chunk). [`super::silu_mul_uninit`] checks both.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn silu_mul(g: &[f32], u: &[f32], out: &mut [MaybeUninit<f32>]) {
        let one = _mm512_set1_ps(1.0);
        for ((o, g), u) in out.chunks_mut(16).zip(g.chunks(16)).zip(u.chunks(16)) {
            let m = tail_mask(o.len());
            // SAFETY: `g` and `u` chunks are as long as `o`'s (equal lengths, the caller's
            // contract), and the mask covers `o.len()` values
            let (gv, uv) = unsafe {
                (
                    _mm512_maskz_loadu_ps(m, g.as_ptr()),
                    _mm512_maskz_loadu_ps(m, u.as_ptr()),
                )
            };
            // SAFETY: AVX-512 F by contract
            let e = unsafe { exp16(_mm512_sub_ps(_mm512_setzero_ps(), gv)) };
            let y = _mm512_mul_ps(_mm512_div_ps(gv, _mm512_add_ps(one, e)), uv);
            // SAFETY: the mask covers `o.len()` values; `MaybeUninit<f32>` is laid out as
            // `f32`, and writing initialises them
            unsafe { _mm512_mask_storeu_ps(o.as_mut_ptr().cast::<f32>(), m, y) };
        }
    }

    /// # Safety
    /// The CPU must have AVX-512 F and what it implies ([`crate::Caps::avx512f`]).
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn exp_shifted(row: &mut [f32]) -> f32 {
        // the maximum over four running maxima (one chain of `max` would wait on each
        // one's latency); the order does not matter to a maximum
        let low = _mm512_set1_ps(f32::NEG_INFINITY);
        let mut mx = [low; 4];
        let mut quads = row.chunks_exact(64);
        for quad in &mut quads {
            for (i, m) in mx.iter_mut().enumerate() {
                // SAFETY: values 16 i .. 16 i + 16 of the 64 in `quad`
                *m = _mm512_max_ps(*m, unsafe { _mm512_loadu_ps(quad.as_ptr().add(16 * i)) });
            }
        }
        for chunk in quads.remainder().chunks(16) {
            let m = tail_mask(chunk.len());
            // SAFETY: the mask covers the chunk's values only
            let v = unsafe { _mm512_mask_loadu_ps(low, m, chunk.as_ptr()) };
            mx[0] = _mm512_max_ps(mx[0], v);
        }
        let mx = _mm512_max_ps(_mm512_max_ps(mx[0], mx[1]), _mm512_max_ps(mx[2], mx[3]));
        let max = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
        // every value minus the maximum is at most 0 (or NaN), below `exp16`'s upper clamp
        let shifted = |v: __m512| {
            // SAFETY: AVX-512 F by contract
            unsafe { exp16_upto_89(_mm512_sub_ps(v, max)) }
        };
        let mut sum = _mm512_setzero_ps();
        let mut pairs = row.chunks_exact_mut(32);
        for pair in &mut pairs {
            let p = pair.as_mut_ptr();
            // SAFETY: the 32 values of `pair`
            unsafe {
                let (e0, e1) = (
                    shifted(_mm512_loadu_ps(p)),
                    shifted(_mm512_loadu_ps(p.add(16))),
                );
                // one chain, in the values' order (as the masked loop below)
                sum = _mm512_add_ps(_mm512_add_ps(sum, e0), e1);
                _mm512_storeu_ps(p, e0);
                _mm512_storeu_ps(p.add(16), e1);
            }
        }
        for chunk in pairs.into_remainder().chunks_mut(16) {
            let m = tail_mask(chunk.len());
            let p = chunk.as_mut_ptr();
            // SAFETY: the mask covers the chunk's values only; AVX-512 F by contract
            let e = _mm512_maskz_mov_ps(m, shifted(unsafe { _mm512_maskz_loadu_ps(m, p) }));
            sum = _mm512_add_ps(sum, e);
            // SAFETY: as for the load
            unsafe { _mm512_mask_storeu_ps(p, m, e) };
        }
        _mm512_reduce_add_ps(sum)
    }
}

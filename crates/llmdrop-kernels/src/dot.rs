//! The f32 dot product of the norms and similarities, in a fixed order that vectorizes.

/// `Σ a[p] · b[p]` in 16 running sums (lane `l` takes `p = l, l + 16, …`), each a chain of
/// fused multiply-adds, added pairwise at the end: the same bits on every CPU, compiled
/// for 512-bit or 256-bit vectors where the CPU has them.
///
/// # Panics
/// If the lengths differ.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "dot: slices of different lengths");
    #[cfg(target_arch = "x86_64")]
    {
        let caps = super::caps();
        if caps.avx512f() {
            // SAFETY: `Caps::avx512f` checked AVX-512 F, FMA and what they imply
            return unsafe { dot_avx512(a, b) };
        }
        if caps.avx2_fma() {
            // SAFETY: `Caps::avx2_fma` checked AVX2, FMA and what they imply
            return unsafe { dot_avx2(a, b) };
        }
    }
    dot_lanes(a, b)
}

/// [`dot_lanes`] compiled for AVX-512.
///
/// # Safety
/// The CPU must have the features enabled here and those they imply
/// ([`crate::Caps::avx512f`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
unsafe fn dot_avx512(a: &[f32], b: &[f32]) -> f32 {
    dot_lanes(a, b)
}

/// [`dot_lanes`] compiled for AVX2.
///
/// # Safety
/// The CPU must have the features enabled here and those they imply
/// ([`crate::Caps::avx2_fma`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
    dot_lanes(a, b)
}

#[inline(always)]
fn dot_lanes(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..16 {
            acc[l] = x[l].mul_add(y[l], acc[l]);
        }
    }
    for ((s, x), y) in acc.iter_mut().zip(ra).zip(rb) {
        *s = x.mul_add(*y, *s);
    }
    sum_lanes(acc)
}

/// The 16 running sums added pairwise: lane `l` + lane `l + 8`, then `+ 4`, `+ 2`, `+ 1`.
#[inline(always)]
pub(crate) fn sum_lanes(mut s: [f32; 16]) -> f32 {
    let mut width = 8;
    while width > 0 {
        for l in 0..width {
            s[l] += s[l + width];
        }
        width /= 2;
    }
    s[0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_f64_and_the_lane_order() {
        for n in [0usize, 1, 15, 16, 17, 576, 1000] {
            let a: Vec<f32> = (0..n)
                .map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0)
                .collect();
            let b: Vec<f32> = (0..n)
                .map(|i| ((i * 53) % 97) as f32 / 40.0 - 1.2)
                .collect();
            let exact: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
            let mag: f64 = a
                .iter()
                .zip(&b)
                .map(|(x, y)| (*x as f64 * *y as f64).abs())
                .sum();
            let got = dot(&a, &b);
            assert!(
                (got as f64 - exact).abs() <= (n as f64 + 1.0) * f32::EPSILON as f64 * mag,
                "n={n}: {got} vs {exact}"
            );
            // every compiled path gives the same bits
            assert_eq!(got.to_bits(), dot_lanes(&a, &b).to_bits(), "n={n}");
            #[cfg(target_arch = "x86_64")]
            if crate::caps().avx2_fma() {
                // SAFETY: `Caps::avx2_fma` checked AVX2, FMA and what they imply
                let avx2 = unsafe { dot_avx2(&a, &b) };
                assert_eq!(got.to_bits(), avx2.to_bits(), "n={n}");
            }
        }
    }
}

//! All pairwise dot products of a few long rows (the consecutive-layer similarities of a
//! block): `G[i][j] = Σ_p u_i[p] · u_j[p]`.
//!
//! Rows are taken 4 by 4 against 4, so each step loads 8 vectors for 16 multiply-adds
//! (bound by arithmetic, not loads), over chunks of the rows that stay in L2. Each entry is
//! summed in a fixed order (16 lanes of fused multiply-adds within a chunk, added pairwise,
//! then chunks in order in f64): the same bits on every CPU and any thread count.

use super::dot::sum_lanes;

/// Rows per block side.
const B: usize = 4;
/// Values of each row per chunk: 32 rows of this many f32 stay in L2 (256 KiB).
const CHUNK: usize = 2048;

/// `rows`: `n` rows of `len` values, one after another -> `[n, n]` sums in f64.
pub fn gram(rows: &[f32], n: usize, len: usize) -> Vec<f64> {
    assert_eq!(rows.len(), n * len, "gram: {n} rows of {len} values");
    let mut g = vec![0f64; n * n];
    if n == 0 || len == 0 {
        return g;
    }
    let blocks = n.div_ceil(B);
    // a block past the last row repeats the last row; its sums are not kept
    let row = |i: usize| &rows[i.min(n - 1) * len..][..len];
    for p0 in (0..len).step_by(CHUNK) {
        let p1 = len.min(p0 + CHUNK);
        for bi in 0..blocks {
            for bj in bi..blocks {
                let a: [&[f32]; B] = std::array::from_fn(|r| &row(bi * B + r)[p0..p1]);
                let b: [&[f32]; B] = std::array::from_fn(|c| &row(bj * B + c)[p0..p1]);
                let s = block(&a, &b);
                for (r, sr) in s.iter().enumerate() {
                    for (c, &v) in sr.iter().enumerate() {
                        let (i, j) = (bi * B + r, bj * B + c);
                        if i <= j && j < n {
                            g[i * n + j] += v as f64;
                        }
                    }
                }
            }
        }
    }
    for i in 0..n {
        for j in 0..i {
            g[i * n + j] = g[j * n + i];
        }
    }
    g
}

/// `[r][c] = a[r] · b[c]` with [`super::dot::dot`]'s lane order.
///
/// # Panics
/// If the 8 slices are not all of one length (checked once per call: the vector kernel
/// reads each of them as far as the first).
fn block(a: &[&[f32]; B], b: &[&[f32]; B]) -> [[f32; B]; B] {
    let len = a[0].len();
    assert!(
        a.iter().chain(b).all(|s| s.len() == len),
        "gram block: rows of different lengths"
    );
    #[cfg(target_arch = "x86_64")]
    if super::caps().avx512f() {
        // SAFETY: `Caps::avx512f` checked AVX-512 F and what it implies (FMA among
        // them); the 8 slices have one length (asserted above)
        return unsafe { block_avx512(a, b) };
    }
    block_lanes(a, b)
}

/// [`block_lanes`] on AVX-512 registers.
///
/// # Safety
/// The CPU must have AVX-512 F and what it implies ([`crate::Caps::avx512f`]); every
/// slice of `a` and `b` must be as long as `a[0]` ([`block`] checks both).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn block_avx512(a: &[&[f32]; B], b: &[&[f32]; B]) -> [[f32; B]; B] {
    use std::arch::x86_64::*;
    let len = a[0].len();
    let full = len / 16 * 16;
    let mut acc = [[_mm512_setzero_ps(); B]; B];
    for p in (0..full).step_by(16) {
        // SAFETY: p + 16 <= full <= len, the length of every slice (the caller's contract)
        let x: [__m512; B] =
            std::array::from_fn(|r| unsafe { _mm512_loadu_ps(a[r].as_ptr().add(p)) });
        // SAFETY: as for `x`
        let y: [__m512; B] =
            std::array::from_fn(|c| unsafe { _mm512_loadu_ps(b[c].as_ptr().add(p)) });
        for r in 0..B {
            for c in 0..B {
                acc[r][c] = _mm512_fmadd_ps(x[r], y[c], acc[r][c]);
            }
        }
    }
    let mut lanes = [[[0f32; 16]; B]; B];
    for r in 0..B {
        for c in 0..B {
            // SAFETY: `lanes[r][c]` holds the 16 values stored
            unsafe { _mm512_storeu_ps(lanes[r][c].as_mut_ptr(), acc[r][c]) };
        }
    }
    finish(a, b, full, lanes)
}

/// The plain-Rust twin of the vector kernel: the same multiply-adds in the same order.
fn block_lanes(a: &[&[f32]; B], b: &[&[f32]; B]) -> [[f32; B]; B] {
    let len = a[0].len();
    let full = len / 16 * 16;
    let mut lanes = [[[0f32; 16]; B]; B];
    for p in (0..full).step_by(16) {
        for (r, lr) in lanes.iter_mut().enumerate() {
            for (c, s) in lr.iter_mut().enumerate() {
                for (l, s) in s.iter_mut().enumerate() {
                    *s = a[r][p + l].mul_add(b[c][p + l], *s);
                }
            }
        }
    }
    finish(a, b, full, lanes)
}

/// Adds the values past the last whole 16 to lanes `0..`, then each entry's 16 lanes
/// pairwise.
fn finish(
    a: &[&[f32]; B],
    b: &[&[f32]; B],
    full: usize,
    mut lanes: [[[f32; 16]; B]; B],
) -> [[f32; B]; B] {
    for p in full..a[0].len() {
        for (r, lr) in lanes.iter_mut().enumerate() {
            for (c, s) in lr.iter_mut().enumerate() {
                s[p - full] = a[r][p].mul_add(b[c][p], s[p - full]);
            }
        }
    }
    lanes.map(|row| row.map(sum_lanes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ragged_block_panics_before_the_kernel_reads() {
        let long = vec![1f32; 64];
        let short = vec![1f32; 17];
        // any one of the 8 slices shorter than the first
        for i in 0..2 * B {
            let msg = std::panic::catch_unwind(|| {
                let a: [&[f32]; B] =
                    std::array::from_fn(|r| if r == i { &short[..] } else { &long[..] });
                let b: [&[f32]; B] =
                    std::array::from_fn(|c| if B + c == i { &short[..] } else { &long[..] });
                block(&a, &b)
            })
            .expect_err("ragged slices must panic");
            let msg = msg.downcast_ref::<&str>().copied().unwrap_or_default();
            assert!(msg.contains("different lengths"), "slice {i}: {msg}");
        }
        // and so does a longer one
        let a: [&[f32]; B] = [&short, &short, &short, &long];
        let b: [&[f32]; B] = [&short; B];
        assert!(std::panic::catch_unwind(|| block(&a, &b)).is_err());
    }

    #[test]
    fn matches_f64_on_every_pair() {
        for (n, len) in [(1usize, 5usize), (3, 17), (5, 2048), (9, 4100), (31, 700)] {
            let rows: Vec<f32> = (0..n * len)
                .map(|i| ((i * 7919) % 1013) as f32 / 506.0 - 1.0)
                .collect();
            let g = gram(&rows, n, len);
            // the vector kernel and its plain twin agree bit for bit
            let (a, b) = (
                std::array::from_fn(|r| &rows[(r % n) * len..][..len]),
                std::array::from_fn(|c| &rows[((c + 1) % n) * len..][..len]),
            );
            assert_eq!(block(&a, &b), block_lanes(&a, &b), "n={n} len={len}");
            for i in 0..n {
                for j in 0..n {
                    let (a, b) = (&rows[i * len..][..len], &rows[j * len..][..len]);
                    let exact: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
                    let mag: f64 = a
                        .iter()
                        .zip(b)
                        .map(|(x, y)| (*x as f64 * *y as f64).abs())
                        .sum();
                    let err = (g[i * n + j] - exact).abs();
                    assert!(
                        err <= (CHUNK.min(len) as f64 + 1.0) * f32::EPSILON as f64 * mag,
                        "n={n} len={len} [{i}][{j}]: {} vs {exact}",
                        g[i * n + j]
                    );
                    assert_eq!(g[i * n + j], g[j * n + i]);
                }
            }
        }
    }
}

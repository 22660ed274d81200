//! [`Tile`]: one call of the packed f32 kernel, described by pointers, and its portable
//! body. The AVX-512 body is `avx512::tile`; `kernel.rs` chooses between them
//! ([`Tile::run`]).

use super::packed::NR;

/// Inputs summed in one chain before the chain's sum is added to the output: a sum of `k`
/// products is `k / SUM_BLOCK` chains of `SUM_BLOCK` added in order, so its rounding
/// error grows with `SUM_BLOCK + k / SUM_BLOCK` rather than `k`: one chain put the default
/// model's float32 logits 1.4-6.9e-4 from float64, blocks of 64 or 128 0.5-2.5e-4 (PyTorch
/// 0.6-1.4e-4); 128 adds a block's sum to the output half as often. Products cut their
/// input only at multiples of it, so the blocks fall at the same inputs whatever the
/// blocking.
pub const SUM_BLOCK: usize = 128;

/// One kernel call: `C[r][q * NR + j] (+)= Σ_p A[r][p] · b[q * stride + p * NR + j]`
/// for `r < rows`, `q < panels`, `j < NR` (`j < cols` in the last panel): per output, for
/// each [`SUM_BLOCK`] of `p` in order, one chain of fused multiply-adds from zero, added
/// to the value in `C` (the first block's chain is stored as it is unless `load`).
///
/// Contract: `a` points to the `rows x kc` values of `A` (see `lda`), `b` to `panels` runs of `kc * NR` values
/// `stride` apart; `c` is valid for `rows` rows of `ldc` values, of which the first
/// `(panels - 1) * NR + cols` are used; `cols <= NR`.
pub(crate) struct Tile {
    pub rows: usize,
    pub panels: usize,
    pub a: *const f32,
    /// `A` is row-major with rows `lda` apart (`A[r][p] = a[r * lda + p]`).
    pub lda: usize,
    pub b: *const f32,
    pub stride: usize,
    pub kc: usize,
    pub c: *mut f32,
    pub ldc: usize,
    pub cols: usize,
    pub load: bool,
}

impl Tile {
    /// The tile in plain Rust, the same multiply-adds in the same order as the AVX-512
    /// body.
    ///
    /// # Safety
    /// The pointers must satisfy [`Tile`]'s contract.
    pub(super) unsafe fn portable(&self) {
        for r in 0..self.rows {
            for q in 0..self.panels {
                let cols = if q + 1 == self.panels { self.cols } else { NR };
                for j in 0..cols {
                    // SAFETY: r < rows, q * NR + j < (panels - 1) * NR + cols, p < kc: the
                    // ranges of `a`, `b` and `c` the contract makes valid (`c` read only
                    // when `load`, where it holds an earlier chunk's sums)
                    unsafe {
                        let at = self.c.add(r * self.ldc + q * NR + j);
                        let mut s = self.load.then(|| *at);
                        for p0 in (0..self.kc).step_by(SUM_BLOCK) {
                            let mut part = 0f32;
                            for p in p0..self.kc.min(p0 + SUM_BLOCK) {
                                let x = *self.a.add(r * self.lda + p);
                                part = x.mul_add(*self.b.add(q * self.stride + p * NR + j), part);
                            }
                            s = Some(s.map_or(part, |s| s + part));
                        }
                        *at = s.unwrap_or(0.0);
                    }
                }
            }
        }
    }
}

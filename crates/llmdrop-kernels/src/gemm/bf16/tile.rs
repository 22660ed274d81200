//! [`Tile`]: one call of the bf16 kernel, described by pointers, and its portable body.
//! The AVX-512 BF16 body is `avx512::tile`; `kernel.rs` chooses between them
//! ([`Tile::run`]).

use super::arith::{dot_pair, tile_block};
use super::order::BLOCK;
use crate::gemm::NR;

/// One kernel call: for `r < rows`, `q < panels`, `j < NR` (`j < cols` in the last
/// panel), `C[r][q * NR + j]` is the chain `s = dot_pair(s, A[r][p], b[q * stride + p * NR + j])`
/// over the steps `p < steps` in order, starting from the value in `C` when `load`, else
/// from `+0` ([`dot_pair`]: the step's upper-half product, then its lower-half one).
///
/// Contract: `a` points to the `rows x steps` lanes of `A` (see `lda`), `b` to `panels`
/// runs of `steps * NR` lanes `stride` apart; `c` is valid for `rows` rows of `ldc`
/// values, of which the first `(panels - 1) * NR + cols` are used; `cols <= NR`.
pub(crate) struct Tile {
    pub rows: usize,
    pub panels: usize,
    pub a: *const u32,
    /// `A` is row-major with rows `lda` lanes apart (`A[r][p] = a[r * lda + p]`).
    pub lda: usize,
    pub b: *const u32,
    pub stride: usize,
    pub steps: usize,
    pub c: *mut f32,
    pub ldc: usize,
    pub cols: usize,
    pub load: bool,
}

impl Tile {
    /// The tile in plain Rust, the same roundings in the same order as the AVX-512 BF16
    /// body.
    ///
    /// # Safety
    /// The pointers must satisfy [`Tile`]'s contract.
    pub(super) unsafe fn portable(&self) {
        for r in 0..self.rows {
            for q in 0..self.panels {
                let cols = if q + 1 == self.panels { self.cols } else { NR };
                for j in 0..cols {
                    // SAFETY: r < rows, q * NR + j < (panels - 1) * NR + cols, p < steps:
                    // the ranges of `a`, `b` and `c` the contract makes valid (`c` read
                    // only when `load`, where it holds an earlier chunk's sums)
                    unsafe {
                        let at = self.c.add(r * self.ldc + q * NR + j);
                        let mut s = if self.load { *at } else { 0.0 };
                        for p in 0..self.steps {
                            let x = *self.a.add(r * self.lda + p);
                            s = dot_pair(s, x, *self.b.add(q * self.stride + p * NR + j));
                        }
                        *at = s;
                    }
                }
            }
        }
    }

    /// The tile summed in [`Order::Tiles`](super::Order::Tiles): block after block of
    /// [`BLOCK`] steps ([`tile_block`]); `steps` must be a multiple of `BLOCK`, starting
    /// on a block boundary.
    ///
    /// # Safety
    /// The pointers must satisfy [`Tile`]'s contract.
    pub(super) unsafe fn portable_tiles(&self) {
        debug_assert!(self.steps.is_multiple_of(BLOCK));
        for r in 0..self.rows {
            // SAFETY: row r < rows of `a`, steps lanes (the contract)
            let x = unsafe { std::slice::from_raw_parts(self.a.add(r * self.lda), self.steps) };
            for q in 0..self.panels {
                let cols = if q + 1 == self.panels { self.cols } else { NR };
                for j in 0..cols {
                    // SAFETY: as in `portable`: lanes of `b` and the value of `c` the
                    // contract makes valid (`c` read only when `load`)
                    unsafe {
                        let at = self.c.add(r * self.ldc + q * NR + j);
                        let mut s = if self.load { *at } else { 0.0 };
                        for (blk, xb) in x.chunks_exact(BLOCK).enumerate() {
                            let b = self.b.add(q * self.stride + (blk * BLOCK) * NR + j);
                            s = tile_block(s, xb, |p| *b.add(p * NR));
                        }
                        *at = s;
                    }
                }
            }
        }
    }
}

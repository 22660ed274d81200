//! `y = x Wᵀ` for a [`PackedMatrix`] `W`: tiles of up to [`MR`] activation rows read in
//! place ([`Shape`]), the input dimension cut in cache-sized chunks, panels of `W` split
//! across the rayon pool.

use std::ops::Range;

use super::blocking::{Blocking, Shape};
use super::packed::{PackedMatrix, NR};
use super::tile::Tile;
use crate::shared_out::SharedOut;
use crate::split::split_items;
use crate::Kernel;

/// Activation rows per kernel call.
pub const MR: usize = 12;
/// Activation rows per pass over a panel chunk (a multiple of `MR`).
pub(crate) const MC: usize = 32 * MR;
/// Below this many multiply-adds a product runs on the calling thread.
pub(crate) const PARALLEL_MIN_MACS: usize = 1 << 18;

/// Rows and panels one call covers for `m` activation rows: a single row (decode) has
/// too few independent sums to hide the multiply-add latency, so it runs over 4 panels at
/// once; more than 3 rows run in calls of `shape`.
pub(crate) fn call(m: usize, shape: Shape) -> (usize, usize) {
    match m {
        1 => (1, 4),
        2 | 3 => (m, 2),
        _ => (shape.rows(), shape.panels()),
    }
}

/// `x`: row-major `[m, w.cols()]` -> `[m, w.rows()]`.
pub fn matmul(w: &PackedMatrix, x: &[f32], kernel: Kernel) -> Vec<f32> {
    matmul_blocked(w, x, kernel, Blocking::get())
}

/// [`matmul`] with the given blocking: the same bits for any blocking (`kc` is rounded up
/// to whole [`SUM_BLOCK`](super::SUM_BLOCK)s, `mc` to whole tiles of [`MR`] rows, any
/// [`Shape`]).
pub fn matmul_blocked(w: &PackedMatrix, x: &[f32], kernel: Kernel, blocking: Blocking) -> Vec<f32> {
    product(w, x, kernel, blocking, true)
}

/// [`matmul_blocked`] on the calling thread alone, whatever the pool's size: what one core
/// does with the blocking (the same bits).
pub(crate) fn matmul_on_this_thread(
    w: &PackedMatrix,
    x: &[f32],
    kernel: Kernel,
    blocking: Blocking,
) -> Vec<f32> {
    product(w, x, kernel, blocking, false)
}

/// [`matmul_blocked`], its panels split across the pool when `split` (and the product is
/// large enough to be worth it).
fn product(
    w: &PackedMatrix,
    x: &[f32],
    kernel: Kernel,
    blocking: Blocking,
    split: bool,
) -> Vec<f32> {
    let (k, n) = (w.cols(), w.rows());
    if k == 0 {
        return Vec::new();
    }
    assert_eq!(
        x.len() % k,
        0,
        "input width must equal the matrix's columns"
    );
    let m = x.len() / k;
    if m == 0 || n == 0 {
        return vec![0f32; m * n];
    }
    let simd = kernel.avx512f();
    let mut y = Vec::new();
    let out = SharedOut::spare(&mut y, m * n);
    // with few rows nothing is reused from L1: stream each panel whole
    // any blocking is sound: at least one input per chunk, whole tiles per row block
    let kc_max = if m <= MR { k } else { blocking.chunk() };
    let mc = blocking.mc.div_ceil(MR).max(1) * MR;
    let (mr, wide) = call(m, blocking.shape);
    let stride = k * NR;
    let run = |panels: Range<usize>| {
        for pc in (0..k).step_by(kc_max) {
            let kc = kc_max.min(k - pc);
            for ic in (0..m).step_by(mc) {
                let mut j = panels.start;
                while j < panels.end {
                    let fits = j + wide <= panels.end && (j + wide - 1) * NR < n;
                    let count = if fits { wide } else { 1 };
                    let b = &w.panels_from(j)[pc * NR..];
                    let cols = NR.min(n - (j + count - 1) * NR);
                    for ir in (ic..m.min(ic + mc)).step_by(mr) {
                        let rows = mr.min(m - ir);
                        let a = &x[ir * k + pc..(ir + rows - 1) * k + pc + kc];
                        let t = Tile {
                            rows,
                            panels: count,
                            a: a.as_ptr(),
                            lda: k,
                            b: b.as_ptr(),
                            stride,
                            kc,
                            // SAFETY: row ir, column j*NR lie in y
                            c: unsafe { out.at(ir * n + j * NR) },
                            ldc: n,
                            cols,
                            load: pc > 0,
                        };
                        // SAFETY: a spans rows x kc values k apart, b count panels' chunks
                        // (j + count <= w.panels(), pc + kc <= k); rows ir.. and panels
                        // j..j + count lie in y's reserved room (m * n), whose columns this
                        // task alone writes; `simd` only where `Caps::avx512f` holds
                        unsafe { t.run(simd) };
                    }
                    j += count;
                }
            }
        }
    };
    split_items(w.panels(), split && m * n * k >= PARALLEL_MIN_MACS, run);
    // SAFETY: the first k-chunk's tiles wrote every row 0..m of every panel's columns
    // (later chunks only add to them)
    unsafe { y.set_len(m * n) };
    y
}

impl Tile {
    /// Runs the tile, on the AVX-512 kernel when `simd`.
    ///
    /// # Safety
    /// The pointers must satisfy [`Tile`]'s contract (the values read initialised; those
    /// of `C` only read when `load`); `simd` only where [`Caps::avx512f`] holds
    /// ([`Kernel::avx512f`]).
    ///
    /// [`Caps::avx512f`]: crate::Caps::avx512f
    pub(crate) unsafe fn run(&self, simd: bool) {
        #[cfg(target_arch = "x86_64")]
        if simd {
            // SAFETY: the caller's contract: the CPU has AVX-512 F and what it implies, and
            // the pointers are valid
            return unsafe { super::avx512::tile(self) };
        }
        let _ = simd;
        // SAFETY: the caller's contract on the pointers
        unsafe { self.portable() };
    }
}

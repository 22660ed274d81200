//! `y = x Wᵀ` for a [`Bf16Matrix`] `W`: the activations rounded and paired once, then tiles
//! of [`MR`] rows, the steps cut in cache-sized chunks, panels of `W` split across the
//! rayon pool — the blocking of the f32 [`matmul`](crate::gemm::matmul).

use std::ops::Range;

use super::packed::Bf16Matrix;
use super::tile::Tile;
use crate::error::{Error, Result};
use crate::gemm::kernel::{MC, PARALLEL_MIN_MACS};
use crate::gemm::{MR, NR};
use crate::shared_out::SharedOut;
use crate::split::split_items;
use crate::Kernel;

/// Steps (input pairs) per chunk: a chunk of a panel (`KCP * NR` lanes, 256 KiB) stays in
/// L2, as the f32 kernel's 2048 inputs do.
const KCP: usize = 2048;

/// Panels one call covers for `m` activation rows: a single row (decode) has too few
/// independent sums to hide the latency of `vdpbf16ps`, so it runs over 4 panels at once.
fn panels_per_call(m: usize) -> usize {
    match m {
        1 => 4,
        2 | 3 => 2,
        _ => 1,
    }
}

/// `x`: row-major f32 `[m, w.cols()]` -> `[m, w.rows()]`, each input rounded to bf16
/// ([`round`](super::round)), each output the chain of the [module docs](super).
///
/// # Errors
/// [`Error::Width`] when `x` is no whole number of rows of `w.cols()` values (with no
/// columns, only an empty `x` is).
pub fn matmul(w: &Bf16Matrix, x: &[f32], kernel: Kernel) -> Result<Vec<f32>> {
    let (k, n) = (w.cols(), w.rows());
    let width = || Error::Width {
        values: x.len(),
        cols: k,
    };
    if k == 0 {
        return if x.is_empty() {
            Ok(Vec::new())
        } else {
            Err(width())
        };
    }
    if !x.len().is_multiple_of(k) {
        return Err(width());
    }
    let m = x.len() / k;
    if m == 0 || n == 0 {
        return Ok(vec![0f32; m * n]);
    }
    let simd = kernel.avx512_bf16();
    let steps = w.steps();
    let xb = pairs(x, k, simd);
    let mut y = Vec::new();
    let out = SharedOut::spare(&mut y, m * n);
    // with few rows nothing is reused from L1: stream each panel whole
    let kc_max = if m <= MR { steps } else { KCP };
    let wide = panels_per_call(m);
    let stride = steps * NR;
    let run = |panels: Range<usize>| {
        for pc in (0..steps).step_by(kc_max) {
            let kc = kc_max.min(steps - pc);
            for ic in (0..m).step_by(MC) {
                let mut j = panels.start;
                while j < panels.end {
                    let fits = j + wide <= panels.end && (j + wide - 1) * NR < n;
                    let count = if fits { wide } else { 1 };
                    let b = &w.panels_from(j)[pc * NR..];
                    let cols = NR.min(n - (j + count - 1) * NR);
                    for ir in (ic..m.min(ic + MC)).step_by(MR) {
                        let rows = MR.min(m - ir);
                        let a = &xb[ir * steps + pc..(ir + rows - 1) * steps + pc + kc];
                        let t = Tile {
                            rows,
                            panels: count,
                            a: a.as_ptr(),
                            lda: steps,
                            b: b.as_ptr(),
                            stride,
                            steps: kc,
                            // SAFETY: row ir, column j*NR lie in y
                            c: unsafe { out.at(ir * n + j * NR) },
                            ldc: n,
                            cols,
                            load: pc > 0,
                        };
                        // SAFETY: a spans rows x kc lanes `steps` apart, b count panels'
                        // chunks (j + count <= w.panels(), pc + kc <= steps); rows ir.. and
                        // panels j..j + count lie in y's reserved room (m * n), whose
                        // columns this task alone writes; `simd` only where
                        // `Caps::avx512_bf16` holds
                        unsafe { t.run(simd) };
                    }
                    j += count;
                }
            }
        }
    };
    split_items(w.panels(), m * n * k >= PARALLEL_MIN_MACS, run);
    // SAFETY: the first chunk's tiles wrote every row 0..m of every panel's columns
    // (later chunks only add to them)
    unsafe { y.set_len(m * n) };
    Ok(y)
}

/// The rows of `x` (`cols` values each) rounded to bf16 and paired as the kernel reads
/// them: `cols.div_ceil(2)` lanes a row.
fn pairs(x: &[f32], cols: usize, simd: bool) -> Vec<u32> {
    let mut out = vec![0u32; x.len() / cols * cols.div_ceil(2)];
    #[cfg(target_arch = "x86_64")]
    if simd {
        // SAFETY: `simd` only where `Caps::avx512_bf16` holds, which implies AVX-512 F and BW
        unsafe { super::avx512::pairs_into(x, cols, &mut out) };
        return out;
    }
    let _ = simd;
    super::arith::pairs_into(x, cols, &mut out);
    out
}

impl Tile {
    /// Runs the tile, on the AVX-512 BF16 kernel when `simd`.
    ///
    /// # Safety
    /// The pointers must satisfy [`Tile`]'s contract (the values read initialised; those
    /// of `C` only read when `load`); `simd` only where [`Caps::avx512_bf16`] holds
    /// ([`Kernel::avx512_bf16`]).
    ///
    /// [`Caps::avx512_bf16`]: crate::Caps::avx512_bf16
    pub(crate) unsafe fn run(&self, simd: bool) {
        #[cfg(target_arch = "x86_64")]
        if simd {
            // SAFETY: the caller's contract: the CPU has AVX-512 F and BF16, and the
            // pointers are valid
            return unsafe { super::avx512::tile(self) };
        }
        let _ = simd;
        // SAFETY: the caller's contract on the pointers
        unsafe { self.portable() };
    }
}

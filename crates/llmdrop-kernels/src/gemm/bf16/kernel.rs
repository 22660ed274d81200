//! `y = x Wᵀ` for a [`Bf16Matrix`] `W`: the activations rounded and paired once, then tiles
//! of [`MR`] rows (32 on AMX), the steps cut in cache-sized chunks, panels of `W` split
//! across the rayon pool — the blocking of the f32 [`matmul`](crate::gemm::matmul).

use std::ops::Range;

#[cfg(target_arch = "x86_64")]
use super::amx;
use super::order::{Order, BLOCK};
use super::packed::Bf16Matrix;
use super::tile::Tile;
use crate::error::{Error, Result};
use crate::gemm::kernel::{MC, PARALLEL_MIN_MACS};
use crate::gemm::{MR, NR};
use crate::shared_out::SharedOut;
use crate::split::split_items;
use crate::Kernel;

/// Steps (input pairs) per chunk: a chunk of a panel (`KCP * NR` lanes, 256 KiB) stays in
/// L2, as the f32 kernel's 2048 inputs do. A multiple of [`BLOCK`]: chunks of
/// [`Order::Tiles`] end on block boundaries.
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
/// ([`round`](super::round)), summed in this CPU's [`Order::native`]: what
/// [`matmul_in`] gives for it.
///
/// # Errors
/// As [`matmul_in`].
pub fn matmul(w: &Bf16Matrix, x: &[f32], kernel: Kernel) -> Result<Vec<f32>> {
    matmul_in(w, x, kernel, Order::native())
}

/// [`matmul`] summed in `order`: on `Kernel::Auto`, [`Order::Tiles`] runs on AMX and
/// [`Order::Chain`] on AVX-512 BF16 where the CPU has them, else (and on
/// `Kernel::Portable`) on the portable twin of the order, with the same bits.
///
/// # Errors
/// [`Error::Width`] when `x` is no whole number of rows of `w.cols()` values (with no
/// columns, only an empty `x` is).
pub fn matmul_in(w: &Bf16Matrix, x: &[f32], kernel: Kernel, order: Order) -> Result<Vec<f32>> {
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
    #[cfg(target_arch = "x86_64")]
    let tiles = order == Order::Tiles && kernel.amx_bf16();
    #[cfg(target_arch = "x86_64")]
    let xb = if tiles {
        amx::tile_pairs(x, k, w.block_steps(), kernel.avx512_bf16())
    } else {
        pairs(x, k, w.block_steps(), kernel.avx512_bf16())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let xb = pairs(x, k, w.block_steps(), kernel.avx512_bf16());
    let mut y = Vec::new();
    let out = SharedOut::spare(&mut y, m * n);
    let parallel = m * n * k >= PARALLEL_MIN_MACS;
    let p = Product {
        w,
        xb: &xb,
        m,
        out: &out,
    };
    match order {
        #[cfg(target_arch = "x86_64")]
        Order::Tiles if tiles => split_items(w.panels(), parallel, |r| p.on_tiles(r)),
        Order::Tiles => split_items(w.panels(), parallel, |r| p.in_steps(r, Mode::TilesPortable)),
        Order::Chain => {
            let mode = match kernel.avx512_bf16() {
                true => Mode::ChainSimd,
                false => Mode::ChainPortable,
            };
            split_items(w.panels(), parallel, |r| p.in_steps(r, mode))
        }
    }
    // SAFETY: the first chunk's tiles wrote every row 0..m of every panel's columns
    // (later chunks only add to them)
    unsafe { y.set_len(m * n) };
    Ok(y)
}

/// Which body runs a [`Tile`].
#[derive(Clone, Copy)]
pub(crate) enum Mode {
    /// [`Order::Chain`] on AVX-512 BF16 (only where [`Kernel::avx512_bf16`] holds).
    ChainSimd,
    /// [`Order::Chain`] in plain Rust.
    ChainPortable,
    /// [`Order::Tiles`] in plain Rust.
    TilesPortable,
}

/// One product's operands: the weights, the activations rounded and paired (`m` rows of
/// `w.block_steps()` lanes, one after the other, or in the AMX tiles' order for
/// [`Product::on_tiles`]) and the output `[m, w.rows()]`, whose panels' columns each task
/// writes alone.
struct Product<'a> {
    w: &'a Bf16Matrix,
    xb: &'a [u32],
    m: usize,
    out: &'a SharedOut,
}

impl Product<'_> {
    /// Panels `panels` on [`Tile`]s of up to [`MR`] rows: the steps cut in chunks of
    /// [`KCP`], rows in passes of [`MC`].
    fn in_steps(&self, panels: Range<usize>, mode: Mode) {
        let (w, m) = (self.w, self.m);
        let n = w.rows();
        let lda = w.block_steps();
        // the chain stops at the last pair; the tiles run whole blocks
        let steps = match mode {
            Mode::TilesPortable => lda,
            Mode::ChainSimd | Mode::ChainPortable => w.steps(),
        };
        let stride = lda * NR;
        // with few rows nothing is reused from L1: stream each panel whole
        let kc_max = if m <= MR { steps } else { KCP };
        let wide = panels_per_call(m);
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
                        let a = &self.xb[ir * lda + pc..(ir + rows - 1) * lda + pc + kc];
                        let t = Tile {
                            rows,
                            panels: count,
                            a: a.as_ptr(),
                            lda,
                            b: b.as_ptr(),
                            stride,
                            steps: kc,
                            // SAFETY: row ir, column j*NR lie in y
                            c: unsafe { self.out.at(ir * n + j * NR) },
                            ldc: n,
                            cols,
                            load: pc > 0,
                        };
                        // SAFETY: a spans rows x kc lanes `lda` apart, b count panels'
                        // chunks (j + count <= w.panels(), pc + kc <= steps <= lda); rows
                        // ir.. and panels j..j + count lie in y's reserved room (m * n),
                        // whose columns this task alone writes; ChainSimd only where
                        // `Caps::avx512_bf16` holds
                        unsafe { t.run(mode) };
                    }
                    j += count;
                }
            }
        }
    }

    /// Panels `panels` on the AMX tiles, `self.xb` in tile order ([`amx::tile_pairs`]),
    /// [`amx::ROWS`] rows a call: whole blocks, in
    /// chunks of [`KCP`] steps (measured: 256 or 1024 lose to 2048, the sums' tiles stored
    /// and loaded again between chunks), rows in passes of [`MC`].
    #[cfg(target_arch = "x86_64")]
    fn on_tiles(&self, panels: Range<usize>) {
        // row passes start on whole calls, so every call's rows start a group (of 16
        // rows, or of all m when fewer)
        const { assert!(MC.is_multiple_of(amx::ROWS)) };
        let (w, m) = (self.w, self.m);
        let n = w.rows();
        let steps = w.block_steps();
        let kc_max = if m <= amx::ROWS { steps } else { KCP };
        let mut tiles = amx::Tiles::new();
        for pc in (0..steps).step_by(kc_max) {
            let kc = kc_max.min(steps - pc);
            for ic in (0..m).step_by(MC) {
                let mut j = panels.start;
                while j < panels.end {
                    // few rows: two whole panels a call, four sums in flight
                    let two = m - ic <= 16 && j + 1 < panels.end && (j + 2) * NR <= n;
                    let count = if two { 2 } else { 1 };
                    let b = &w.panels_from(j)[pc * NR..];
                    let cols = (count * NR).min(n - j * NR);
                    for ir in (ic..m.min(ic + MC)).step_by(amx::ROWS) {
                        let rows = amx::ROWS.min(m - ir);
                        // rows ir.. in tile order: their group's blocks from pc on
                        let g = amx::group_rows(m);
                        let (block, group) = (g * BLOCK, g * steps);
                        let a = &self.xb[ir / g * group + pc / BLOCK * block..];
                        let t = amx::AmxTile {
                            rows,
                            cols,
                            a: a.as_ptr(),
                            block,
                            group,
                            b: b.as_ptr(),
                            blocks: kc / BLOCK,
                            // SAFETY: row ir, column j*NR lie in y
                            c: unsafe { self.out.at(ir * n + j * NR) },
                            ldc: n,
                            load: pc > 0,
                            panels: count,
                            stride: steps * NR,
                        };
                        // SAFETY: only where `Kernel::amx_bf16` holds; `xb` is in tile
                        // order (`amx::tile_pairs`), whole groups of g rows: from `a`, kc /
                        // BLOCK blocks of rows ir.. and of the next group where rows > 16
                        // (then g = 16); b kc steps of panel j (and j + 1 for two: both
                        // whole, inside this task's range) (pc and kc whole blocks: KCP
                        // and steps are multiples of BLOCK); rows ir.. x the panels' cols
                        // lie in y's reserved room, written by this task alone; two panels
                        // only for at most 16 rows
                        unsafe { tiles.run(&t) };
                    }
                    j += count;
                }
            }
        }
    }
}

/// The rows of `x` (`cols` values each) rounded to bf16 and paired as the kernels read
/// them: `lanes` lanes a row (at least `cols.div_ceil(2)`), the rest `+0`.
fn pairs(x: &[f32], cols: usize, lanes: usize, simd: bool) -> Vec<u32> {
    let kp = cols.div_ceil(2);
    let mut out = vec![0u32; x.len() / cols * lanes];
    for (row, dst) in x.chunks_exact(cols).zip(out.chunks_exact_mut(lanes)) {
        let dst = &mut dst[..kp];
        #[cfg(target_arch = "x86_64")]
        if simd {
            // SAFETY: `simd` only where `Caps::avx512_bf16` holds, which implies AVX-512 F
            // and BW
            unsafe { super::avx512::pairs_into(row, cols, dst) };
            continue;
        }
        let _ = simd;
        super::arith::pairs_into(row, cols, dst);
    }
    out
}

impl Tile {
    /// Runs the tile on the body `mode` names.
    ///
    /// # Safety
    /// The pointers must satisfy [`Tile`]'s contract (the values read initialised; those
    /// of `C` only read when `load`); [`Mode::ChainSimd`] only where
    /// [`Caps::avx512_bf16`] holds ([`Kernel::avx512_bf16`]).
    ///
    /// [`Caps::avx512_bf16`]: crate::Caps::avx512_bf16
    pub(crate) unsafe fn run(&self, mode: Mode) {
        match mode {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the caller's contract: the CPU has AVX-512 F and BF16, and the
            // pointers are valid
            Mode::ChainSimd => unsafe { super::avx512::tile(self) },
            // SAFETY: the caller's contract on the pointers
            Mode::TilesPortable => unsafe { self.portable_tiles() },
            // SAFETY: the caller's contract on the pointers
            _ => unsafe { self.portable() },
        }
    }
}

//! The AMX kernel: `tdpbf16ps` on the tile registers, up to 32 activation rows × one
//! panel of 32 outputs a call, in four accumulator tiles.
//!
//! Tiles: `tmm0`-`tmm3` hold the sums (rows 0-15 / 16-31 × outputs 0-15 / 16-31), `tmm4`
//! and `tmm5` the two row groups' activation pairs of one block, `tmm6` and `tmm7` the
//! panel's weight pairs of that block for outputs 0-15 and 16-31. A block is one 64-byte
//! row of pairs of each activation row and [`BLOCK`] rows of the panel (a panel step is
//! 128 bytes: the two weight tiles are its halves). Up to 16 rows may instead cover two
//! panels a call ([`Config::two_panels`]). A call's shape (rows, outputs, panels) is the
//! tile configuration; [`Tiles`] loads it only when the shape changes.

use std::arch::asm;

use super::order::BLOCK;
use crate::gemm::NR;

/// Activation rows of one tile.
const TILE_ROWS: usize = 16;
/// Outputs of one tile: a 64-byte row of f32 sums.
const TILE_COLS: usize = 16;
/// Activation rows per call: two tiles.
pub(crate) const ROWS: usize = 2 * TILE_ROWS;
/// Rows of a group in the tile order of `m` activation rows: a tile's 16, or all `m`
/// when fewer (a decode step's one row is then stored as one row, not padded to 16).
pub(crate) fn group_rows(m: usize) -> usize {
    m.clamp(1, TILE_ROWS)
}

/// The rows of `x` (`cols` values each) rounded to bf16 and paired as
/// [`arith::pairs_into`](super::arith::pairs_into) pairs them, `lanes` lanes a row (a
/// multiple of [`BLOCK`]), in the order the tile loads read them: groups of
/// [`group_rows`] rows, each group's blocks in turn, a block's rows' runs of [`BLOCK`] lanes
/// one after the other (16 rows: 1 KiB in order). Lanes past a row's values and rows a
/// last group lacks are `+0`. Reading a tile's 16 rows from 16 places a row apart instead
/// made each product copy them into this order first (or load a strided 1 KiB no
/// prefetcher follows; with rows a multiple of 4 KiB long, all 16 lines in one L1 set).
pub(crate) fn tile_pairs(x: &[f32], cols: usize, lanes: usize, simd: bool) -> Vec<u32> {
    let m = x.len().checked_div(cols).unwrap_or(0);
    let g = group_rows(m);
    let mut out = vec![0u32; m.div_ceil(g) * g * lanes];
    let tile = (g, BLOCK);
    if simd {
        // SAFETY: `simd` only where `Caps::avx512_bf16` holds, which implies AVX-512 F
        // and BW
        unsafe { super::avx512::tile_pairs_into(x, cols, lanes, tile, &mut out) };
    } else {
        super::arith::tile_pairs_into(x, cols, lanes, tile, &mut out);
    }
    out
}

/// Whether this CPU has AMX-TILE and AMX-BF16 and the operating system lets this process
/// use the tile data: on Linux, asked for once with `arch_prctl(ARCH_REQ_XCOMP_PERM)`
/// (granted only where the kernel supports the state and every thread's alternate signal
/// stack can hold the 8 KiB it adds to a signal frame: call [`crate::caps`] before
/// spawning threads, as the CLI does). Elsewhere `false`; then bf16 products sum in
/// [`Order::Chain`](super::Order::Chain).
pub(crate) fn enable() -> bool {
    // every x86-64 CPU has cpuid; leaf 7 reads as zeros where it is absent
    let leaf7 = std::arch::x86_64::__cpuid_count(7, 0);
    let amx = leaf7.edx & (1 << 22) != 0 && leaf7.edx & (1 << 24) != 0;
    amx && os::permit_tile_data()
}

#[cfg(target_os = "linux")]
mod os {
    use std::arch::asm;

    const SYS_ARCH_PRCTL: i64 = 158;
    const ARCH_GET_XCOMP_SUPP: u64 = 0x1021;
    const ARCH_REQ_XCOMP_PERM: u64 = 0x1023;
    const XFEATURE_XTILEDATA: u64 = 18;

    /// `arch_prctl(code, arg)`: the kernel's return value (negative: an error number).
    ///
    /// # Safety
    /// `arg` must be what `code` takes: for `ARCH_GET_XCOMP_SUPP` the address of a `u64`
    /// the kernel writes.
    unsafe fn arch_prctl(code: u64, arg: u64) -> i64 {
        let ret: i64;
        // SAFETY: the Linux x86-64 system call convention (number in rax, arguments in
        // rdi and rsi, rcx and r11 clobbered); what the call writes is the caller's
        // contract
        unsafe {
            asm!(
                "syscall",
                inlateout("rax") SYS_ARCH_PRCTL => ret,
                in("rdi") code,
                in("rsi") arg,
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack),
            );
        }
        ret
    }

    pub(super) fn permit_tile_data() -> bool {
        let mut supported = 0u64;
        // SAFETY: ARCH_GET_XCOMP_SUPP writes one u64 at the address given, a live local
        let got = unsafe { arch_prctl(ARCH_GET_XCOMP_SUPP, &mut supported as *mut u64 as u64) };
        if got != 0 || supported & (1 << XFEATURE_XTILEDATA) == 0 {
            return false;
        }
        // SAFETY: ARCH_REQ_XCOMP_PERM takes the feature number as a value
        unsafe { arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0 }
    }
}

#[cfg(not(target_os = "linux"))]
mod os {
    pub(super) fn permit_tile_data() -> bool {
        false
    }
}

/// One call: for `r < rows`, `j < cols`, `C[r][j]` becomes the [`Order::Tiles`] sum over
/// `blocks` blocks of `A`'s row `r` and output `j` of the panel `b`, starting from `C`'s
/// value when `load`, else from `+0`. With `panels == 2` (few rows: one row group's two
/// accumulators would wait on each other's latency) the call covers two whole panels,
/// `stride` lanes apart, as outputs `0..2 * NR` (`cols` is then `2 * NR`).
///
/// `A` is in tile order ([`tile_pairs`]): `a` points to the first block of the call's
/// first row group, whose rows' runs of [`BLOCK`] lanes lie one after the other (64 bytes
/// a row), the next block `block` lanes on; rows 16-31 start `group` lanes after `a`.
///
/// Contract: `a` holds `blocks` blocks of each row group the call has (rows `0..16` and,
/// for more than 16 rows, `16..rows`); `b` points to `blocks * BLOCK` steps of `NR` lanes
/// (and, for two panels, `b + stride` too); `c` is valid for `rows` rows of `cols` values,
/// `ldc` apart; `1 <= rows <= ROWS`, `1 <= cols <= NR`, or `panels == 2`, `rows <= 16` and
/// `cols == 2 * NR`.
///
/// [`Order::Tiles`]: super::Order::Tiles
pub(crate) struct AmxTile {
    pub rows: usize,
    pub cols: usize,
    pub a: *const u32,
    pub block: usize,
    pub group: usize,
    pub b: *const u32,
    pub blocks: usize,
    pub c: *mut f32,
    pub ldc: usize,
    pub load: bool,
    pub panels: usize,
    pub stride: usize,
}

/// The tile configuration `ldtilecfg` reads (palette 1).
#[repr(C, align(64))]
struct Config {
    palette: u8,
    start_row: u8,
    reserved: [u8; 14],
    colsb: [u16; 16],
    rows: [u8; 16],
}

impl Config {
    /// Tiles 0-7 as the module docs lay them out for `rows` activation rows and `cols`
    /// outputs; a tile the shape does not use is left unconfigured (0 rows).
    fn for_shape(rows: usize, cols: usize) -> Self {
        let (r0, r1) = (rows.min(TILE_ROWS), rows.saturating_sub(TILE_ROWS));
        let (c0, c1) = (cols.min(TILE_COLS), cols.saturating_sub(TILE_COLS));
        let mut cfg = Config {
            palette: 1,
            start_row: 0,
            reserved: [0; 14],
            colsb: [0; 16],
            rows: [0; 16],
        };
        let row_bytes = BLOCK * 4;
        let shapes = [
            (r0, c0 * 4),
            (r0, c1 * 4),
            (r1, c0 * 4),
            (r1, c1 * 4),
            (r0, row_bytes),
            (r1, row_bytes),
            (BLOCK, c0 * 4),
            (BLOCK, c1 * 4),
        ];
        for (t, (r, colsb)) in shapes.into_iter().enumerate() {
            if r > 0 && colsb > 0 {
                cfg.rows[t] = r as u8;
                cfg.colsb[t] = colsb as u16;
            }
        }
        cfg
    }

    /// Two panels' calls for `rows <= 16`: `tmm0`-`tmm3` the sums of outputs 0-15, 16-31,
    /// 32-47 and 48-63, `tmm4` the activations, `tmm5`-`tmm7` weight tiles in turn.
    fn two_panels(rows: usize) -> Self {
        let mut cfg = Self::for_shape(rows, NR);
        for t in [2, 3] {
            cfg.rows[t] = rows as u8;
            cfg.colsb[t] = (TILE_COLS * 4) as u16;
        }
        cfg.rows[5] = BLOCK as u8;
        cfg.colsb[5] = (TILE_COLS * 4) as u16;
        cfg
    }
}

/// The tile registers of the calling thread, configured for one shape at a time and
/// released when dropped. Keep one per task; do not hold it across code that may run
/// another task's tiles on the same thread.
pub(crate) struct Tiles {
    shape: Option<(usize, usize, usize)>,
}

impl Tiles {
    pub(crate) fn new() -> Self {
        Self { shape: None }
    }

    /// Runs `t` (see [`AmxTile`]).
    ///
    /// # Safety
    /// The CPU must have AMX-TILE and AMX-BF16 enabled for this process
    /// ([`crate::Caps::amx_bf16`]); `t` must satisfy [`AmxTile`]'s contract.
    pub(crate) unsafe fn run(&mut self, t: &AmxTile) {
        let two = t.panels == 2;
        debug_assert!(if two {
            (1..=TILE_ROWS).contains(&t.rows) && t.cols == 2 * NR
        } else {
            (1..=ROWS).contains(&t.rows) && (1..=NR).contains(&t.cols) && t.panels == 1
        });
        let shape = (t.rows, t.cols, t.panels);
        if self.shape != Some(shape) {
            let cfg = match two {
                true => Config::two_panels(t.rows),
                false => Config::for_shape(t.rows, t.cols),
            };
            // SAFETY: the caller's contract: AMX is enabled; the configuration is valid
            // for palette 1 (at most 16 rows and 64 bytes a tile)
            unsafe { asm!("ldtilecfg [{0}]", in(reg) &cfg, options(nostack, readonly)) };
            self.shape = Some(shape);
        }
        // SAFETY: the caller's contract, and the configuration loaded for this shape
        unsafe {
            if two {
                return two_panels(t);
            }
            match (t.rows > TILE_ROWS, t.cols > TILE_COLS) {
                (false, false) => body::<false, false>(t),
                (false, true) => body::<false, true>(t),
                (true, false) => body::<true, false>(t),
                (true, true) => body::<true, true>(t),
            }
        }
    }
}

impl Drop for Tiles {
    fn drop(&mut self) {
        if self.shape.is_some() {
            // SAFETY: a configuration was loaded on this thread, so AMX is enabled here
            unsafe { asm!("tilerelease", options(nostack, nomem)) };
        }
    }
}

/// `t` with a second row group (`TR`) and a second output group (`TC`) or not.
///
/// # Safety
/// As [`Tiles::run`], with the configuration for `t`'s shape loaded; `TR == rows > 16`,
/// `TC == cols > 16`.
#[inline(always)]
unsafe fn body<const TR: bool, const TC: bool>(t: &AmxTile) {
    let (sa, sb, sc) = (BLOCK * 4, NR * 4, t.ldc * 4);
    // SAFETY: the contract makes rows 0..rows of `c` (cols values each), `blocks` blocks
    // of `a`'s row groups and blocks * BLOCK steps of `b` valid; each tile
    // below reads or writes only its configured rows x bytes from the address given,
    // which lie in those ranges (row group 1 and output group 1 only when TR / TC)
    unsafe {
        // wrapping: a group the shape lacks may lie past the buffer; it is never used
        let c1 = t.c.wrapping_add(TILE_COLS);
        let c2 = t.c.wrapping_add(TILE_ROWS * t.ldc);
        let c3 = c2.wrapping_add(TILE_COLS);
        if t.load {
            asm!("tileloadd tmm0, [{0} + {1}]", in(reg) t.c, in(reg) sc, options(nostack, readonly));
            if TC {
                asm!("tileloadd tmm1, [{0} + {1}]", in(reg) c1, in(reg) sc, options(nostack, readonly));
            }
            if TR {
                asm!("tileloadd tmm2, [{0} + {1}]", in(reg) c2, in(reg) sc, options(nostack, readonly));
            }
            if TR && TC {
                asm!("tileloadd tmm3, [{0} + {1}]", in(reg) c3, in(reg) sc, options(nostack, readonly));
            }
        } else {
            asm!("tilezero tmm0", options(nostack, nomem));
            if TC {
                asm!("tilezero tmm1", options(nostack, nomem));
            }
            if TR {
                asm!("tilezero tmm2", options(nostack, nomem));
            }
            if TR && TC {
                asm!("tilezero tmm3", options(nostack, nomem));
            }
        }
        let (mut a0, mut b0) = (t.a, t.b);
        let a1_offset = t.group;
        for _ in 0..t.blocks {
            // each product right after the loads it needs, so that the next loads overlap
            // the products before them
            asm!("tileloadd tmm4, [{0} + {1}]", in(reg) a0, in(reg) sa, options(nostack, readonly));
            asm!("tileloadd tmm6, [{0} + {1}]", in(reg) b0, in(reg) sb, options(nostack, readonly));
            asm!("tdpbf16ps tmm0, tmm4, tmm6", options(nostack, nomem));
            if TC {
                asm!("tileloadd tmm7, [{0} + {1}]", in(reg) b0.add(TILE_COLS), in(reg) sb, options(nostack, readonly));
                asm!("tdpbf16ps tmm1, tmm4, tmm7", options(nostack, nomem));
            }
            if TR {
                asm!("tileloadd tmm5, [{0} + {1}]", in(reg) a0.add(a1_offset), in(reg) sa, options(nostack, readonly));
                asm!("tdpbf16ps tmm2, tmm5, tmm6", options(nostack, nomem));
            }
            if TR && TC {
                asm!("tdpbf16ps tmm3, tmm5, tmm7", options(nostack, nomem));
            }
            a0 = a0.add(t.block);
            b0 = b0.add(BLOCK * NR);
        }
        asm!("tilestored [{0} + {1}], tmm0", in(reg) t.c, in(reg) sc, options(nostack));
        if TC {
            asm!("tilestored [{0} + {1}], tmm1", in(reg) c1, in(reg) sc, options(nostack));
        }
        if TR {
            asm!("tilestored [{0} + {1}], tmm2", in(reg) c2, in(reg) sc, options(nostack));
        }
        if TR && TC {
            asm!("tilestored [{0} + {1}], tmm3", in(reg) c3, in(reg) sc, options(nostack));
        }
    }
}

/// Two whole panels for at most 16 rows: four accumulators, the activation tile loaded
/// once a block, the four weight tiles through three registers.
///
/// # Safety
/// As [`Tiles::run`], with [`Config::two_panels`] loaded for `t.rows`; `t.panels == 2`.
#[inline(always)]
unsafe fn two_panels(t: &AmxTile) {
    let (sa, sb, sc) = (BLOCK * 4, NR * 4, t.ldc * 4);
    // SAFETY: the contract makes rows 0..rows of `c` (2 * NR values each), `blocks` blocks
    // of `a`'s first row group and blocks * BLOCK steps of both panels valid; each tile reads or
    // writes its configured rows x 64 bytes from the addresses below, inside those ranges
    unsafe {
        let c = [
            t.c,
            t.c.add(TILE_COLS),
            t.c.add(NR),
            t.c.add(NR + TILE_COLS),
        ];
        if t.load {
            asm!("tileloadd tmm0, [{0} + {1}]", in(reg) c[0], in(reg) sc, options(nostack, readonly));
            asm!("tileloadd tmm1, [{0} + {1}]", in(reg) c[1], in(reg) sc, options(nostack, readonly));
            asm!("tileloadd tmm2, [{0} + {1}]", in(reg) c[2], in(reg) sc, options(nostack, readonly));
            asm!("tileloadd tmm3, [{0} + {1}]", in(reg) c[3], in(reg) sc, options(nostack, readonly));
        } else {
            asm!(
                "tilezero tmm0",
                "tilezero tmm1",
                "tilezero tmm2",
                "tilezero tmm3",
                options(nostack, nomem)
            );
        }
        let (mut a0, mut b0) = (t.a, t.b);
        for _ in 0..t.blocks {
            let b1 = b0.add(t.stride);
            asm!("tileloadd tmm4, [{0} + {1}]", in(reg) a0, in(reg) sa, options(nostack, readonly));
            asm!("tileloadd tmm5, [{0} + {1}]", in(reg) b0, in(reg) sb, options(nostack, readonly));
            asm!("tdpbf16ps tmm0, tmm4, tmm5", options(nostack, nomem));
            asm!("tileloadd tmm6, [{0} + {1}]", in(reg) b0.add(TILE_COLS), in(reg) sb, options(nostack, readonly));
            asm!("tdpbf16ps tmm1, tmm4, tmm6", options(nostack, nomem));
            asm!("tileloadd tmm7, [{0} + {1}]", in(reg) b1, in(reg) sb, options(nostack, readonly));
            asm!("tdpbf16ps tmm2, tmm4, tmm7", options(nostack, nomem));
            asm!("tileloadd tmm5, [{0} + {1}]", in(reg) b1.add(TILE_COLS), in(reg) sb, options(nostack, readonly));
            asm!("tdpbf16ps tmm3, tmm4, tmm5", options(nostack, nomem));
            a0 = a0.add(t.block);
            b0 = b0.add(BLOCK * NR);
        }
        asm!("tilestored [{0} + {1}], tmm0", in(reg) c[0], in(reg) sc, options(nostack));
        asm!("tilestored [{0} + {1}], tmm1", in(reg) c[1], in(reg) sc, options(nostack));
        asm!("tilestored [{0} + {1}], tmm2", in(reg) c[2], in(reg) sc, options(nostack));
        asm!("tilestored [{0} + {1}], tmm3", in(reg) c[3], in(reg) sc, options(nostack));
    }
}

/// Runs `iters` steps of four independent `tdpbf16ps` (16 x 16 outputs of 32 inputs
/// each) on zeroed tiles: the FLOPs of [`crate::peak::bf16_peak_gflops`] on AMX.
///
/// # Safety
/// The CPU must have AMX-TILE and AMX-BF16 enabled for this process
/// ([`crate::Caps::amx_bf16`]).
pub(crate) unsafe fn peak_steps(iters: usize) -> f64 {
    // every tile 16 rows x 64 bytes: tmm6 and tmm7 as the operands of all four products,
    // loaded with ones, as a product's operands hold data
    let cfg = Config::for_shape(ROWS, NR);
    let ones = [0x3f80_3f80u32; TILE_ROWS * TILE_COLS];
    // SAFETY: the caller's contract; the tiles used are configured; each load reads 16
    // rows of 64 bytes from `ones` (1 KiB)
    unsafe {
        asm!("ldtilecfg [{0}]", in(reg) &cfg, options(nostack, readonly));
        asm!(
            "tilezero tmm0",
            "tilezero tmm1",
            "tilezero tmm2",
            "tilezero tmm3",
            options(nostack, nomem)
        );
        asm!("tileloadd tmm6, [{0} + {1}]", in(reg) ones.as_ptr(), in(reg) 64usize, options(nostack, readonly));
        asm!("tileloadd tmm7, [{0} + {1}]", in(reg) ones.as_ptr(), in(reg) 64usize, options(nostack, readonly));
        for _ in 0..iters {
            asm!(
                "tdpbf16ps tmm0, tmm6, tmm7",
                "tdpbf16ps tmm1, tmm6, tmm7",
                "tdpbf16ps tmm2, tmm6, tmm7",
                "tdpbf16ps tmm3, tmm6, tmm7",
                options(nostack, nomem)
            );
        }
        asm!("tilerelease", options(nostack, nomem));
    }
    (iters * 4 * TILE_ROWS * TILE_COLS * 2 * BLOCK * 2) as f64
}

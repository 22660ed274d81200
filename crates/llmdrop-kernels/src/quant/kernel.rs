//! `y = x Wᵀ` for [`QMatrix`] weights: activations quantized per block, integer dot
//! products, groups of output rows split across the rayon pool. Several matrices that read
//! the same input ([`matmul_shared`]: a layer's query, key and value projections) quantize
//! it once and share one parallel section.

use super::act::QActs;
use super::matrix::{QMatrix, ROWS};
use crate::shared_out::SharedOut;
use crate::split::split_items;
use crate::Kernel;

/// Below this many multiply-adds a product runs on the calling thread: splitting it
/// costs more than it saves.
pub(super) const PARALLEL_MIN_MACS: usize = 1 << 18;

/// Activation rows per pass over a group of weights.
pub(super) const TILE_M: usize = 4;

/// One tile's outputs: `[activation row][output row of the group]`.
pub(super) type TileOut = [[f32; ROWS]; TILE_M];

/// `x`: row-major `[m, w.cols()]` -> `[m, w.rows()]`.
///
/// # Panics
/// If `x` is not whole rows of `w.cols()` values.
pub fn matmul(w: &QMatrix, x: &[f32], kernel: Kernel) -> Vec<f32> {
    matmul_shared(&[w], x, kernel)
        .pop()
        .expect("one output per matrix")
}

/// `x Wᵀ` for each `W` of `ws` (all of the same width): `x` is quantized once and every
/// matrix's groups share one parallel section. Each output is bit for bit [`matmul`]'s.
///
/// # Panics
/// If the widths differ or `x` is not whole rows of them.
pub fn matmul_shared(ws: &[&QMatrix], x: &[f32], kernel: Kernel) -> Vec<Vec<f32>> {
    let Some((m, acts)) = quantize_for(ws, x) else {
        return ws.iter().map(|_| Vec::new()).collect();
    };
    let simd = kernel.avx512_vnni();
    // written whole by the tiles: no serial pass zeroing them first (~5% of a 2-thread
    // prefill)
    let mut ys: Vec<Vec<f32>> = ws.iter().map(|_| Vec::new()).collect();
    let outs: Vec<SharedOut> = ys
        .iter_mut()
        .zip(ws)
        .map(|(y, w)| SharedOut::spare(y, m * w.rows()))
        .collect();
    // the groups of every matrix in turn: (matrix, group) of item i
    let starts: Vec<usize> = ws
        .iter()
        .scan(0, |s, w| {
            let at = *s;
            *s += w.groups();
            Some(at)
        })
        .collect();
    let items: usize = ws.iter().map(|w| w.groups()).sum();
    let macs: usize = ws.iter().map(|w| m * w.rows() * w.cols()).sum();
    let run = |range: std::ops::Range<usize>| {
        for i in range {
            let which = starts.partition_point(|&s| s <= i) - 1;
            let (w, g, out) = (ws[which], i - starts[which], &outs[which]);
            let n = w.rows();
            each_tile(w, g, &acts, m, simd, |j0, mt, tile| {
                // SAFETY: rows j0..j0 + mt < m and group g's columns lie in this output's
                // m * n values; each task writes only its own groups' columns
                unsafe { write_rows(out, n, g, j0, tile.iter().take(mt)) }
            });
        }
    };
    split_items(items, macs >= PARALLEL_MIN_MACS, run);
    for (y, w) in ys.iter_mut().zip(ws) {
        // SAFETY: every group's tiles wrote its columns (ROWS, or the rest of n in the
        // last group) of every row 0..m (row tiles of TILE_M cover 0..m)
        unsafe { y.set_len(m * w.rows()) };
    }
    ys
}

/// The rows of `x` for matrices of `ws`'s width, and `x` quantized; None for no rows.
///
/// # Panics
/// If the widths differ, or `x` is not whole rows of them.
pub(super) fn quantize_for(ws: &[&QMatrix], x: &[f32]) -> Option<(usize, QActs)> {
    let k = ws.first()?.cols();
    assert!(
        ws.iter().all(|w| w.cols() == k),
        "matrices that share an input must have its width"
    );
    assert_eq!(
        x.len() % k,
        0,
        "input width must equal the matrix's columns"
    );
    let m = x.len() / k;
    if m == 0 {
        return None;
    }
    let acts = QActs::quantize(x, k);
    for w in ws {
        // what the SIMD kernel reads without bounds checks, once per call
        w.assert_layout();
    }
    assert!(
        acts.cols == k && acts.q.len() == m * k && acts.d.len() == m * ws[0].blocks(),
        "quantized activations do not match the matrix"
    );
    Some((m, acts))
}

/// Group `g` of `w` against every tile of [`TILE_M`] activation rows of `acts` (`m` rows,
/// quantized for `w` by [`quantize_for`]), in order: `emit(j0, mt, outputs)` for the tile
/// of rows `j0..j0 + mt`. The weights of the group stay in L1 while the rows stream by.
fn each_tile(
    w: &QMatrix,
    g: usize,
    acts: &QActs,
    m: usize,
    simd: bool,
    mut emit: impl FnMut(usize, usize, &TileOut),
) {
    let mut buf: TileOut = [[0f32; ROWS]; TILE_M];
    for j0 in (0..m).step_by(TILE_M) {
        let mt = TILE_M.min(m - j0);
        run_tile(w, g, acts, (j0, mt), simd, &mut buf);
        emit(j0, mt, &buf);
    }
}

/// Group `g` of `w` against activation rows `j0..j0 + mt` of `acts` (quantized for `w` by
/// [`quantize_for`]; `mt` in `1..=TILE_M`, `j0 + mt` at most its rows): `out[j][lane]`.
pub(super) fn run_tile(
    w: &QMatrix,
    g: usize,
    acts: &QActs,
    (j0, mt): (usize, usize),
    simd: bool,
    out: &mut TileOut,
) {
    if simd {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `simd` only where `Caps::avx512_vnni` holds; `w`'s layout and `acts`'
        // shape were asserted by `quantize_for`; g < groups, j0 + mt <= rows, mt in 1..=4
        // (the caller's contract)
        unsafe {
            super::avx512::tile(w, g, acts, j0, mt, out)
        };
    } else {
        super::portable::tile(w, g, acts, j0, mt, out);
    }
}

/// Writes `rows` as rows `j0..` of the `[m, n]` output `out`, columns `g * ROWS..` (ROWS
/// of them, or the rest of `n` in the last group).
///
/// # Safety
/// The rows `j0..` written must lie in `out` (room for `m * n` values) and group `g`'s
/// columns in a row (`g * ROWS < n`), written by this task alone.
pub(super) unsafe fn write_rows<'a>(
    out: &SharedOut,
    n: usize,
    g: usize,
    j0: usize,
    rows: impl Iterator<Item = &'a [f32; ROWS]>,
) {
    let cols = ROWS.min(n - g * ROWS);
    for (j, row) in rows.enumerate() {
        let to = (j0 + j) * n + g * ROWS;
        if cols == ROWS {
            // SAFETY: the caller's contract. A whole group's row is one fixed-size copy
            // (no call into memcpy per 16 values)
            unsafe { out.at(to).cast::<[f32; ROWS]>().write_unaligned(*row) };
        } else {
            // SAFETY: as above, with the `cols` < ROWS columns of the last group
            unsafe { std::ptr::copy_nonoverlapping(row.as_ptr(), out.at(to), cols) };
        }
    }
}

//! `y = x Wᵀ` for a [`QMatrix`] `W`: activations quantized per block, integer dot products,
//! rows of `W` split across the rayon pool.

use super::act::QActs;
use super::matrix::{QMatrix, ROWS};
use crate::shared_out::SharedOut;
use crate::split::split_items;
use crate::Kernel;

/// Below this many multiply-adds a product runs on the calling thread: splitting it
/// costs more than it saves.
const PARALLEL_MIN_MACS: usize = 1 << 18;

/// Activation rows per pass over a group of weights.
const TILE_M: usize = 4;

/// `x`: row-major `[m, w.cols()]` -> `[m, w.rows()]`.
pub fn matmul(w: &QMatrix, x: &[f32], kernel: Kernel) -> Vec<f32> {
    let k = w.cols();
    assert_eq!(
        x.len() % k,
        0,
        "input width must equal the matrix's columns"
    );
    let m = x.len() / k;
    let n = w.rows();
    if m == 0 {
        return Vec::new();
    }
    let acts = QActs::quantize(x, k);
    // what the SIMD kernel reads without bounds checks, once per call
    w.assert_layout();
    assert!(
        acts.cols == k && acts.q.len() == m * k && acts.d.len() == m * w.blocks(),
        "quantized activations do not match the matrix"
    );
    let simd = kernel.avx512_vnni();
    let groups = w.groups();
    // written whole by the tiles: no serial pass zeroing it first (~5% of a 2-thread
    // prefill)
    let mut y = Vec::new();
    let out = SharedOut::spare(&mut y, m * n);
    let run = |range: std::ops::Range<usize>| {
        let mut buf = [[0f32; ROWS]; TILE_M];
        for g in range {
            let cols = ROWS.min(n - g * ROWS);
            for j0 in (0..m).step_by(TILE_M) {
                let mt = TILE_M.min(m - j0);
                if simd {
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: `simd` only where `Caps::avx512_vnni` holds; `w`'s layout
                    // and `acts`' shape are asserted above; g < groups, j0 + mt <= m, mt
                    // in 1..=4
                    unsafe {
                        super::avx512::tile(w, g, &acts, j0, mt, &mut buf)
                    };
                } else {
                    super::portable::tile(w, g, &acts, j0, mt, &mut buf);
                }
                for (j, row) in buf.iter().enumerate().take(mt) {
                    let to = (j0 + j) * n + g * ROWS;
                    if cols == ROWS {
                        // SAFETY: row j0 + j < m, columns g * ROWS..(g + 1) * ROWS <= n
                        // lie in y (m * n values); each task writes only its own
                        // groups' columns. A whole group's row is one fixed-size copy
                        // (no call into memcpy per 16 values)
                        unsafe { out.at(to).cast::<[f32; ROWS]>().write_unaligned(*row) };
                    } else {
                        // SAFETY: as above, with the `cols` < ROWS columns of the last
                        // group
                        unsafe { std::ptr::copy_nonoverlapping(row.as_ptr(), out.at(to), cols) };
                    }
                }
            }
        }
    };
    split_items(groups, m * n * k >= PARALLEL_MIN_MACS, run);
    // SAFETY: every group's tiles wrote its columns (ROWS, or the rest of n in the last
    // group) of every row 0..m (row blocks of TILE_M cover 0..m)
    unsafe { y.set_len(m * n) };
    y
}

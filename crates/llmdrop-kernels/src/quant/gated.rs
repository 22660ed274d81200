//! The gated MLP's first half on quantized weights: `silu(x Gᵀ) · (x Uᵀ)` in one product.
//!
//! The input is quantized once for both matrices; for each group of output rows the gate
//! and the up group run side by side over every tile of activation rows, and SiLU is
//! applied to the tile's outputs while they are in L1, before the result is written. The
//! separate route writes both products out, reads them back for SiLU and writes the
//! result: three passes over `[tokens, intermediate]` through the outer caches. Each
//! value is the same as the separate route's, bit for bit: the same tiles, and the same
//! SiLU ([`crate::vexp::silu_mul_slices`], lane by lane).

use super::kernel::{quantize_for, run_tile, write_rows, TileOut, PARALLEL_MIN_MACS, TILE_M};
use super::matrix::{QMatrix, ROWS};
use crate::shared_out::SharedOut;
use crate::split::split_items;
use crate::vexp::silu_mul_slices;
use crate::Kernel;

/// `x`: row-major `[m, cols]` -> `silu(x Gᵀ) · (x Uᵀ)`, `[m, gate.rows()]`.
///
/// # Panics
/// If `gate` and `up` differ in shape, or `x` is not whole rows of their width.
pub fn gated(gate: &QMatrix, up: &QMatrix, x: &[f32], kernel: Kernel) -> Vec<f32> {
    assert!(
        gate.rows() == up.rows() && gate.cols() == up.cols(),
        "gate {}x{} and up {}x{} differ in shape",
        gate.rows(),
        gate.cols(),
        up.rows(),
        up.cols()
    );
    let Some((m, acts)) = quantize_for(&[gate, up], x) else {
        return Vec::new();
    };
    let (n, k) = (gate.rows(), gate.cols());
    let simd = kernel.avx512_vnni();
    let mut h = Vec::new();
    let out = SharedOut::spare(&mut h, m * n);
    let run = |groups: std::ops::Range<usize>| {
        let mut gate_out: TileOut = [[0f32; ROWS]; TILE_M];
        let mut up_out = gate_out;
        let mut h_out = gate_out;
        for g in groups {
            // both groups' weights stay in L1 while the rows stream by; each tile's
            // result is written while the next is computed
            for j0 in (0..m).step_by(TILE_M) {
                let mt = TILE_M.min(m - j0);
                run_tile(gate, g, &acts, (j0, mt), simd, &mut gate_out);
                run_tile(up, g, &acts, (j0, mt), simd, &mut up_out);
                silu_mul_slices(
                    gate_out.as_flattened(),
                    up_out.as_flattened(),
                    h_out.as_flattened_mut(),
                );
                // SAFETY: rows j0..j0 + mt < m and group g's columns lie in h's m * n
                // values; each task writes only its own groups' columns
                unsafe { write_rows(&out, n, g, j0, h_out.iter().take(mt)) };
            }
        }
    };
    split_items(gate.groups(), 2 * m * n * k >= PARALLEL_MIN_MACS, run);
    // SAFETY: every group wrote its columns of every row 0..m
    unsafe { h.set_len(m * n) };
    h
}

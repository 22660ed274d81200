//! The reference kernel in plain Rust: same integer dot products and the same order of
//! f32 operations as the SIMD kernel, for machines without AVX-512 VNNI and for tests.

use super::act::QActs;
use super::matrix::{QKind, QMatrix, BLOCK, ROWS};

/// Rows `j0..j0 + mt` of `a` times the 16 rows of group `g`: `out[j][lane]`.
pub(crate) fn tile(
    w: &QMatrix,
    g: usize,
    a: &QActs,
    j0: usize,
    mt: usize,
    out: &mut [[f32; ROWS]; 4],
) {
    let nb = w.blocks();
    let gbb = w.kind().group_block_bytes();
    for (j, out_j) in out.iter_mut().enumerate().take(mt) {
        let row = j0 + j;
        let x = &a.q[row * a.cols..(row + 1) * a.cols];
        for (lane, o) in out_j.iter_mut().enumerate() {
            let mut acc = 0f32;
            for b in 0..nb {
                let s = (g * nb + b) * ROWS + lane;
                let base = (g * nb + b) * gbb;
                let xb = &x[b * BLOCK..(b + 1) * BLOCK];
                let dw = w.d.get(s);
                let (dx, sx) = (a.d[row * nb + b], a.s[row * nb + b]);
                match w.kind() {
                    QKind::Q8 => {
                        let mut dot = 0i32;
                        for step in 0..BLOCK / 4 {
                            for i in 0..4 {
                                let q = w.qs[base + step * 64 + lane * 4 + i] as i32;
                                dot += q * xb[step * 4 + i] as i32;
                            }
                        }
                        // Σ(q + 128)x - 128Σx, scaled
                        let t = dx.mul_add(dot as f32, -128.0 * sx);
                        acc = dw.mul_add(t, acc);
                    }
                    QKind::Q4 => {
                        let mut dot = 0i32;
                        for step in 0..BLOCK / 8 {
                            for i in 0..4 {
                                let v = w.qs[base + step * 64 + lane * 4 + i];
                                dot += (v & 0x0F) as i32 * xb[step * 8 + i] as i32;
                                dot += (v >> 4) as i32 * xb[step * 8 + 4 + i] as i32;
                            }
                        }
                        let mw = w.m.get(s);
                        acc = dw.mul_add(dx * dot as f32, acc);
                        acc = mw.mul_add(sx, acc);
                    }
                }
            }
            *o = acc;
        }
    }
}

//! The gated MLP's first half in one product: `silu(x Gᵀ) · (x Uᵀ)`.
//!
//! Gate and up weights are packed with their panels taken in turn, so one pass over
//! the weights computes a gate panel and its up panel for a block of activation rows
//! into a small buffer that stays in L2; SiLU and the product are applied there and
//! only the result is written. The separate route writes both products out, reads them
//! back for SiLU and writes the result: three passes over `[tokens, intermediate]`
//! through the outer caches, ~2% of a scoring pass. Each value is the same fused
//! multiply-add chain as [`super::matmul`] and the same SiLU as
//! [`crate::vexp::silu_mul_slices`]: the result is bit for bit the separate one.
//!
//! The output is written unzeroed into a vector's spare room: through raw pointers by the
//! tile kernel and as `MaybeUninit<f32>` by SiLU, never as `&mut [f32]` before it holds
//! values.

use std::mem::MaybeUninit;
use std::ops::Range;

use super::blocking::Blocking;
use super::kernel::{call, MR, PARALLEL_MIN_MACS};
use super::packed::{PackedMatrix, NR};
use super::tile::Tile;
use crate::shared_out::SharedOut;
use crate::split::split_items;
use crate::vexp::silu_mul_uninit;
use crate::Kernel;

/// A gate and an up projection (`[outputs, cols]` each), interleaved by panel.
#[derive(Debug, Clone)]
pub struct GatedPair {
    packed: PackedMatrix,
    outputs: usize,
}

impl GatedPair {
    pub fn new(gate: &PackedMatrix, up: &PackedMatrix) -> Self {
        Self {
            packed: PackedMatrix::interleave(gate, up),
            outputs: gate.rows(),
        }
    }

    /// Outputs per row (the intermediate size).
    pub fn outputs(&self) -> usize {
        self.outputs
    }

    /// Inputs per row.
    pub fn cols(&self) -> usize {
        self.packed.cols()
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.packed.bytes()
    }

    /// `x`: row-major `[m, cols]` -> `silu(x Gᵀ) · (x Uᵀ)`, `[m, outputs]`.
    pub fn product(&self, x: &[f32], kernel: Kernel) -> Vec<f32> {
        self.product_blocked(x, kernel, Blocking::get())
    }

    /// [`GatedPair::product`] with the given blocking: the same bits for any.
    pub fn product_blocked(&self, x: &[f32], kernel: Kernel, blocking: Blocking) -> Vec<f32> {
        let (k, n) = (self.cols(), self.outputs);
        let m = x.len().checked_div(k).unwrap_or(0);
        assert_eq!(
            x.len(),
            m * k,
            "input width must equal the matrix's columns"
        );
        if m == 0 || n == 0 {
            return vec![0f32; m * n];
        }
        let simd = kernel.avx512f();
        let mut h = Vec::new();
        let out = SharedOut::spare(&mut h, m * n);
        let w = &self.packed;
        let stride = k * NR;
        let kc_max = if m <= MR { k } else { blocking.chunk() };
        // a call covers both panels of a pair where it takes two (a two-panel shape, or
        // up to 3 rows: more sums in flight), else one panel at a time
        let (mr, wide) = call(m, blocking.shape);
        let mc = blocking.mc.div_ceil(MR).max(1) * MR;
        let run = |pairs: Range<usize>| {
            // gate and up panel of one pair for a block of rows: [mc, 2 · NR]
            let mut buf = vec![0f32; mc.min(m) * 2 * NR];
            for ic in (0..m).step_by(mc) {
                let block = mc.min(m - ic);
                for jp in pairs.clone() {
                    let cols = NR.min(n - jp * NR);
                    for pc in (0..k).step_by(kc_max) {
                        let kc = kc_max.min(k - pc);
                        let last = pc + kc == k;
                        for ir in (0..block).step_by(mr) {
                            let rows = mr.min(block - ir);
                            let both = wide >= 2 || rows <= 3;
                            let a = &x[(ic + ir) * k + pc..(ic + ir + rows - 1) * k + pc + kc];
                            for q in 0..if both { 1 } else { 2 } {
                                let t = Tile {
                                    rows,
                                    panels: if both { 2 } else { 1 },
                                    a: a.as_ptr(),
                                    lda: k,
                                    b: w.panels_from(2 * jp + q)[pc * NR..].as_ptr(),
                                    stride,
                                    kc,
                                    c: buf[ir * 2 * NR + q * NR..].as_mut_ptr(),
                                    ldc: 2 * NR,
                                    cols: NR,
                                    load: pc > 0,
                                };
                                // SAFETY: a spans rows x kc values k apart; the pair's
                                // panels hold kc * NR values from pc * NR, stride apart;
                                // buf holds rows ir.. of 2 * NR values; `simd` only where
                                // `Caps::avx512f` holds
                                unsafe { t.run(simd) };
                            }
                            if !last {
                                continue;
                            }
                            // the tile's rows are final: SiLU them now, from L1. Its
                            // divisions run on a unit of their own, beside the next tile's
                            // multiply-adds; a pass over the whole block after the pair's
                            // tiles waited on that unit (~3% of the pair's time)
                            let done = buf[ir * 2 * NR..(ir + rows) * 2 * NR].chunks_exact(2 * NR);
                            for (r, pair) in done.enumerate() {
                                let row = ic + ir + r;
                                // SAFETY: row `row`, columns jp·NR.. (cols of them) lie in
                                // h's reserved room (m * n values) and belong to this task's
                                // pairs alone; viewed as `MaybeUninit`, as they are not
                                // written yet
                                let dst = unsafe {
                                    std::slice::from_raw_parts_mut(
                                        out.at(row * n + jp * NR).cast::<MaybeUninit<f32>>(),
                                        cols,
                                    )
                                };
                                silu_mul_uninit(&pair[..cols], &pair[NR..NR + cols], dst);
                            }
                        }
                    }
                }
            }
        };
        split_items(n.div_ceil(NR), 2 * m * n * k >= PARALLEL_MIN_MACS, run);
        // SAFETY: every row block of every pair wrote its rows' columns of that pair
        unsafe { h.set_len(m * n) };
        h
    }
}

//! [`QMatrix`]: a weight matrix in 32-element blocks, 16 rows interleaved for the kernels.
//!
//! Two kinds, chosen so GGUF's common types repack without any rounding:
//! - [`QKind::Q8`]: `w = d * q`, `q` an i8 stored as `q + 128` (GGUF `Q8_0`).
//! - [`QKind::Q4`]: `w = d * q + m`, `q` in 0..=15 (GGUF `Q4_1`; `Q4_0` with `m = -8d`).
//!
//! `d` and `m` are f16 per block and row. Rows are padded to a multiple of 16 with zero
//! scales. Within a group of 16 rows and one block, the quants are laid out so that one
//! 64-byte load holds 4 consecutive quants of each of the 16 rows (one i32 lane per row):
//! the dot-product instruction then yields 16 rows' partial sums at once, with no
//! horizontal reduction.

use half::f16;

/// Elements per block.
pub const BLOCK: usize = 32;
/// Rows interleaved per group.
pub const ROWS: usize = 16;

/// Storage kind of a [`QMatrix`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QKind {
    /// 8-bit quants, one scale per block.
    Q8,
    /// 4-bit quants, a scale and an offset per block.
    Q4,
}

impl QKind {
    /// Bytes of quants per (group of 16 rows, block).
    pub const fn group_block_bytes(self) -> usize {
        match self {
            QKind::Q8 => ROWS * BLOCK,
            QKind::Q4 => ROWS * BLOCK / 2,
        }
    }
}

/// Per-block scales or offsets: f16 where the source stores them so (`Q8_0`, `Q4_0`,
/// `Q4_1`, and our own quantization), f32 where they are products (`Q4_K`'s
/// super-block scale times a 6-bit sub-block scale), so that repacking stays exact.
#[derive(Debug, Clone)]
pub(crate) enum Scales {
    F16(Vec<u16>),
    F32(Vec<f32>),
}

impl Scales {
    pub(super) fn zeros(n: usize, f32_scales: bool) -> Self {
        if f32_scales {
            Scales::F32(vec![0.0; n])
        } else {
            Scales::F16(vec![0; n])
        }
    }

    pub(super) fn set(&mut self, i: usize, v: f32) {
        match self {
            // exact: every value stored here came from an f16
            Scales::F16(s) => s[i] = f16::from_f32(v).to_bits(),
            Scales::F32(s) => s[i] = v,
        }
    }

    pub(crate) fn get(&self, i: usize) -> f32 {
        match self {
            Scales::F16(s) => f16::from_bits(s[i]).to_f32(),
            Scales::F32(s) => s[i],
        }
    }

    fn bytes(&self) -> usize {
        match self {
            Scales::F16(s) => 2 * s.len(),
            Scales::F32(s) => 4 * s.len(),
        }
    }

    fn len(&self) -> usize {
        match self {
            Scales::F16(s) => s.len(),
            Scales::F32(s) => s.len(),
        }
    }
}

/// A quantized `[rows, cols]` matrix (`cols` a multiple of [`BLOCK`]).
#[derive(Debug, Clone)]
pub struct QMatrix {
    pub(super) kind: QKind,
    pub(super) rows: usize,
    pub(super) cols: usize,
    /// Quants: `[group][block][group_block_bytes]`.
    pub(crate) qs: Vec<u8>,
    /// Scales: `[group][block][ROWS]`.
    pub(crate) d: Scales,
    /// Offsets (Q4 only, else empty): `[group][block][ROWS]`.
    pub(crate) m: Scales,
}

impl QMatrix {
    pub fn kind(&self) -> QKind {
        self.kind
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    pub(crate) fn groups(&self) -> usize {
        self.rows.div_ceil(ROWS)
    }

    pub(crate) fn blocks(&self) -> usize {
        self.cols / BLOCK
    }

    /// Panics unless the buffers hold every group's blocks (quants, scales, and offsets
    /// for Q4): what the SIMD kernel reads unchecked. True of every matrix the
    /// constructors build; checked once per product.
    pub(crate) fn assert_layout(&self) {
        let (groups, nb) = (self.groups(), self.blocks());
        let scales = groups * nb * ROWS;
        let offsets = if self.kind == QKind::Q4 { scales } else { 0 };
        assert!(
            self.cols.is_multiple_of(BLOCK)
                && self.qs.len() == groups * nb * self.kind.group_block_bytes()
                && self.d.len() == scales
                && self.m.len() == offsets,
            "quantized matrix buffers do not match its shape"
        );
    }

    /// Bytes held (quants and scales).
    pub fn bytes(&self) -> usize {
        self.qs.len() + self.d.bytes() + self.m.bytes()
    }

    /// Whether a `[rows, cols]` matrix can be stored: `cols` a multiple of 32.
    pub fn fits(cols: usize) -> bool {
        cols > 0 && cols.is_multiple_of(BLOCK)
    }

    /// Writes row `r` as f32 into `out` (`cols` values).
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        let nb = self.blocks();
        let gbb = self.kind.group_block_bytes();
        let (g, lane) = (r / ROWS, r % ROWS);
        for b in 0..nb {
            let s = (g * nb + b) * ROWS + lane;
            let d = self.d.get(s);
            let base = (g * nb + b) * gbb;
            let o = &mut out[b * BLOCK..(b + 1) * BLOCK];
            match self.kind {
                QKind::Q8 => {
                    for step in 0..BLOCK / 4 {
                        for i in 0..4 {
                            let q = self.qs[base + step * 64 + lane * 4 + i] as i32 - 128;
                            o[step * 4 + i] = d * q as f32;
                        }
                    }
                }
                QKind::Q4 => {
                    let m = self.m.get(s);
                    for step in 0..BLOCK / 8 {
                        for i in 0..4 {
                            let v = self.qs[base + step * 64 + lane * 4 + i];
                            o[step * 8 + i] = d * (v & 0x0F) as f32 + m;
                            o[step * 8 + 4 + i] = d * (v >> 4) as f32 + m;
                        }
                    }
                }
            }
        }
    }

    /// The whole matrix as row-major f32.
    pub fn dequantize(&self) -> Vec<f32> {
        let mut out = vec![0f32; self.rows * self.cols];
        for (r, row) in out.chunks_mut(self.cols).enumerate() {
            self.dequantize_row(r, row);
        }
        out
    }
}

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

use crate::error::{Error, Result};

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

/// A quantized `[rows, cols]` matrix (`cols` a multiple of [`BLOCK`]).
#[derive(Debug, Clone)]
pub struct QMatrix {
    kind: QKind,
    rows: usize,
    cols: usize,
    /// Quants: `[group][block][group_block_bytes]`.
    pub(crate) qs: Vec<u8>,
    /// Scales (f16 bits): `[group][block][ROWS]`.
    pub(crate) d: Vec<u16>,
    /// Offsets (f16 bits, Q4 only): `[group][block][ROWS]`.
    pub(crate) m: Vec<u16>,
}

/// One row's block as the packers see it: scale, offset, and 32 unsigned quants
/// (`q + 128` for Q8, 0..=15 for Q4).
struct RowBlock {
    d: u16,
    m: u16,
    q: [u8; BLOCK],
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

    /// Bytes held (quants and scales).
    pub fn bytes(&self) -> usize {
        self.qs.len() + 2 * (self.d.len() + self.m.len())
    }

    /// Whether a `[rows, cols]` matrix can be stored: `cols` a multiple of 32.
    pub fn fits(cols: usize) -> bool {
        cols > 0 && cols.is_multiple_of(BLOCK)
    }

    fn check(rows: usize, cols: usize) -> Result<()> {
        if rows == 0 || !Self::fits(cols) {
            return Err(Error::Input(format!(
                "a [{rows}, {cols}] matrix cannot be quantized: needs rows > 0 and columns a multiple of {BLOCK}"
            )));
        }
        Ok(())
    }

    /// Interleaves row blocks produced by `block(row, b)` into the kernel layout.
    fn pack(
        kind: QKind,
        rows: usize,
        cols: usize,
        mut block: impl FnMut(usize, usize) -> RowBlock,
    ) -> Self {
        let nb = cols / BLOCK;
        let groups = rows.div_ceil(ROWS);
        let gbb = kind.group_block_bytes();
        // padded rows: scale 0 and the quant that means 0 (so every term is 0)
        let zero_q = if kind == QKind::Q8 { 128 } else { 0 };
        let mut qs = vec![zero_q; groups * nb * gbb];
        let mut d = vec![0u16; groups * nb * ROWS];
        let mut m = if kind == QKind::Q4 {
            vec![0u16; groups * nb * ROWS]
        } else {
            vec![]
        };
        for r in 0..rows {
            let (g, lane) = (r / ROWS, r % ROWS);
            for b in 0..nb {
                let rb = block(r, b);
                let s = (g * nb + b) * ROWS + lane;
                d[s] = rb.d;
                if kind == QKind::Q4 {
                    m[s] = rb.m;
                }
                let base = (g * nb + b) * gbb;
                match kind {
                    // 8 steps of 4 quants; step `i` holds row `lane` at bytes 4*lane..
                    QKind::Q8 => {
                        for step in 0..BLOCK / 4 {
                            let o = base + step * 64 + lane * 4;
                            qs[o..o + 4].copy_from_slice(&rb.q[step * 4..step * 4 + 4]);
                        }
                    }
                    // 4 steps of 8 quants: low nibbles hold quants 0..4, high 4..8
                    QKind::Q4 => {
                        for step in 0..BLOCK / 8 {
                            let o = base + step * 64 + lane * 4;
                            for i in 0..4 {
                                let lo = rb.q[step * 8 + i];
                                let hi = rb.q[step * 8 + 4 + i];
                                qs[o + i] = lo | (hi << 4);
                            }
                        }
                    }
                }
            }
        }
        Self {
            kind,
            rows,
            cols,
            qs,
            d,
            m,
        }
    }

    /// Quantizes a row-major f32 matrix: Q8 as GGUF's `Q8_0` (`d = amax / 127`, rounded
    /// to nearest), Q4 as `Q4_1` (`d = (max - min) / 15`, `m = min`).
    pub fn quantize(kind: QKind, data: &[f32], rows: usize, cols: usize) -> Result<Self> {
        Self::check(rows, cols)?;
        if data.len() != rows * cols {
            return Err(Error::Input(format!(
                "{} values for a [{rows}, {cols}] matrix",
                data.len()
            )));
        }
        if let Some(i) = data.iter().position(|x| !x.is_finite()) {
            return Err(Error::Input(format!(
                "cannot quantize: value {} at row {}, column {} is not finite",
                data[i],
                i / cols,
                i % cols
            )));
        }
        Ok(Self::pack(kind, rows, cols, |r, b| {
            let x = &data[r * cols + b * BLOCK..r * cols + (b + 1) * BLOCK];
            match kind {
                QKind::Q8 => quantize_q8_block(x),
                QKind::Q4 => quantize_q4_block(x),
            }
        }))
    }

    /// Repacks GGUF-encoded rows without rounding. `data` holds `rows` rows of `cols`
    /// elements in `ggml_type`; `row_order[i]` is the stored row that becomes row `i`.
    /// Returns None for types that do not map exactly (the caller dequantizes instead).
    pub fn from_ggml(
        ggml_type: candle_core::quantized::GgmlDType,
        data: &[u8],
        rows: usize,
        cols: usize,
        row_order: Option<&[usize]>,
    ) -> Result<Option<Self>> {
        use candle_core::quantized::GgmlDType as G;
        Self::check(rows, cols)?;
        let (kind, block_bytes) = match ggml_type {
            G::Q8_0 => (QKind::Q8, 34),
            G::Q4_0 => (QKind::Q4, 18),
            G::Q4_1 => (QKind::Q4, 20),
            _ => return Ok(None),
        };
        let nb = cols / BLOCK;
        if data.len() != rows * nb * block_bytes {
            return Err(Error::Input(format!(
                "{ggml_type:?} data of {} bytes for a [{rows}, {cols}] matrix (expected {})",
                data.len(),
                rows * nb * block_bytes
            )));
        }
        // Q4_0's offset -8d must be exact in f16: true unless it overflows
        let mut exact = true;
        let packed = Self::pack(kind, rows, cols, |r, b| {
            let src = row_order.map_or(r, |o| o[r]);
            let p = &data[(src * nb + b) * block_bytes..][..block_bytes];
            let d = u16::from_le_bytes([p[0], p[1]]);
            let mut q = [0u8; BLOCK];
            match ggml_type {
                G::Q8_0 => {
                    for (o, &v) in q.iter_mut().zip(&p[2..34]) {
                        *o = (v as i8 as i16 + 128) as u8;
                    }
                    RowBlock { d, m: 0, q }
                }
                _ => {
                    let (m, nib) = if ggml_type == G::Q4_1 {
                        (u16::from_le_bytes([p[2], p[3]]), &p[4..20])
                    } else {
                        let m = f16::from_f32(-8.0 * f16::from_bits(d).to_f32());
                        exact &= m.is_finite();
                        (m.to_bits(), &p[2..18])
                    };
                    // ggml: element j in the low nibble of byte j, element j + 16 in the high
                    for (j, &v) in nib.iter().enumerate() {
                        q[j] = v & 0x0F;
                        q[j + 16] = v >> 4;
                    }
                    RowBlock { d, m, q }
                }
            }
        });
        Ok(exact.then_some(packed))
    }

    /// Writes row `r` as f32 into `out` (`cols` values).
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        let nb = self.blocks();
        let gbb = self.kind.group_block_bytes();
        let (g, lane) = (r / ROWS, r % ROWS);
        for b in 0..nb {
            let s = (g * nb + b) * ROWS + lane;
            let d = f16::from_bits(self.d[s]).to_f32();
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
                    let m = f16::from_bits(self.m[s]).to_f32();
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

fn quantize_q8_block(x: &[f32]) -> RowBlock {
    let amax = x.iter().fold(0f32, |a, v| a.max(v.abs()));
    let d = amax / 127.0;
    let id = if d > 0.0 { 1.0 / d } else { 0.0 };
    let mut q = [128u8; BLOCK];
    for (o, v) in q.iter_mut().zip(x) {
        *o = ((v * id).round().clamp(-127.0, 127.0) as i32 + 128) as u8;
    }
    RowBlock {
        d: f16::from_f32(d).to_bits(),
        m: 0,
        q,
    }
}

fn quantize_q4_block(x: &[f32]) -> RowBlock {
    let (lo, hi) = x
        .iter()
        .fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    let d = (hi - lo) / 15.0;
    let id = if d > 0.0 { 1.0 / d } else { 0.0 };
    let mut q = [0u8; BLOCK];
    for (o, v) in q.iter_mut().zip(x) {
        *o = (((v - lo) * id + 0.5) as u8).min(15);
    }
    RowBlock {
        d: f16::from_f32(d).to_bits(),
        m: f16::from_f32(lo).to_bits(),
        q,
    }
}

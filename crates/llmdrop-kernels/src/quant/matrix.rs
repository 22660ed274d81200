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

/// Per-block scales or offsets: f16 where the source stores them so (`Q8_0`, `Q4_0`,
/// `Q4_1`, and our own quantization), f32 where they are products (`Q4_K`'s
/// super-block scale times a 6-bit sub-block scale), so that repacking stays exact.
#[derive(Debug, Clone)]
pub(crate) enum Scales {
    F16(Vec<u16>),
    F32(Vec<f32>),
}

impl Scales {
    fn zeros(n: usize, f32_scales: bool) -> Self {
        if f32_scales {
            Scales::F32(vec![0.0; n])
        } else {
            Scales::F16(vec![0; n])
        }
    }

    fn set(&mut self, i: usize, v: f32) {
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
    kind: QKind,
    rows: usize,
    cols: usize,
    /// Quants: `[group][block][group_block_bytes]`.
    pub(crate) qs: Vec<u8>,
    /// Scales: `[group][block][ROWS]`.
    pub(crate) d: Scales,
    /// Offsets (Q4 only, else empty): `[group][block][ROWS]`.
    pub(crate) m: Scales,
}

/// One row's block as the packers see it: scale, offset, and 32 unsigned quants
/// (`q + 128` for Q8, 0..=15 for Q4).
struct RowBlock {
    d: f32,
    m: f32,
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

    fn check(rows: usize, cols: usize) -> Result<()> {
        if rows == 0 || !Self::fits(cols) {
            return Err(Error::Shape { rows, cols });
        }
        Ok(())
    }

    /// Interleaves row blocks produced by `block(row, b)` into the kernel layout.
    fn pack(
        kind: QKind,
        rows: usize,
        cols: usize,
        f32_scales: bool,
        mut block: impl FnMut(usize, usize) -> RowBlock,
    ) -> Self {
        let nb = cols / BLOCK;
        let groups = rows.div_ceil(ROWS);
        let gbb = kind.group_block_bytes();
        // padded rows: scale 0 and the quant that means 0 (so every term is 0)
        let zero_q = if kind == QKind::Q8 { 128 } else { 0 };
        let mut qs = vec![zero_q; groups * nb * gbb];
        let mut d = Scales::zeros(groups * nb * ROWS, f32_scales);
        let q4 = kind == QKind::Q4;
        let mut m = Scales::zeros(if q4 { groups * nb * ROWS } else { 0 }, f32_scales);
        for r in 0..rows {
            let (g, lane) = (r / ROWS, r % ROWS);
            for b in 0..nb {
                let rb = block(r, b);
                let s = (g * nb + b) * ROWS + lane;
                d.set(s, rb.d);
                if q4 {
                    m.set(s, rb.m);
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
            return Err(Error::Length {
                values: data.len(),
                rows,
                cols,
            });
        }
        if let Some(i) = data.iter().position(|x| !x.is_finite()) {
            return Err(Error::NonFinite {
                value: data[i],
                row: i / cols,
                col: i % cols,
            });
        }
        Ok(Self::pack(kind, rows, cols, false, |r, b| {
            let x = &data[r * cols + b * BLOCK..r * cols + (b + 1) * BLOCK];
            match kind {
                QKind::Q8 => quantize_q8_block(x),
                QKind::Q4 => quantize_q4_block(x),
            }
        }))
    }

    /// Repacks GGUF-encoded rows without rounding. `data` holds `rows` rows of `cols`
    /// elements in `ggml_type`; `row_order[i]` is the stored row that becomes row `i`.
    /// `Q8_0` becomes Q8; `Q4_0`, `Q4_1` and `Q4_K` become Q4 (`Q4_K` with f32 scales:
    /// its per-32 scale and offset are products of an f16 and a 6-bit integer). Returns
    /// None for other types (the caller dequantizes and requantizes instead).
    pub fn from_ggml(
        ggml_type: candle_core::quantized::GgmlDType,
        data: &[u8],
        rows: usize,
        cols: usize,
        row_order: Option<&[usize]>,
    ) -> Result<Option<Self>> {
        use candle_core::quantized::GgmlDType as G;
        Self::check(rows, cols)?;
        // (kind, elements per stored block, bytes per stored block, f32 scales)
        let (kind, per_block, block_bytes, f32_scales) = match ggml_type {
            G::Q8_0 => (QKind::Q8, 32, 34, false),
            G::Q4_0 => (QKind::Q4, 32, 18, false),
            G::Q4_1 => (QKind::Q4, 32, 20, false),
            G::Q4K if cols.is_multiple_of(256) => (QKind::Q4, 256, 144, true),
            _ => return Ok(None),
        };
        let row_bytes = cols / per_block * block_bytes;
        if data.len() != rows * row_bytes {
            return Err(Error::GgmlLength {
                ggml_type,
                bytes: data.len(),
                rows,
                cols,
                expected: rows * row_bytes,
            });
        }
        let half =
            |p: &[u8], at: usize| f16::from_bits(u16::from_le_bytes([p[at], p[at + 1]])).to_f32();
        // Q4_0's offset -8d must be exact in f16: true unless it overflows
        let mut exact = true;
        let mut block = |r: usize, b: usize| {
            let src = row_order.map_or(r, |o| o[r]);
            let row = &data[src * row_bytes..(src + 1) * row_bytes];
            let p = &row[b * BLOCK / per_block * block_bytes..][..block_bytes];
            let mut q = [0u8; BLOCK];
            match ggml_type {
                G::Q8_0 => {
                    for (o, &v) in q.iter_mut().zip(&p[2..34]) {
                        *o = (v as i8 as i16 + 128) as u8;
                    }
                    RowBlock {
                        d: half(p, 0),
                        m: 0.0,
                        q,
                    }
                }
                G::Q4K => {
                    // sub-block j of 8: 6-bit scale and min packed in 12 bytes; sub-blocks
                    // 2i and 2i+1 share 32 bytes of quants (low, then high nibbles)
                    let j = b % 8;
                    let sc = &p[4..16];
                    let (scale, min) = if j < 4 {
                        (sc[j] & 63, sc[j + 4] & 63)
                    } else {
                        (
                            (sc[j + 4] & 0x0F) | ((sc[j - 4] >> 6) << 4),
                            (sc[j + 4] >> 4) | ((sc[j] >> 6) << 4),
                        )
                    };
                    let nib = &p[16 + (j / 2) * 32..16 + (j / 2 + 1) * 32];
                    for (o, &v) in q.iter_mut().zip(nib) {
                        *o = if j.is_multiple_of(2) {
                            v & 0x0F
                        } else {
                            v >> 4
                        };
                    }
                    let (d, dmin) = (half(p, 0), half(p, 2));
                    RowBlock {
                        d: d * scale as f32,
                        m: -(dmin * min as f32),
                        q,
                    }
                }
                _ => {
                    let d = half(p, 0);
                    let (m, nib) = if ggml_type == G::Q4_1 {
                        (half(p, 2), &p[4..20])
                    } else {
                        let m = f16::from_f32(-8.0 * d);
                        exact &= m.is_finite();
                        (m.to_f32(), &p[2..18])
                    };
                    // ggml: element j in the low nibble of byte j, element j + 16 in the high
                    for (j, &v) in nib.iter().enumerate() {
                        q[j] = v & 0x0F;
                        q[j + 16] = v >> 4;
                    }
                    RowBlock { d, m, q }
                }
            }
        };
        // a block's scale and offset are its only values that can be NaN or infinite
        let mut non_finite = None;
        let packed = Self::pack(kind, rows, cols, f32_scales, |r, b| {
            let rb = block(r, b);
            if non_finite.is_none() && !(rb.d.is_finite() && rb.m.is_finite()) {
                non_finite = Some((r, b, rb.d, rb.m));
            }
            rb
        });
        if let Some((r, b, d, m)) = non_finite {
            return Err(Error::NonFiniteScale {
                ggml_type,
                row: r,
                block: b,
                d,
                m,
            });
        }
        Ok(exact.then_some(packed))
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

fn quantize_q8_block(x: &[f32]) -> RowBlock {
    let amax = x.iter().fold(0f32, |a, v| a.max(v.abs()));
    let d = amax / 127.0;
    let id = if d > 0.0 { 1.0 / d } else { 0.0 };
    let mut q = [128u8; BLOCK];
    for (o, v) in q.iter_mut().zip(x) {
        *o = ((v * id).round().clamp(-127.0, 127.0) as i32 + 128) as u8;
    }
    RowBlock {
        d: f16::from_f32(d).to_f32(),
        m: 0.0,
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
        d: f16::from_f32(d).to_f32(),
        m: f16::from_f32(lo).to_f32(),
        q,
    }
}

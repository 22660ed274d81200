//! Building a [`QMatrix`]: quantizing f32 rows (rounded as GGUF's `Q8_0` and `Q4_1`) and
//! repacking GGUF-encoded blocks without rounding, both into the interleaved layout
//! described in `matrix.rs`.

use half::f16;

use super::matrix::{QKind, QMatrix, Scales, BLOCK, ROWS};
use crate::error::{Error, Result};

/// One row's block as the packers see it: scale, offset, and 32 unsigned quants
/// (`q + 128` for Q8, 0..=15 for Q4).
struct RowBlock {
    d: f32,
    m: f32,
    q: [u8; BLOCK],
}

impl QMatrix {
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

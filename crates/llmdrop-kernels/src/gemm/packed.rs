//! [`PackedMatrix`]: an f32 `[rows, cols]` matrix stored in panels of [`NR`] rows.

use rayon::prelude::*;

use crate::split::for_each_chunk;

/// Rows per panel: the outputs one kernel step produces per activation row (two 16-lane
/// registers).
pub const NR: usize = 32;

/// A `[rows, cols]` weight matrix (`y = x Wᵀ`), stored as `ceil(rows / NR)` panels; in a
/// panel, column `p` of its `NR` rows is contiguous (`data[(panel * cols + p) * NR + r]`).
/// Rows past the end of the last panel are zero. The data starts on a 64-byte boundary,
/// so the kernel's 64-byte loads never straddle two cache lines.
#[derive(Debug, Clone)]
pub struct PackedMatrix {
    rows: usize,
    cols: usize,
    /// The allocation; the matrix is `buf[start..start + len]`.
    buf: Vec<f32>,
    start: usize,
    len: usize,
}

/// Values from which packing (f32 and bf16) runs on all threads.
pub(crate) const PARALLEL_PACK: usize = 1 << 20;

/// f32 values per 64-byte cache line.
const LINE: usize = 16;

impl PackedMatrix {
    /// Packs row-major `w` (`rows * cols` values).
    pub fn pack(w: &[f32], rows: usize, cols: usize) -> Self {
        assert_eq!(
            w.len(),
            rows * cols,
            "matrix data must hold rows * cols values"
        );
        let mut m = Self::zeroed(rows, cols);
        if cols == 0 {
            return m;
        }
        // panel by panel (each the transpose of its NR rows), side by side on rayon's
        // threads for a large matrix: a layer-streamed run packs every layer it reads
        let pack_panel = |(j, panel): (usize, &mut [f32])| {
            let src = &w[(j * NR * cols).min(w.len())..((j + 1) * NR * cols).min(w.len())];
            for (lane, row) in src.chunks_exact(cols).enumerate() {
                for (p, &v) in row.iter().enumerate() {
                    panel[p * NR + lane] = v;
                }
            }
        };
        for_each_chunk(
            m.data_mut(),
            cols * NR,
            rows * cols >= PARALLEL_PACK,
            pack_panel,
        );
        m
    }

    /// Panels of `a` and `b` (same shape) taken in turn: panel `2j` is `a`'s panel `j`,
    /// `2j + 1` is `b`'s. A `[2 · panels · NR, cols]` matrix (padding rows included).
    pub(crate) fn interleave(a: &PackedMatrix, b: &PackedMatrix) -> Self {
        assert!(
            a.rows == b.rows && a.cols == b.cols,
            "interleaved matrices must have one shape"
        );
        let mut m = Self::zeroed(2 * a.panels() * NR, a.cols);
        let len = a.cols * NR;
        m.data_mut()
            .par_chunks_exact_mut(2 * len.max(1))
            .enumerate()
            .for_each(|(j, pair)| {
                pair[..len].copy_from_slice(a.panel(j));
                pair[len..].copy_from_slice(b.panel(j));
            });
        m
    }

    fn data(&self) -> &[f32] {
        &self.buf[self.start..self.start + self.len]
    }

    /// The transpose of row-major `v` (`[n, d]`): a `[d, n]` matrix, packed, so that
    /// `x Wᵀ` computes `x v` (attention's weighted sum of value rows).
    pub fn pack_transposed(v: &[f32], n: usize, d: usize) -> Self {
        assert_eq!(v.len(), n * d, "matrix data must hold n * d values");
        let mut m = Self::zeroed(d, n);
        let data = m.data_mut();
        for (p, row) in v.chunks_exact(d.max(1)).enumerate().take(n) {
            for (panel, part) in row.chunks(NR).enumerate() {
                let at = (panel * n + p) * NR;
                data[at..at + part.len()].copy_from_slice(part);
            }
        }
        m
    }

    fn zeroed(rows: usize, cols: usize) -> Self {
        let len = rows.div_ceil(NR) * cols * NR;
        let buf = vec![0f32; len + LINE];
        let start = buf.as_ptr().align_offset(LINE * 4).min(LINE);
        Self {
            rows,
            cols,
            buf,
            start,
            len,
        }
    }

    fn data_mut(&mut self) -> &mut [f32] {
        &mut self.buf[self.start..self.start + self.len]
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    pub fn panels(&self) -> usize {
        self.rows.div_ceil(NR)
    }

    /// Bytes held (the last panel's padding and the alignment slack included).
    pub fn bytes(&self) -> usize {
        self.buf.len() * std::mem::size_of::<f32>()
    }

    /// Panel `j`: `cols * NR` values.
    pub(crate) fn panel(&self, j: usize) -> &[f32] {
        let len = self.cols * NR;
        &self.data()[j * len..(j + 1) * len]
    }

    /// Panels `j..`, contiguous.
    pub(crate) fn panels_from(&self, j: usize) -> &[f32] {
        &self.data()[j * self.cols * NR..]
    }

    /// Row `r` into `out` (`cols` values).
    pub fn row(&self, r: usize, out: &mut [f32]) {
        assert!(
            r < self.rows && out.len() == self.cols,
            "row {r} out of range"
        );
        let panel = self.panel(r / NR);
        for (p, o) in out.iter_mut().enumerate() {
            *o = panel[p * NR + r % NR];
        }
    }

    /// The matrix row-major again.
    pub fn unpack(&self) -> Vec<f32> {
        let mut out = vec![0f32; self.rows * self.cols];
        for (r, row) in out
            .chunks_exact_mut(self.cols.max(1))
            .enumerate()
            .take(self.rows)
        {
            self.row(r, row);
        }
        out
    }
}

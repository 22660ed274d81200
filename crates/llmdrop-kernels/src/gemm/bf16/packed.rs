//! [`Bf16Matrix`]: a bf16 `[rows, cols]` matrix stored in panels of [`NR`] rows whose
//! consecutive inputs are paired as `vdpbf16ps` reads them.

use half::bf16;

use super::arith::{pair, round_bits};
use super::BLOCK;
use crate::error::{Error, Result};
use crate::gemm::packed::PARALLEL_PACK;
use crate::gemm::NR;
use crate::split::for_each_chunk;

/// A `[rows, cols]` bf16 weight matrix (`y = x Wᵀ`, `[out, in]` as a checkpoint stores a
/// linear layer), stored as `ceil(rows / NR)` panels of `kp = ceil(cols / 2)` steps, each
/// panel's room rounded up to whole blocks of [`BLOCK`] steps (`kb` steps); step `p` of a
/// panel holds, for each of its `NR` rows, inputs `2p` and `2p + 1` in one 32-bit lane
/// (input `2p` in the upper half, see the [module docs](super)):
/// `data[(panel * kb + p) * NR + r]`. Rows past the end of the last panel, the input
/// after the last of an odd `cols` and the steps from `kp` to `kb` are `+0`. The data starts on a 64-byte boundary, so
/// the kernel's 64-byte loads never straddle two cache lines.
#[derive(Debug, Clone)]
pub struct Bf16Matrix {
    rows: usize,
    cols: usize,
    /// The allocation; the matrix is `buf[start..start + len]`.
    buf: Vec<u32>,
    start: usize,
    len: usize,
}

/// Lanes per 64-byte cache line.
const LINE: usize = 16;

impl Bf16Matrix {
    /// Packs row-major `w` (`rows * cols` values), the values used as they are.
    ///
    /// # Errors
    /// [`Error::Length`] when `w` does not hold `rows * cols` values.
    pub fn pack(w: &[bf16], rows: usize, cols: usize) -> Result<Self> {
        Self::pack_with(w, rows, cols, |v| v.to_bits())
    }

    /// Packs row-major f32 `w` (`rows * cols` values), each rounded to bf16 ([`round`]).
    ///
    /// # Errors
    /// [`Error::Length`] when `w` does not hold `rows * cols` values.
    ///
    /// [`round`]: super::round
    pub fn from_f32(w: &[f32], rows: usize, cols: usize) -> Result<Self> {
        Self::pack_with(w, rows, cols, |&v| round_bits(v))
    }

    fn pack_with<T: Sync>(
        w: &[T],
        rows: usize,
        cols: usize,
        bits: impl Fn(&T) -> u16 + Sync,
    ) -> Result<Self> {
        if rows.checked_mul(cols) != Some(w.len()) {
            return Err(Error::Length {
                values: w.len(),
                rows,
                cols,
            });
        }
        let mut m = Self::zeroed(rows, cols);
        let kb = m.block_steps();
        if cols == 0 {
            return Ok(m);
        }
        // panel by panel, side by side on rayon's threads for a large matrix (a
        // layer-streamed run packs every layer it reads)
        let pack_panel = |(j, panel): (usize, &mut [u32])| {
            let src = &w[(j * NR * cols).min(w.len())..((j + 1) * NR * cols).min(w.len())];
            for (lane, row) in src.chunks_exact(cols).enumerate() {
                for (p, two) in row.chunks(2).enumerate() {
                    let second = two.get(1).map_or(0, &bits);
                    panel[p * NR + lane] = pair(bits(&two[0]), second);
                }
            }
        };
        for_each_chunk(
            m.data_mut(),
            kb * NR,
            rows * cols >= PARALLEL_PACK,
            pack_panel,
        );
        Ok(m)
    }

    fn zeroed(rows: usize, cols: usize) -> Self {
        let len = rows.div_ceil(NR) * cols.div_ceil(2).next_multiple_of(BLOCK) * NR;
        let buf = vec![0u32; len + LINE];
        let start = buf.as_ptr().align_offset(LINE * 4).min(LINE);
        Self {
            rows,
            cols,
            buf,
            start,
            len,
        }
    }

    fn data(&self) -> &[u32] {
        &self.buf[self.start..self.start + self.len]
    }

    fn data_mut(&mut self) -> &mut [u32] {
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

    /// Steps per panel: input pairs, `ceil(cols / 2)`.
    pub(crate) fn steps(&self) -> usize {
        self.cols.div_ceil(2)
    }

    /// Steps of room per panel: [`Bf16Matrix::steps`] rounded up to whole blocks of
    /// [`BLOCK`], the padding `+0`.
    pub(crate) fn block_steps(&self) -> usize {
        self.steps().next_multiple_of(BLOCK)
    }

    /// Bytes held (the last panel's padding, an odd `cols`' pad and the alignment slack
    /// included).
    pub fn bytes(&self) -> usize {
        self.buf.len() * std::mem::size_of::<u32>()
    }

    /// Panels `j..`, contiguous (`block_steps() * NR` lanes each).
    pub(crate) fn panels_from(&self, j: usize) -> &[u32] {
        &self.data()[j * self.block_steps() * NR..]
    }

    /// Row `r` into `out` (`cols` values).
    ///
    /// # Panics
    /// When `r >= rows` or `out` does not hold `cols` values.
    pub fn row(&self, r: usize, out: &mut [bf16]) {
        assert!(
            r < self.rows && out.len() == self.cols,
            "row {r} out of range"
        );
        let panel = self.panels_from(r / NR);
        for (p, two) in out.chunks_mut(2).enumerate() {
            let lane = panel[p * NR + r % NR];
            two[0] = bf16::from_bits((lane >> 16) as u16);
            if let Some(second) = two.get_mut(1) {
                *second = bf16::from_bits(lane as u16);
            }
        }
    }

    /// The matrix row-major again.
    pub fn unpack(&self) -> Vec<bf16> {
        let mut out = vec![bf16::ZERO; self.rows * self.cols];
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

//! The q, k, v inputs of llmdrop's attention ops, checked once: f32, q `[b, heads, t, d]`,
//! k and v `[b, kv_heads, total, d]`, every row contiguous, heads a multiple of kv heads.

use candle_core::{CpuStorage, Layout};

pub(crate) struct Qkv<'a> {
    pub q: &'a [f32],
    pub k: &'a [f32],
    pub v: &'a [f32],
    pub lq: &'a Layout,
    pub lk: &'a Layout,
    pub lv: &'a Layout,
    pub b: usize,
    pub heads: usize,
    /// Query positions.
    pub t: usize,
    pub kv_heads: usize,
    /// Key positions.
    pub total: usize,
    pub d: usize,
}

impl<'a> Qkv<'a> {
    /// Checks the inputs of the op `what` (named in errors).
    pub fn new(
        what: &str,
        (sq, lq): (&'a CpuStorage, &'a Layout),
        (sk, lk): (&'a CpuStorage, &'a Layout),
        (sv, lv): (&'a CpuStorage, &'a Layout),
    ) -> candle_core::Result<Self> {
        let (CpuStorage::F32(q), CpuStorage::F32(k), CpuStorage::F32(v)) = (sq, sk, sv) else {
            candle_core::bail!("{what} needs f32 q, k, v")
        };
        let (b, heads, t, d) = lq.shape().dims4()?;
        let (kb, kv_heads, total, kd) = lk.shape().dims4()?;
        let grouped = kv_heads > 0 && heads.is_multiple_of(kv_heads);
        if kb != b || kd != d || lv.shape() != lk.shape() || !grouped {
            candle_core::bail!(
                "{what}: q {:?}, k {:?}, v {:?}",
                lq.dims(),
                lk.dims(),
                lv.dims()
            )
        }
        for l in [lq, lk, lv] {
            if l.stride()[3] != 1 || l.stride()[2] != d && l.dims()[2] > 1 {
                candle_core::bail!("{what} needs contiguous rows")
            }
        }
        Ok(Self {
            q,
            k,
            v,
            lq,
            lk,
            lv,
            b,
            heads,
            t,
            kv_heads,
            total,
            d,
        })
    }

    /// Query heads that share one kv head.
    pub fn groups(&self) -> usize {
        self.heads / self.kv_heads
    }
}

/// Element offset of `[i0, i1, row, 0]` in a 4-d layout whose rows are contiguous.
pub(crate) fn row_at(l: &Layout, i0: usize, i1: usize, row: usize) -> usize {
    let s = l.stride();
    l.start_offset() + i0 * s[0] + i1 * s[1] + row * s[2]
}

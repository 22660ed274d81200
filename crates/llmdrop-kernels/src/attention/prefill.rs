//! Attention of a block of new positions (a prefill, or a scoring pass) in f32, on the
//! packed matrix kernel: per kv head the keys are packed as a matrix (`S = Q Kᵀ`) and the
//! values as a transposed one (`O = P V`); each tile of query rows (12, or 6 with two
//! panels a call: the machine's [`Call`]) computes only the scores of the keys it can see
//! (causal, sliding window), softmaxes them, and writes its output straight into
//! `[b, t, heads · d]`, the layout `o_proj` reads. Tasks of [`TASK_ROWS`] rows run in
//! parallel on rayon's pool.
//!
//! Measured on an Intel Xeon (default model's shape, 512 positions, 1 thread): tiles of
//! 6 rows × 2 panels took the attention from 35% to 47% of the FMA limit, one score buffer
//! per task instead of a zeroed one per tile and the other changes of that commit to 50%.

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::inputs::{row_at, Qkv};
use crate::gemm::{Blocking, PackedMatrix, Shape as Call, Tile, MR, NR, SUM_BLOCK};
use crate::shared_out::SharedOut;
use crate::vexp::{exp_shifted, exp_shifted_portable};
use crate::Kernel;

/// Query rows per task: the tiles (4 of 12 rows, or 8 of 6) share each key panel while it
/// is in cache.
const TASK_ROWS: usize = 4 * MR;

/// Which keys each query sees.
#[derive(Debug, Clone, Copy)]
pub struct Visibility {
    /// Position of the first query (the keys before it are cached).
    pub offset: usize,
    /// Queries see no later key (false: every key is visible).
    pub causal: bool,
    /// Queries see at most this many keys, themselves included.
    pub window: Option<usize>,
}

impl Visibility {
    /// Visible keys `lo..hi` of the query at row `i` of the block, of `total` keys.
    fn keys(&self, i: usize, total: usize) -> (usize, usize) {
        if !self.causal {
            return (0, total);
        }
        let end = (self.offset + i + 1).min(total);
        let lo = self
            .window
            .map_or(0, |w| (self.offset + i + 1).saturating_sub(w));
        (lo.min(end), end)
    }
}

struct PrefillAttention {
    vis: Visibility,
    kernel: Kernel,
    call: Call,
}

/// Rows `0..n` of `[i0, i1]` in `data` as one slice (rows must be contiguous).
fn rows<'a>(data: &'a [f32], l: &Layout, i0: usize, i1: usize, n: usize, d: usize) -> &'a [f32] {
    let at = row_at(l, i0, i1, 0);
    &data[at..at + n * d]
}

impl CustomOp3 for PrefillAttention {
    fn name(&self) -> &'static str {
        "llmdrop-prefill-attention"
    }

    fn cpu_fwd(
        &self,
        sq: &CpuStorage,
        lq: &Layout,
        sk: &CpuStorage,
        lk: &Layout,
        sv: &CpuStorage,
        lv: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = Qkv::new("prefill attention", (sq, lq), (sk, lk), (sv, lv))?;
        let (q, k, v) = (x.q, x.k, x.v);
        let (b, heads, t, d) = (x.b, x.heads, x.t, x.d);
        let (kvh, total, groups) = (x.kv_heads, x.total, x.groups());
        if t == 0 || d == 0 {
            return Ok((
                CpuStorage::F32(vec![0f32; b * t * heads * d]),
                Shape::from((b, t, heads * d)),
            ));
        }
        // keys as a [total, d] matrix and values as [d, total], per (batch, kv head)
        // (keys and values separately: 2 · b · kv_heads tasks)
        let packed: Vec<PackedMatrix> = (0..2 * b * kvh)
            .into_par_iter()
            .map(|i| {
                let (bi, h) = ((i / 2) / kvh, (i / 2) % kvh);
                if i % 2 == 0 {
                    PackedMatrix::pack(rows(k, lk, bi, h, total, d), total, d)
                } else {
                    PackedMatrix::pack_transposed(rows(v, lv, bi, h, total, d), total, d)
                }
            })
            .collect();
        let mut it = packed.into_iter();
        let packed: Vec<(PackedMatrix, PackedMatrix)> =
            std::iter::from_fn(|| Some((it.next()?, it.next()?))).collect();
        let width = heads * d;
        // every value is written by a tile (see `Scope::tile`): no pass to zero it first
        let mut out = Vec::new();
        let dst = SharedOut::spare(&mut out, b * t * width);
        let blocks = t.div_ceil(TASK_ROWS);
        let simd = self.kernel.avx512f();
        let call = self.call;
        let task = |idx: usize| {
            let (bh, blk) = (idx / blocks, idx % blocks);
            let (bi, h) = (bh / heads, bh % heads);
            let (keys, values) = &packed[bi * kvh + h / groups];
            let q = rows(q, lq, bi, h, t, d);
            let i1 = t.min((blk + 1) * TASK_ROWS);
            // the tiles' scores, one buffer for the task's tiles
            let mut scratch = Vec::new();
            for i0 in (blk * TASK_ROWS..i1).step_by(call.rows()) {
                let n = call.rows().min(i1 - i0);
                // SAFETY: rows i0..i0 + n, columns h·d..(h + 1)·d of batch bi lie in `out`
                // and belong to this task alone
                let o = unsafe { dst.at((bi * t + i0) * width + h * d) };
                let s = Scope {
                    vis: &self.vis,
                    q: &q[i0 * d..(i0 + n) * d],
                    i0,
                    keys,
                    values,
                    total,
                    simd,
                    panels: call.panels(),
                };
                // SAFETY: as above; `width` is the row stride of `out`, n <= MR, and `simd`
                // comes from `Kernel::avx512f`
                unsafe { s.tile(o, width, &mut scratch) };
            }
        };
        let tasks = b * heads * blocks;
        if rayon::current_num_threads() > 1 && tasks > 1 {
            (0..tasks).into_par_iter().for_each(task);
        } else {
            (0..tasks).for_each(task);
        }
        // SAFETY: the tasks cover every (batch, head, row block); each tile wrote the first
        // d values of its head in each of its rows
        unsafe { out.set_len(b * t * width) };
        Ok((CpuStorage::F32(out), Shape::from((b, t, width))))
    }
}

/// One tile of query rows of one head.
struct Scope<'a> {
    vis: &'a Visibility,
    /// The tile's query rows, `[n, d]`, already scaled by `1 / √d`.
    q: &'a [f32],
    /// Row of the first query in the block.
    i0: usize,
    keys: &'a PackedMatrix,
    values: &'a PackedMatrix,
    total: usize,
    simd: bool,
    /// Panels per kernel call (the [`Call`]'s).
    panels: usize,
}

impl Scope<'_> {
    /// Writes the tile's `[n, d]` outputs at `o`, rows `ldo` apart: every one of them (0
    /// where the tile sees no key), so `o` may be uninitialised.
    ///
    /// # Safety
    /// `o` must be valid for `n` rows of `ldo` values, of which the first `d` are written
    /// (`n <= MR`); `simd` only where [`crate::Caps::avx512f`] holds (it
    /// comes from [`Kernel::avx512f`]).
    unsafe fn tile(&self, o: *mut f32, ldo: usize, scratch: &mut Vec<f32>) {
        let d = self.keys.cols();
        let n = self.q.len() / d;
        let span: Vec<_> = (0..n)
            .map(|r| self.vis.keys(self.i0 + r, self.total))
            .collect();
        // keys any row of the tile sees, widened at the start to a multiple of SUM_BLOCK
        // (whole panels): the blocks P V sums fall at the same keys in every tiling
        let lo = span.iter().map(|s| s.0).min().unwrap_or(0) / SUM_BLOCK * SUM_BLOCK;
        let hi = span.iter().map(|s| s.1).max().unwrap_or(0);
        if hi <= lo {
            for r in 0..n {
                // SAFETY: row r < n of the output, its first d values (the caller's
                // contract), written without being read
                unsafe { std::ptr::write_bytes(o.add(r * ldo), 0, d) };
            }
            return;
        }
        let kc = hi - lo;
        // scores S = Q Kᵀ over keys lo..hi, [n, kc]: every value is written below
        if scratch.len() < n * kc {
            scratch.resize(n * kc, 0.0);
        }
        let s = &mut scratch[..n * kc];
        let mut j = lo;
        while j < hi {
            // two key panels a call where the shape takes two and both hold visible keys
            let count = if j + NR < hi { self.panels } else { 1 };
            let t = Tile {
                rows: n,
                panels: count,
                a: self.q.as_ptr(),
                lda: d,
                b: self.keys.panels_from(j / NR).as_ptr(),
                stride: d * NR,
                kc: d,
                // SAFETY: lo <= j < hi: column j - lo of the kc columns of `s`
                c: unsafe { s.as_mut_ptr().add(j - lo) },
                ldc: kc,
                cols: NR.min(hi - j - (count - 1) * NR),
                load: false,
            };
            // SAFETY: `q` holds n rows of d values; key panels j / NR.. (count of them,
            // d * NR values each, contiguous) hold keys below hi <= total; `s` has n rows
            // of kc values, of which columns j - lo.. (up to hi - j) are written; `simd`
            // as the caller's contract
            unsafe { t.run(self.simd) };
            j += count * NR;
        }
        // unnormalised probabilities in place (each row's 1 / sum scales its output
        // below, d values instead of kc); zero for the keys a row does not see
        let mut inv = [0f32; MR];
        for (r, &(a, b)) in span.iter().enumerate() {
            let row = &mut s[r * kc..(r + 1) * kc];
            let (before, rest) = row.split_at_mut(a - lo);
            let (seen, after) = rest.split_at_mut(b - a);
            inv[r] = 1.0
                / if self.simd {
                    exp_shifted(seen)
                } else {
                    exp_shifted_portable(seen)
                };
            before.fill(0.0);
            after.fill(0.0);
        }
        // O = P V over the same keys
        let mut c = 0;
        while c < d {
            let count = if c + NR < d { self.panels } else { 1 };
            let t = Tile {
                rows: n,
                panels: count,
                a: s.as_ptr(),
                lda: kc,
                b: self.values.panels_from(c / NR)[lo * NR..].as_ptr(),
                stride: self.total * NR,
                kc,
                // SAFETY: c < d <= ldo: inside row 0 of the output (the caller's contract)
                c: unsafe { o.add(c) },
                ldc: ldo,
                cols: NR.min(d - c - (count - 1) * NR),
                load: false,
            };
            // SAFETY: `s` holds n rows of kc values; value panels c / NR.. (count of them,
            // `total` keys of NR values each) hold kc keys from key lo (hi <= total); the
            // output rows hold columns c.. (up to d - c) (the caller's contract); `simd` as
            // that contract
            unsafe { t.run(self.simd) };
            c += count * NR;
        }
        for (r, &inv) in inv.iter().enumerate().take(n) {
            // SAFETY: row r < n of the output, its first d values (the caller's contract),
            // written by the tiles above
            let row = unsafe { std::slice::from_raw_parts_mut(o.add(r * ldo), d) };
            row.iter_mut().for_each(|x| *x *= inv);
        }
    }
}

/// `q`: `[b, heads, t, d]` (scaled by `1 / √d`), `k`, `v`: `[b, kv_heads, total, d]`,
/// all f32 with contiguous rows -> `[b, t, heads · d]`, in the kernel calls this
/// machine's products use ([`Blocking::get`]).
pub fn prefill_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    vis: Visibility,
    kernel: Kernel,
) -> Result<Tensor> {
    prefill_attention_with(q, k, v, vis, kernel, Blocking::get().shape)
}

/// [`prefill_attention`] in kernel calls of `call`: tiles of `call.rows()` queries, each
/// call covering `call.panels()` key (or value) panels. The same bits for either: every
/// score is one chain over the head's values, and every output sums the same keys' blocks
/// in the same order.
pub fn prefill_attention_with(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    vis: Visibility,
    kernel: Kernel,
    call: Call,
) -> Result<Tensor> {
    let q = if q.is_contiguous() {
        q.clone()
    } else {
        q.contiguous()?
    };
    q.apply_op3_no_bwd(k, v, &PrefillAttention { vis, kernel, call })
}

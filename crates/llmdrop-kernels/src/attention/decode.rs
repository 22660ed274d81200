//! Attention of one new position over the KV cache (a decode step), in f32, reading each
//! cached key and value row once per query head: no packing of the cache into a matmul
//! layout, no score tensor. Query heads run in parallel on rayon's pool. On AVX-512 the
//! scores of 16 keys at a time sum their lanes together ([`super::decode_scores`], the
//! bits of the scalar loop) and the softmax takes the vectorized `exp`, as prefill does.

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::inputs::{row_at, Qkv};
use crate::prefetch::prefetch;
use crate::vexp::{exp_shifted, exp_shifted_portable};
use crate::Kernel;

/// Below this many (query head x key) pairs a step runs on the calling thread.
const PARALLEL_MIN_PAIRS: usize = 1 << 11;

struct DecodeAttention {
    /// First visible key (sliding window), 0 for full causal attention.
    first: usize,
    kernel: Kernel,
}

impl CustomOp3 for DecodeAttention {
    fn name(&self) -> &'static str {
        "llmdrop-decode-attention"
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
        let x = Qkv::new("decode attention", (sq, lq), (sk, lk), (sv, lv))?;
        if x.t != 1 {
            candle_core::bail!("decode attention: {} query positions, not 1", x.t)
        }
        let (b, heads, d, total) = (x.b, x.heads, x.d, x.total);
        if d == 0 {
            // zero-width heads: nothing to compute (and no rows of d values to split into)
            return Ok((CpuStorage::F32(Vec::new()), Shape::from((b, heads, 1, 0))));
        }
        let views = Views {
            groups: x.groups(),
            first: self.first.min(total),
            x,
        };
        let simd = self.kernel.avx512f();
        let head = |(idx, o): (usize, &mut [f32])| {
            #[cfg(target_arch = "x86_64")]
            if simd {
                // SAFETY: `Caps::avx512f` checked AVX-512 F and what it implies
                unsafe { one_head_avx512(&views, idx, o) };
                return;
            }
            one_head::<false>(&views, idx, o);
        };
        let mut out = vec![0f32; b * heads * d];
        if heads * (total - views.first) >= PARALLEL_MIN_PAIRS && rayon::current_num_threads() > 1 {
            out.par_chunks_mut(d).enumerate().for_each(head);
        } else {
            out.chunks_mut(d).enumerate().for_each(head);
        }
        Ok((CpuStorage::F32(out), Shape::from((b, heads, 1, d))))
    }
}

/// Value rows ahead of the one being added that a head asks the cache for.
const VALUES_AHEAD: usize = 16;

/// The inputs of one step, shared by the per-head tasks.
struct Views<'a> {
    x: Qkv<'a>,
    groups: usize,
    first: usize,
}

/// Query head `idx` (of `b * heads`) into `o`: scores, softmax, weighted sum of values.
/// `BLOCKS`: score 16 keys at a time and take the vectorized `exp` (AVX-512; only
/// [`one_head_avx512`] says so).
#[inline(always)]
fn one_head<const BLOCKS: bool>(s: &Views, idx: usize, o: &mut [f32]) {
    let x = &s.x;
    let (bi, h) = (idx / x.heads, idx % x.heads);
    let d = x.d;
    let qr = &x.q[row_at(x.lq, bi, h, 0)..][..d];
    let kv = h / s.groups;
    // plain loops (no iterator adapters) so everything inlines into the AVX-512 copy
    let mut scores = vec![0f32; x.total - s.first];
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if BLOCKS {
        // the visible keys' rows follow one another (rows are contiguous, checked)
        let keys = &x.k[row_at(x.lk, bi, kv, s.first)..];
        // SAFETY: `BLOCKS` is set only by `one_head_avx512`, whose caller checked AVX-512 F
        done = unsafe { super::decode_scores::block_scores(qr, keys, &mut scores) };
    }
    for (i, j) in (s.first..x.total).enumerate().skip(done) {
        let at = row_at(x.lk, bi, kv, j);
        scores[i] = dot(qr, &x.k[at..at + d]);
    }
    // softmax's exponentials as the prefill kernel takes them: vectorized (within 2 ulp of
    // libm's) on AVX-512, libm's in the plain loops
    let sum = if BLOCKS {
        exp_shifted(&mut scores)
    } else {
        exp_shifted_portable(&mut scores)
    };
    // the cached values are read once, from memory: each row asks for the row
    // `VALUES_AHEAD` positions on (rows are contiguous, checked)
    let ahead = VALUES_AHEAD * d * std::mem::size_of::<f32>();
    for (i, j) in (s.first..x.total).enumerate() {
        let at = row_at(x.lv, bi, kv, j);
        let row = &x.v[at..at + d];
        if BLOCKS {
            for line in (0..d).step_by(16) {
                prefetch(row.as_ptr().wrapping_add(line), ahead);
            }
        }
        axpy(scores[i], row, o);
    }
    let inv = 1.0 / sum;
    o.iter_mut().for_each(|x| *x *= inv);
}

/// [`one_head`] compiled for AVX-512.
///
/// # Safety
/// The CPU must have AVX-512 F and what it implies ([`crate::Caps::avx512f`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn one_head_avx512(s: &Views, idx: usize, o: &mut [f32]) {
    one_head::<true>(s, idx, o)
}

/// Dot product with 16 independent partial sums (vectorizes without reassociating).
#[inline(always)]
pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..16 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// `o += p * x`.
#[inline(always)]
fn axpy(p: f32, x: &[f32], o: &mut [f32]) {
    for (a, &b) in o.iter_mut().zip(x) {
        *a += p * b;
    }
}

/// softmax(q Kᵀ) V for one query position per sequence. `q`: f32 `[b, heads, 1, d]`,
/// already scaled; `k`, `v`: f32 `[b, kv_heads, total, d]` (the cache, rows contiguous);
/// keys before `first` are outside a sliding window. Returns `[b, heads, 1, d]`.
/// [`Kernel::Portable`] runs the plain loops: the same scores, libm's `exp`.
pub fn decode_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    first: usize,
    kernel: Kernel,
) -> Result<Tensor> {
    let q = if q.is_contiguous() {
        q.clone()
    } else {
        q.contiguous()?
    };
    q.apply_op3_no_bwd(k, v, &DecodeAttention { first, kernel })
}

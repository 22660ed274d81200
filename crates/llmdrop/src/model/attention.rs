//! Grouped-query self-attention with RoPE, optional q/k norm, bias and sliding window.

use candle_core::{DType, Device, Tensor};
use llmdrop_kernels::attention::{decode_attention, prefill_attention, Backend, Visibility};
use llmdrop_kernels::Kernel;

use super::cache::KvCache;
use super::linear::Linear;
use super::norm::RmsNorm;
use super::product_op::quant_products;
use super::rope::Rope;
use super::weights::Weights;
use crate::config::Config;
use crate::error::Result;

/// Scores (heads x query positions x keys) computed at once in a long prompt; more query
/// positions run in further chunks.
const SCORE_CHUNK_ELEMS: usize = 1 << 19;

#[derive(Debug, Clone)]
pub struct Attention {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    q_norm: Option<RmsNorm>,
    k_norm: Option<RmsNorm>,
    num_heads: usize,
    num_kv_heads: usize,
    head_dim: usize,
    /// This layer's window (None: global attention).
    sliding_window: Option<usize>,
    /// Factor the scores are scaled by.
    scale: f64,
}

impl Attention {
    /// Loads `model.layers.{layer}.self_attn.*`.
    pub fn load(w: &Weights, cfg: &Config, layer: usize) -> Result<Self> {
        let prefix = &format!("model.layers.{layer}.self_attn");
        let (h, d) = (cfg.hidden_size, cfg.head_dim);
        let q_dim = cfg.num_heads * d;
        let kv_dim = cfg.num_kv_heads * d;
        let norm = |n: &str| RmsNorm::load(w, &format!("{prefix}.{n}.weight"), d, cfg.rms_norm_eps);
        Ok(Self {
            q: Linear::load(w, &format!("{prefix}.q_proj"), h, q_dim, cfg.qkv_bias)?,
            k: Linear::load(w, &format!("{prefix}.k_proj"), h, kv_dim, cfg.qkv_bias)?,
            v: Linear::load(w, &format!("{prefix}.v_proj"), h, kv_dim, cfg.qkv_bias)?,
            o: Linear::load(w, &format!("{prefix}.o_proj"), q_dim, h, cfg.o_bias)?,
            q_norm: cfg.arch.qk_norm.then(|| norm("q_norm")).transpose()?,
            k_norm: cfg.arch.qk_norm.then(|| norm("k_norm")).transpose()?,
            num_heads: cfg.num_heads,
            num_kv_heads: cfg.num_kv_heads,
            head_dim: d,
            sliding_window: cfg.layer_window(layer),
            scale: cfg.attn_scale(),
        })
    }

    /// Bytes of the projection and norm weights.
    pub fn weight_bytes(&self) -> usize {
        let norms = [&self.q_norm, &self.k_norm]
            .iter()
            .filter_map(|n| n.as_ref())
            .map(|n| n.weight.elem_count() * n.weight.dtype().size_in_bytes())
            .sum::<usize>();
        self.q.bytes() + self.k.bytes() + self.v.bytes() + self.o.bytes() + norms
    }

    /// `x`: normalised input `[b, t, hidden]` at positions `offset..offset+t`; `mask`:
    /// the additive `[t, offset + t]` mask from [`causal_mask`] for this layer's window
    /// (None: all visible), in the compute dtype, shared by all layers with that window. With a cache, this layer's keys/values are
    /// appended to its slot.
    pub fn forward(
        &self,
        x: &Tensor,
        rope: &Rope,
        offset: usize,
        mask: Option<&Tensor>,
        cache: Option<(&mut KvCache, usize)>,
    ) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let (q, k, v) = self.qkv(x)?;
        let y = self.attend(q, k, v, (b, t), rope, offset, mask, cache)?;
        self.o.forward(&y)
    }

    /// One decode step of several sequences: row `j` of `x` (`[n, 1, hidden]`, normalised)
    /// is the next position of the sequence cached in `caches[j]` (at position
    /// `offsets[j]`, its own length). The projections run on all rows at once (the weights
    /// read once); attention runs per sequence on its own cache, each row exactly as
    /// [`Attention::forward`] runs it alone.
    pub fn forward_rows(
        &self,
        x: &Tensor,
        rope: &Rope,
        offsets: &[usize],
        caches: &mut [&mut KvCache],
        layer: usize,
    ) -> Result<Tensor> {
        let (q, k, v) = self.qkv(x)?;
        let mut ys = Vec::with_capacity(caches.len());
        for (j, cache) in caches.iter_mut().enumerate() {
            let off = offsets[j];
            // one new position sees every key but those a window hides (no mask without one)
            let mask = match self.sliding_window {
                Some(w) => causal_mask(1, off + 1, off, Some(w), x.device())?
                    .map(|m| m.to_dtype(x.dtype()))
                    .transpose()?,
                None => None,
            };
            let row = |t: &Tensor| t.narrow(0, j, 1);
            let slot = Some((&mut **cache, layer));
            let y = self.attend(
                row(&q)?,
                row(&k)?,
                row(&v)?,
                (1, 1),
                rope,
                off,
                mask.as_ref(),
                slot,
            )?;
            ys.push(y);
        }
        self.o.forward(&Tensor::cat(&ys, 0)?)
    }

    /// The query, key and value projections of `x`. Quantized ones quantize `x` once and
    /// run in one parallel section ([`quant_products`]), with the same values as apart.
    fn qkv(&self, x: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        use super::matrix::MatrixWeight::Quant;
        if let (Quant(q), Quant(k), Quant(v)) = (&self.q.weight, &self.k.weight, &self.v.weight) {
            if x.dtype() == DType::F32 && x.device().is_cpu() {
                let mut ys = quant_products(&[q, k, v], x)?.into_iter();
                let mut next = |l: &Linear| l.add_bias(ys.next().expect("one per matrix"));
                return Ok((next(&self.q)?, next(&self.k)?, next(&self.v)?));
            }
        }
        Ok((self.q.forward(x)?, self.k.forward(x)?, self.v.forward(x)?))
    }

    /// Whether a projection is a dense candle tensor (whose products may round a row
    /// differently with other rows beside it).
    pub(crate) fn has_dense(&self) -> bool {
        [&self.q, &self.k, &self.v, &self.o]
            .iter()
            .any(|l| l.is_dense())
    }

    /// Attention of the projected `q`, `k`, `v` (`[b, t, n · d]`): the heads' outputs
    /// `[b, t, heads · d]`, before the output projection.
    #[allow(clippy::too_many_arguments)]
    fn attend(
        &self,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        (b, t): (usize, usize),
        rope: &Rope,
        offset: usize,
        mask: Option<&Tensor>,
        cache: Option<(&mut KvCache, usize)>,
    ) -> Result<Tensor> {
        let d = self.head_dim;
        let heads = |y: Tensor, n: usize, norm: &Option<RmsNorm>| -> Result<Tensor> {
            let y = y.reshape((b, t, n, d))?;
            let y = match norm {
                Some(nm) => nm.forward(&y)?,
                None => y,
            };
            Ok(y.transpose(1, 2)?.contiguous()?)
        };
        let scale = self.scale;
        let (q, k, v) = if q.dtype() == DType::F32 && q.device().is_cpu() {
            // transpose to heads, rotate and scale in one parallel pass per tensor
            let normed = |y: Tensor, n: usize, norm: &Option<RmsNorm>| -> Result<Tensor> {
                match norm {
                    Some(nm) => nm.forward(&y.reshape((b, t, n, d))?),
                    None => Ok(y),
                }
            };
            let (h, kvh) = (self.num_heads, self.num_kv_heads);
            let q = normed(q, h, &self.q_norm)?;
            let k = normed(k, kvh, &self.k_norm)?;
            (
                rope.heads(&q, h, offset, true, Some(scale as f32))?,
                rope.heads(&k, kvh, offset, true, None)?,
                rope.heads(&v, kvh, offset, false, None)?,
            )
        } else {
            let q = heads(q, self.num_heads, &self.q_norm)?;
            let k = heads(k, self.num_kv_heads, &self.k_norm)?;
            let v = heads(v, self.num_kv_heads, &None)?;
            // scaling the queries (t x d) is cheaper than scaling the scores (t x total)
            let q = (rope.apply(&q, offset)? * scale)?;
            (q, rope.apply(&k, offset)?, v)
        };
        let (k, v) = match cache {
            Some((c, layer)) => c.append(layer, k, v)?,
            None => (k, v),
        };
        // GQA without copying keys/values: the `groups` query heads that share a kv head
        // are stacked along the sequence axis, [b, kv_heads, groups * len, d]
        let groups = self.num_heads / self.num_kv_heads;
        let total = k.dim(2)?;
        match Backend::choose(t, q.dtype(), q.device()) {
            Backend::Decode => {
                // a decode step: one pass over the cached rows, no matmul packing
                let first = self.sliding_window.map_or(0, |w| total.saturating_sub(w));
                let y = decode_attention(&q, &k, &v, first, Kernel::Auto)?;
                return Ok(y.transpose(1, 2)?.reshape((b, 1, self.num_heads * d))?);
            }
            Backend::Prefill => {
                // keys and values packed per head, only visible scores computed
                let vis = Visibility {
                    offset,
                    causal: mask.is_some(),
                    window: self.sliding_window,
                };
                return Ok(prefill_attention(&q, &k, &v, vis, Kernel::Auto)?);
            }
            Backend::Dense => {}
        }
        // Long prompts run in chunks of query positions: the scores of one chunk stay
        // small (not heads x t x t), and a chunk never computes scores for the keys after
        // its last position, which the causal mask would hide anyway.
        let chunk = (SCORE_CHUNK_ELEMS / (self.num_heads * total).max(1)).clamp(1, t);
        let mut ys = Vec::with_capacity(t.div_ceil(chunk));
        for i0 in (0..t).step_by(chunk) {
            let len = chunk.min(t - i0);
            let visible = if mask.is_some() {
                offset + i0 + len
            } else {
                total
            };
            let qc = if len == t {
                q.clone()
            } else {
                q.narrow(2, i0, len)?.contiguous()?
            };
            let qc = qc.reshape((b, self.num_kv_heads, groups * len, d))?;
            let (kc, vc) = if visible == total {
                (k.clone(), v.clone())
            } else {
                (k.narrow(2, 0, visible)?, v.narrow(2, 0, visible)?)
            };
            let att = qc.matmul(&kc.t()?)?;
            let att = match mask {
                Some(mask) => {
                    let m = if len == t && visible == total {
                        mask.clone()
                    } else {
                        mask.narrow(0, i0, len)?.narrow(1, 0, visible)?
                    };
                    att.reshape((b, self.num_kv_heads, groups, len, visible))?
                        .broadcast_add(&m)?
                        .reshape((b, self.num_kv_heads, groups * len, visible))?
                }
                None => att,
            };
            // softmax in f32 at least (f64 stays f64)
            let att = att.to_dtype(if q.dtype() == DType::F64 {
                DType::F64
            } else {
                DType::F32
            })?;
            let att = candle_nn::ops::softmax_last_dim(&att)?.to_dtype(q.dtype())?;
            // [b, kv_heads, groups * len, d] -> [b, heads, len, d]
            ys.push(att.matmul(&vc)?.reshape((b, self.num_heads, len, d))?);
        }
        let y = if ys.len() == 1 {
            ys.pop().expect("one chunk")
        } else {
            Tensor::cat(&ys, 2)?
        };
        Ok(y.transpose(1, 2)?.reshape((b, t, self.num_heads * d))?)
    }
}

/// `[b, kv_heads, s, d]` -> `[b, kv_heads * groups, s, d]`, each kv head repeated `groups`
/// times in a row (query head j reads kv head j / groups), as HF's `repeat_kv`. The
/// kernels do this by indexing; kept as the reference their order is checked against.
#[cfg(test)]
pub fn repeat_kv(x: &Tensor, groups: usize) -> Result<Tensor> {
    if groups == 1 {
        return Ok(x.clone());
    }
    let (b, h, s, d) = x.dims4()?;
    Ok(x.unsqueeze(2)?
        .expand((b, h, groups, s, d))?
        .reshape((b, h * groups, s, d))?)
}

/// Additive mask `[t, total]` for queries at positions `offset..offset+t` over keys
/// `0..total`: 0 where key j is visible to query i (j <= i, and i - j < window), -inf
/// elsewhere. None when every key is visible.
pub fn causal_mask(
    t: usize,
    total: usize,
    offset: usize,
    window: Option<usize>,
    device: &Device,
) -> Result<Option<Tensor>> {
    let visible = |i: usize, j: usize| j <= i && window.is_none_or(|w| i - j < w);
    let mut m = vec![0f32; t * total];
    let mut any = false;
    for r in 0..t {
        for j in 0..total {
            if !visible(offset + r, j) {
                m[r * total + j] = f32::NEG_INFINITY;
                any = true;
            }
        }
    }
    if !any {
        return Ok(None);
    }
    Ok(Some(Tensor::from_vec(m, (t, total), device)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_values() {
        let m = causal_mask(3, 3, 0, None, &Device::Cpu).unwrap().unwrap();
        let v = m.to_vec2::<f32>().unwrap();
        assert_eq!(v[0], vec![0.0, f32::NEG_INFINITY, f32::NEG_INFINITY]);
        assert_eq!(v[2], vec![0.0, 0.0, 0.0]);
        // one new token after 4 cached: everything visible, no mask needed
        assert!(causal_mask(1, 5, 4, None, &Device::Cpu).unwrap().is_none());
        // window 2: position 4 sees keys 3 and 4 only
        let m = causal_mask(1, 5, 4, Some(2), &Device::Cpu)
            .unwrap()
            .unwrap();
        let v = m.to_vec2::<f32>().unwrap();
        assert_eq!(v[0][..3], [f32::NEG_INFINITY; 3]);
        assert_eq!(v[0][3..], [0.0, 0.0]);
    }

    #[test]
    fn repeat_kv_order() {
        let x = Tensor::arange(0f32, 2.0, &Device::Cpu)
            .unwrap()
            .reshape((1, 2, 1, 1))
            .unwrap();
        let y = repeat_kv(&x, 3).unwrap().flatten_all().unwrap();
        assert_eq!(y.to_vec1::<f32>().unwrap(), vec![0., 0., 0., 1., 1., 1.]);
    }
}

//! Rotary position embeddings, HF "rotate_half" layout, tables computed as transformers does
//! (f32 inverse frequencies and angles).

use candle_core::{CpuStorage, CustomOp3, DType, Device, Layout, Shape, Tensor};
use rayon::prelude::*;

use crate::config::{Config, RopeScaling};
use crate::error::Result;

/// cos/sin tables `[max_pos, head_dim / 2]` in the compute dtype.
#[derive(Debug, Clone)]
pub struct Rope {
    cos: Tensor,
    sin: Tensor,
}

/// Inverse frequencies as transformers computes them in f32, scaling applied.
pub fn inv_freq(cfg: &Config) -> Vec<f32> {
    let dim = cfg.head_dim;
    let base = cfg.rope_theta as f32;
    let inv: Vec<f32> = (0..dim / 2)
        .map(|i| 1.0f32 / base.powf((2 * i) as f32 / dim as f32))
        .collect();
    match &cfg.rope_scaling {
        None => inv,
        Some(RopeScaling::Linear { factor }) => inv.iter().map(|f| f / *factor as f32).collect(),
        Some(RopeScaling::Llama3 {
            factor,
            low_freq_factor,
            high_freq_factor,
            original_max_position_embeddings,
        }) => {
            let (factor, lo, hi) = (
                *factor as f32,
                *low_freq_factor as f32,
                *high_freq_factor as f32,
            );
            let old = *original_max_position_embeddings as f32;
            let low_wavelen = old / lo;
            let high_wavelen = old / hi;
            inv.iter()
                .map(|&f| {
                    let wavelen = 2.0 * std::f32::consts::PI / f;
                    let scaled = if wavelen > low_wavelen { f / factor } else { f };
                    let medium = wavelen >= high_wavelen && wavelen <= low_wavelen; // finite values
                    if medium {
                        let smooth = (old / wavelen - lo) / (hi - lo);
                        (1.0 - smooth) * scaled / factor + smooth * scaled
                    } else {
                        scaled
                    }
                })
                .collect()
        }
    }
}

impl Rope {
    pub fn new(cfg: &Config, max_pos: usize, dtype: DType, device: &Device) -> Result<Self> {
        let inv = inv_freq(cfg);
        let half = inv.len();
        let mut cos = Vec::with_capacity(max_pos * half);
        let mut sin = Vec::with_capacity(max_pos * half);
        for p in 0..max_pos {
            for &f in &inv {
                let angle = (p as f32) * f;
                cos.push((angle as f64).cos() as f32);
                sin.push((angle as f64).sin() as f32);
            }
        }
        let cos = Tensor::from_vec(cos, (max_pos, half), device)?.to_dtype(dtype)?;
        let sin = Tensor::from_vec(sin, (max_pos, half), device)?.to_dtype(dtype)?;
        Ok(Self { cos, sin })
    }

    pub fn max_positions(&self) -> usize {
        self.cos.dim(0).unwrap_or(0)
    }

    /// Rotates `x`: `[batch, heads, seq, head_dim]`, positions `offset..offset+seq`.
    /// `x`: `[b, t, n · d]` (or `[b, t, n, d]`), contiguous f32 on the CPU -> `[b, n, t, d]`:
    /// the transpose to heads, rotated (`rotate`) at positions `offset..offset+t`, then
    /// multiplied by `scale`, in one parallel pass (per (batch, head)); the same arithmetic
    /// as [`Rope::apply`] on the transposed tensor followed by `* scale`.
    pub fn heads(
        &self,
        x: &Tensor,
        n: usize,
        offset: usize,
        rotate: bool,
        scale: Option<f32>,
    ) -> Result<Tensor> {
        let t = x.dim(1)?;
        let cos = self.cos.narrow(0, offset, t)?;
        let sin = self.sin.narrow(0, offset, t)?;
        let op = ToHeads { n, rotate, scale };
        Ok(x.apply_op3_no_bwd(&cos, &sin, &op)?)
    }

    pub fn apply(&self, x: &Tensor, offset: usize) -> Result<Tensor> {
        let seq = x.dim(2)?;
        let cos = self.cos.narrow(0, offset, seq)?;
        let sin = self.sin.narrow(0, offset, seq)?;
        let x = x.contiguous()?;
        Ok(candle_nn::rotary_emb::rope(&x, &cos, &sin)?)
    }
}

struct ToHeads {
    n: usize,
    rotate: bool,
    scale: Option<f32>,
}

impl CustomOp3 for ToHeads {
    fn name(&self) -> &'static str {
        "llmdrop-rope-heads"
    }

    fn cpu_fwd(
        &self,
        sx: &CpuStorage,
        lx: &Layout,
        sc: &CpuStorage,
        lc: &Layout,
        ss: &CpuStorage,
        ls: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (CpuStorage::F32(x), CpuStorage::F32(cos), CpuStorage::F32(sin)) = (sx, sc, ss) else {
            candle_core::bail!("rope heads needs f32")
        };
        let (Some((x0, x1)), Some((c0, c1)), Some((s0, s1))) = (
            lx.contiguous_offsets(),
            lc.contiguous_offsets(),
            ls.contiguous_offsets(),
        ) else {
            candle_core::bail!("rope heads needs contiguous inputs")
        };
        let (x, cos, sin) = (&x[x0..x1], &cos[c0..c1], &sin[s0..s1]);
        let dims = lx.dims();
        if dims.len() < 3 {
            candle_core::bail!("rope heads: input {dims:?} is not [b, t, ...]")
        }
        let (b, t) = (dims[0], dims[1]);
        let n = self.n;
        let d = x.len() / (b * t * n).max(1);
        if b * t * n * d != x.len() || !d.is_multiple_of(2) || cos.len() < t * d / 2 {
            candle_core::bail!("rope heads: input {dims:?} for {n} heads")
        }
        let half = d / 2;
        let mut out = vec![0f32; x.len()];
        let one = |(bh, o): (usize, &mut [f32])| {
            let (bi, h) = (bh / n, bh % n);
            for (p, row) in o.chunks_exact_mut(d).enumerate() {
                let src = &x[((bi * t + p) * n + h) * d..][..d];
                if self.rotate {
                    let (c, s) = (&cos[p * half..][..half], &sin[p * half..][..half]);
                    for i in 0..half {
                        let (a, b) = (src[i], src[i + half]);
                        row[i] = a * c[i] - b * s[i];
                        row[i + half] = a * s[i] + b * c[i];
                    }
                } else {
                    row.copy_from_slice(src);
                }
                if let Some(k) = self.scale {
                    row.iter_mut().for_each(|v| *v *= k);
                }
            }
        };
        if rayon::current_num_threads() > 1 && b * n > 1 && x.len() >= 1 << 14 {
            out.par_chunks_mut(t * d).enumerate().for_each(one);
        } else {
            out.chunks_mut(t * d).enumerate().for_each(one);
        }
        Ok((CpuStorage::F32(out), Shape::from((b, n, t, d))))
    }
}

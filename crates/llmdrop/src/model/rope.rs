//! Rotary position embeddings, HF "rotate_half" layout, tables computed as transformers does
//! (f32 inverse frequencies and angles).

use std::mem::MaybeUninit;
use std::sync::{Arc, RwLock};

use candle_core::{CpuStorage, CustomOp3, DType, Device, Layout, Shape, Tensor};
use rayon::prelude::*;

use crate::config::{Config, RopeScaling};
use crate::error::{Error, Result};

/// cos/sin tables `[positions, head_dim / 2]` in the compute dtype, computed as far as the
/// longest sequence run so far (doubling, up to the model's maximum position): a model whose
/// config allows 2^40 positions costs only the rows it uses. Row `p` is the same bits
/// whatever the table's length, so growing never changes a result. Shared by clones (a
/// pruned decoder grows the same tables) and safe to use from several threads.
#[derive(Debug, Clone)]
pub struct Rope {
    inv: Arc<[f32]>,
    dtype: DType,
    device: Device,
    /// Positions `0..max_pos` are valid.
    max_pos: usize,
    tables: Arc<RwLock<Tables>>,
}

/// The rows computed so far.
#[derive(Debug)]
struct Tables {
    cos: Tensor,
    sin: Tensor,
}

impl Tables {
    fn rows(&self) -> usize {
        self.cos.dim(0).unwrap_or(0)
    }
}

/// Inverse frequencies of the global RoPE as transformers computes them in f32, scaling
/// applied.
pub fn inv_freq(cfg: &Config) -> Vec<f32> {
    inv_freq_of(cfg.head_dim, cfg.rope_theta, cfg.rope_scaling.as_ref())
}

/// Inverse frequencies for heads of `dim` with base `theta` and `scaling`.
fn inv_freq_of(dim: usize, theta: f64, scaling: Option<&RopeScaling>) -> Vec<f32> {
    let base = theta as f32;
    let inv: Vec<f32> = (0..dim / 2)
        .map(|i| 1.0f32 / base.powf((2 * i) as f32 / dim as f32))
        .collect();
    match scaling {
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
    /// Tables of the global RoPE for positions `0..max_pos`; no row is computed until a
    /// position is used.
    pub fn new(cfg: &Config, max_pos: usize, dtype: DType, device: &Device) -> Result<Self> {
        Self::with_freqs(inv_freq(cfg), max_pos, dtype, device)
    }

    /// Tables of the sliding layers' RoPE, when the config gives them their own.
    pub fn local(
        cfg: &Config,
        max_pos: usize,
        dtype: DType,
        device: &Device,
    ) -> Result<Option<Self>> {
        cfg.local_rope
            .as_ref()
            .map(|r| {
                let inv = inv_freq_of(cfg.head_dim, r.theta, r.scaling.as_ref());
                Self::with_freqs(inv, max_pos, dtype, device)
            })
            .transpose()
    }

    fn with_freqs(inv: Vec<f32>, max_pos: usize, dtype: DType, device: &Device) -> Result<Self> {
        let inv: Arc<[f32]> = inv.into();
        let empty = Tensor::zeros((0, inv.len()), dtype, device)?;
        Ok(Self {
            inv,
            dtype,
            device: device.clone(),
            max_pos,
            tables: Arc::new(RwLock::new(Tables {
                cos: empty.clone(),
                sin: empty,
            })),
        })
    }

    /// The number of positions the model allows (rows are computed up to it on demand).
    pub fn max_positions(&self) -> usize {
        self.max_pos
    }

    /// The number of positions computed so far (the tests check the tables grow lazily).
    #[cfg(test)]
    pub fn computed_positions(&self) -> usize {
        self.read().rows()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Tables> {
        // the tables are replaced whole, never left half-written: a poisoned lock is harmless
        self.tables.read().unwrap_or_else(|e| e.into_inner())
    }

    /// cos and sin rows of positions `offset..offset + len`, computing rows not yet there.
    fn rows(&self, offset: usize, len: usize) -> Result<(Tensor, Tensor)> {
        let end = offset
            .checked_add(len)
            .filter(|&e| e <= self.max_pos)
            .ok_or_else(|| Error::TooLong {
                what: format!("positions up to {offset} + {len}"),
                max: self.max_pos,
            })?;
        {
            let t = self.read();
            if t.rows() >= end {
                return Ok((t.cos.narrow(0, offset, len)?, t.sin.narrow(0, offset, len)?));
            }
        }
        let mut t = self.tables.write().unwrap_or_else(|e| e.into_inner());
        let have = t.rows();
        if have < end {
            let want = end
                .checked_next_power_of_two()
                .unwrap_or(self.max_pos)
                .max(2 * have)
                .min(self.max_pos);
            let (cos, sin) = self.compute(have, want)?;
            *t = if have == 0 {
                Tables { cos, sin }
            } else {
                Tables {
                    cos: Tensor::cat(&[&t.cos, &cos], 0)?,
                    sin: Tensor::cat(&[&t.sin, &sin], 0)?,
                }
            };
        }
        Ok((t.cos.narrow(0, offset, len)?, t.sin.narrow(0, offset, len)?))
    }

    /// Rows `from..to` of the tables: angles in f32 as transformers computes them, cos and
    /// sin in f64 rounded to f32, then converted to the compute dtype.
    fn compute(&self, from: usize, to: usize) -> Result<(Tensor, Tensor)> {
        let half = self.inv.len();
        let n = to - from;
        let mut cos = Vec::with_capacity(n * half);
        let mut sin = Vec::with_capacity(n * half);
        for p in from..to {
            for &f in self.inv.iter() {
                let angle = (p as f32) * f;
                cos.push((angle as f64).cos() as f32);
                sin.push((angle as f64).sin() as f32);
            }
        }
        let cos = Tensor::from_vec(cos, (n, half), &self.device)?.to_dtype(self.dtype)?;
        let sin = Tensor::from_vec(sin, (n, half), &self.device)?.to_dtype(self.dtype)?;
        Ok((cos, sin))
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
        let (cos, sin) = self.rows(offset, t)?;
        let op = ToHeads { n, rotate, scale };
        Ok(x.apply_op3_no_bwd(&cos, &sin, &op)?)
    }

    pub fn apply(&self, x: &Tensor, offset: usize) -> Result<Tensor> {
        let seq = x.dim(2)?;
        let (cos, sin) = self.rows(offset, seq)?;
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
        if x.is_empty() {
            // zero-width heads (or no tokens): nothing to rotate
            return Ok((CpuStorage::F32(Vec::new()), Shape::from((b, n, t, d))));
        }
        let one = |(bh, o): (usize, &mut [MaybeUninit<f32>])| {
            let (bi, h) = (bh / n, bh % n);
            // times 1 where there is no scale: exact (x · 1 = x), and no branch in the
            // loops, which then vectorize
            let k = self.scale.unwrap_or(1.0);
            for (p, row) in o.chunks_exact_mut(d).enumerate() {
                let src = &x[((bi * t + p) * n + h) * d..][..d];
                if self.rotate {
                    let (c, s) = (&cos[p * half..][..half], &sin[p * half..][..half]);
                    for i in 0..half {
                        let (a, b) = (src[i], src[i + half]);
                        row[i].write((a * c[i] - b * s[i]) * k);
                        row[i + half].write((a * s[i] + b * c[i]) * k);
                    }
                } else {
                    for (o, &v) in row.iter_mut().zip(src) {
                        o.write(v * k);
                    }
                }
            }
        };
        let fill = |out: &mut [MaybeUninit<f32>]| {
            if rayon::current_num_threads() > 1 && b * n > 1 && x.len() >= 1 << 14 {
                out.par_chunks_mut(t * d).enumerate().for_each(one);
            } else {
                out.chunks_mut(t * d).enumerate().for_each(one);
            }
        };
        // SAFETY: `out` (b·n·t·d values, as `x`) is cut in b·n heads of t rows of d values
        // (b·t·n·d == x.len(), checked above); `one` writes every value of each row
        let out = unsafe { llmdrop_kernels::written::written(x.len(), fill) };
        Ok((CpuStorage::F32(out), Shape::from((b, n, t, d))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tiny llama fixture's config (llama3 RoPE scaling), read without the test kit.
    const TINY_LLAMA_CONFIG: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/tiny/llama/config.json"
    );

    /// The tables as they were computed before they grew on demand: every row up front.
    fn preallocated(cfg: &Config, max_pos: usize, dtype: DType) -> (Vec<f32>, Vec<f32>) {
        let inv = inv_freq(cfg);
        let (mut cos, mut sin) = (Vec::new(), Vec::new());
        for p in 0..max_pos {
            for &f in &inv {
                let angle = (p as f32) * f;
                cos.push((angle as f64).cos() as f32);
                sin.push((angle as f64).sin() as f32);
            }
        }
        let back = |v: Vec<f32>| -> Vec<f32> {
            let t = Tensor::from_vec(v, (max_pos, inv.len()), &Device::Cpu).unwrap();
            let t = t.to_dtype(dtype).unwrap().to_dtype(DType::F32).unwrap();
            t.flatten_all().unwrap().to_vec1().unwrap()
        };
        (back(cos), back(sin))
    }

    fn bits(t: &Tensor) -> Vec<u32> {
        let v: Vec<f32> = t
            .to_dtype(DType::F32)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        v.iter().map(|x| x.to_bits()).collect()
    }

    #[test]
    fn grown_rows_are_the_preallocated_bits_in_every_dtype() {
        let mut cfg = Config::from_hf_file(std::path::Path::new(TINY_LLAMA_CONFIG)).unwrap();
        cfg.max_position_embeddings = 700;
        for dtype in [DType::F32, DType::BF16, DType::F16] {
            let (want_cos, want_sin) = preallocated(&cfg, 700, dtype);
            let half = cfg.head_dim / 2;
            let rope = Rope::new(&cfg, 700, dtype, &Device::Cpu).unwrap();
            assert_eq!(rope.computed_positions(), 0, "nothing computed up front");
            // grows in steps (1, 4, 128, 512, 700), read back at offsets across the steps
            for (offset, len) in [(0, 1), (1, 3), (0, 100), (90, 300), (650, 50), (0, 700)] {
                let (c, s) = rope.rows(offset, len).unwrap();
                let at = |w: &[f32]| -> Vec<u32> {
                    w[offset * half..(offset + len) * half]
                        .iter()
                        .map(|x| x.to_bits())
                        .collect()
                };
                assert_eq!(bits(&c), at(&want_cos), "{dtype:?} cos {offset}+{len}");
                assert_eq!(bits(&s), at(&want_sin), "{dtype:?} sin {offset}+{len}");
                assert!(rope.computed_positions() <= 700);
            }
            assert_eq!(rope.computed_positions(), 700, "capped at the maximum");
            let e = rope.rows(650, 51).unwrap_err().to_string();
            assert!(e.contains("maximum of 700"), "{e}");
            assert!(rope.rows(usize::MAX, 2).is_err(), "no overflow");
        }
    }

    #[test]
    fn a_huge_maximum_costs_only_the_rows_used() {
        let mut cfg = Config::from_hf_file(std::path::Path::new(TINY_LLAMA_CONFIG)).unwrap();
        cfg.max_position_embeddings = 1 << 40;
        let rope = Rope::new(&cfg, 1 << 40, DType::F32, &Device::Cpu).unwrap();
        rope.rows(0, 33).unwrap();
        assert_eq!(rope.computed_positions(), 64);
        // clones share the tables; threads growing them at once all see whole rows
        let copy = rope.clone();
        let got: Vec<Vec<u32>> = (0..8)
            .into_par_iter()
            .map(|i| bits(&copy.rows(100 * i, 300 + 37 * i).unwrap().0))
            .collect();
        // the longest ends at 700 + 559 = 1259: rows up to the next power of two
        let (want, _) = preallocated(&cfg, 2048, DType::F32);
        for (i, g) in got.iter().enumerate() {
            let w: Vec<u32> = want[100 * i * 8..(100 * i + 300 + 37 * i) * 8]
                .iter()
                .map(|x| x.to_bits())
                .collect();
            assert_eq!(g, &w, "thread {i}");
        }
        assert_eq!(rope.computed_positions(), 2048);
    }
}

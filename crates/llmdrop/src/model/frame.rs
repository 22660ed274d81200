//! What a pass through the decoder needs besides the weights (config, plan, RoPE tables,
//! embedding scale, dtype), and one layer's step of the residual stream. The in-memory
//! [`Decoder`](super::Decoder) and layer-streamed scoring both run their layers through
//! [`Frame::layer_forward`]: one forward pass, whether the layers are all held or read one
//! at a time.

use candle_core::{DType, Device, Tensor};

use super::cache::KvCache;
use super::layer::Layer;
use super::rope::Rope;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::plan::DropPlan;
use crate::probe::{Probe, Site};
use crate::quant::Precision;

/// The weight-free part of a decoder.
#[derive(Debug, Clone)]
pub(crate) struct Frame {
    pub cfg: Config,
    pub plan: DropPlan,
    /// Multiplies the looked-up embeddings (Gemma: `sqrt(hidden)` as f32).
    pub embed_scale: Option<f32>,
    /// The global RoPE, and the sliding layers' own when the config gives one.
    pub rope: Rope,
    pub local_rope: Option<Rope>,
    pub dtype: DType,
    pub precision: Precision,
    pub device: Device,
}

/// The additive causal masks of one pass: one per attention window (global, sliding),
/// shared by the layers with that window.
pub(crate) struct Masks(Vec<(Option<usize>, Option<Tensor>)>);

impl Frame {
    /// The frame of `cfg` with `plan` applied, computing at `precision` on `device`.
    pub fn new(
        cfg: &Config,
        plan: &DropPlan,
        precision: Precision,
        device: &Device,
    ) -> Result<Self> {
        let dtype = precision.compute_dtype();
        let max_pos = cfg.max_position_embeddings.max(1);
        let rope = Rope::new(cfg, max_pos, dtype, device)?;
        let local_rope = Rope::local(cfg, max_pos, dtype, device)?;
        let embed_scale = cfg
            .arch
            .scaled_embeddings
            .then(|| (cfg.hidden_size as f64).sqrt() as f32);
        Ok(Self {
            cfg: cfg.clone(),
            plan: plan.clone(),
            embed_scale,
            rope,
            local_rope,
            dtype,
            precision,
            device: device.clone(),
        })
    }

    /// Checks that `ids` (`[b, t]`, u32) fit after `offset` positions and in the vocabulary.
    pub fn check_ids(&self, ids: &Tensor, offset: usize) -> Result<()> {
        let (_b, t) = ids.dims2()?;
        if offset + t > self.rope.max_positions() {
            return Err(Error::TooLong {
                what: format!("{} tokens", offset + t),
                max: self.rope.max_positions(),
            });
        }
        if let Some(bad) = ids
            .flatten_all()?
            .to_vec1::<u32>()?
            .into_iter()
            .find(|&i| i as usize >= self.cfg.vocab_size)
        {
            return Err(Error::TokenOutOfRange {
                id: bad.into(),
                vocab: self.cfg.vocab_size,
            });
        }
        Ok(())
    }

    /// Looked-up embedding rows (`[b * t, hidden]`) as the residual stream's start
    /// (`[b, t, hidden]`), scaled where the family scales them.
    pub fn embedded(&self, rows: Tensor, b: usize, t: usize) -> Result<Tensor> {
        let x = rows.reshape((b, t, self.cfg.hidden_size))?;
        Ok(match self.embed_scale {
            Some(s) => x.affine(s as f64, 0.0)?,
            None => x,
        })
    }

    /// The masks of a pass over `t` new positions after `offset`, for the layers whose
    /// attention is kept (`has_attn`).
    pub fn masks(
        &self,
        t: usize,
        offset: usize,
        has_attn: impl Fn(usize) -> bool,
    ) -> Result<Masks> {
        let mut masks: Vec<(Option<usize>, Option<Tensor>)> = Vec::new();
        for i in 0..self.cfg.num_layers {
            let w = self.cfg.layer_window(i);
            if has_attn(i) && !masks.iter().any(|(m, _)| *m == w) {
                let m = super::attention::causal_mask(t, offset + t, offset, w, &self.device)?
                    .map(|m| m.to_dtype(self.dtype))
                    .transpose()?;
                masks.push((w, m));
            }
        }
        Ok(Masks(masks))
    }

    /// The RoPE of layer `i`: the sliding layers' own where the config gives one.
    pub fn rope_of(&self, i: usize) -> &Rope {
        match (&self.local_rope, self.cfg.uses_local_rope(i)) {
            (Some(local), true) => local,
            _ => &self.rope,
        }
    }

    /// Layer `i` on the residual stream `x` (`[b, t, hidden]` at positions
    /// `offset..offset+t`): calls `probe` at each of the layer's sites, and returns the
    /// layer's output.
    #[allow(clippy::too_many_arguments)]
    pub fn layer_forward(
        &self,
        i: usize,
        layer: &Layer,
        mut x: Tensor,
        masks: &Masks,
        offset: usize,
        cache: Option<&mut KvCache>,
        probe: &mut dyn Probe,
    ) -> Result<Tensor> {
        let branches = probe.wants_branches();
        probe.observe(i, Site::Input, &x)?;
        if let Some(b) = &layer.attn {
            let h = b.pre.forward(&x)?;
            let slot = cache.map(|c| (c, i));
            let rope = self.rope_of(i);
            let w = self.cfg.layer_window(i);
            let mask = masks
                .0
                .iter()
                .find(|(m, _)| *m == w)
                .and_then(|(_, m)| m.as_ref());
            let a = b.finish(b.module.forward(&h, rope, offset, mask, slot)?)?;
            if branches {
                probe.observe(i, Site::AttnIn, &h)?;
                probe.observe(i, Site::AttnOut, &a)?;
            }
            x = llmdrop_kernels::add::add(&x, &a)?;
        }
        probe.observe(i, Site::AfterAttn, &x)?;
        if let Some(b) = &layer.mlp {
            let h = b.pre.forward(&x)?;
            let m = b.finish(b.module.forward(&h)?)?;
            if branches {
                probe.observe(i, Site::MlpIn, &h)?;
                probe.observe(i, Site::MlpOut, &m)?;
            }
            x = llmdrop_kernels::add::add(&x, &m)?;
        }
        probe.observe(i, Site::AfterMlp, &x)?;
        Ok(x)
    }
}

//! The one generic decoder: embeddings, layers with optional attention / MLP, final norm,
//! lm_head. Configured by [`Config`]; pruned by a [`DropPlan`] at load time.

use candle_core::{DType, Device, Tensor};

use super::cache::KvCache;
use super::frame::Frame;
use super::head;
pub use super::layer::Layer;
use super::linear::Linear;
use super::matrix::MatrixWeight;
use super::norm::RmsNorm;
use super::weights::Weights;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::io::WeightSource;
use crate::plan::DropPlan;
use crate::probe::{NoProbe, Probe};
use crate::quant::Precision;

/// Which logits `forward` computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logits {
    /// Every position: `[b, t, vocab]` (perplexity, multiple choice).
    All,
    /// Only the last position: `[b, 1, vocab]` (generation).
    Last,
    /// None: skip the final norm and lm_head (scoring only needs the probe).
    None,
}

/// What a loaded decoder can compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outputs {
    /// Hidden states and logits.
    Logits,
    /// Hidden states only (scoring): no output head is held, and the embedding table stays
    /// in the file's quantized blocks where they repack exactly (a row looked up from them
    /// is bit for bit the f32 row), so the pass holds less than the model.
    HiddenStates,
}

/// A decoder-only transformer.
#[derive(Debug, Clone)]
pub struct Decoder {
    /// Config, plan, RoPE tables, dtype: everything but the weights.
    pub(super) frame: Frame,
    pub(super) embed: MatrixWeight,
    pub(super) layers: Vec<Layer>,
    pub(super) norm: RmsNorm,
    /// None when loaded for [`Outputs::HiddenStates`].
    pub(super) lm_head: Option<Linear>,
}

impl Decoder {
    /// Loads the model from `src`; the weights of modules dropped by `plan` are never read.
    /// `precision`: a float dtype, or a quantized mode (f32 activations).
    pub fn load(
        src: &dyn WeightSource,
        cfg: &Config,
        plan: &DropPlan,
        precision: impl Into<Precision>,
        device: &Device,
    ) -> Result<Self> {
        Self::load_for(src, cfg, plan, precision, device, Outputs::Logits)
    }

    /// As [`Decoder::load`], for what `outputs` asks.
    pub fn load_for(
        src: &dyn WeightSource,
        cfg: &Config,
        plan: &DropPlan,
        precision: impl Into<Precision>,
        device: &Device,
        outputs: Outputs,
    ) -> Result<Self> {
        plan.validate(cfg.num_layers)?;
        let precision = precision.into();
        let w = Weights::new(src, cfg, precision, device);
        let (v, h) = (cfg.vocab_size, cfg.hidden_size);
        let embed = match outputs {
            Outputs::Logits => w.matrix("model.embed_tokens.weight", v, h, true)?,
            Outputs::HiddenStates => w.rows_table("model.embed_tokens.weight", v, h)?,
        };
        let layers = (0..cfg.num_layers)
            .map(|i| Layer::load(&w, cfg, plan, i))
            .collect::<Result<Vec<_>>>()?;
        let norm = head::load_norm(&w, cfg)?;
        let lm_head = match outputs {
            Outputs::HiddenStates => None,
            Outputs::Logits => Some(head::load_projection(&w, cfg, Some(&embed))?),
        };
        Ok(Self {
            frame: Frame::new(cfg, plan, precision, device)?,
            embed,
            layers,
            norm,
            lm_head,
        })
    }

    pub fn config(&self) -> &Config {
        &self.frame.cfg
    }

    pub fn plan(&self) -> &DropPlan {
        &self.frame.plan
    }

    pub fn dtype(&self) -> DType {
        self.frame.dtype
    }

    /// How the weights are held: a float dtype or a quantized mode.
    pub fn precision(&self) -> Precision {
        self.frame.precision
    }

    pub fn device(&self) -> &Device {
        &self.frame.device
    }

    pub(crate) fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// The same model with the modules `plan` names removed as well (nothing is reloaded;
    /// tensors are shared). Used to re-score a pruned model step by step.
    pub fn pruned(&self, plan: &DropPlan) -> Result<Decoder> {
        plan.validate(self.frame.cfg.num_layers)?;
        let mut d = self.clone();
        for &i in &plan.attn {
            d.layers[i].attn = None;
            d.frame.plan.attn.insert(i);
        }
        for &i in &plan.mlp {
            d.layers[i].mlp = None;
            d.frame.plan.mlp.insert(i);
        }
        Ok(d)
    }

    /// A fresh KV cache with a slot for each kept attention layer.
    pub fn new_cache(&self) -> KvCache {
        let kept: Vec<bool> = self.layers.iter().map(|l| l.attn.is_some()).collect();
        KvCache::new(&kept)
    }

    /// Runs `ids` (`[b, t]`, u32) at positions `offset..offset+t`, where `offset` is the
    /// number of positions already in `cache` (0 without one). Calls `probe` at every site
    /// of every layer. Returns f32 logits as `which` asks (None for [`Logits::None`]).
    ///
    /// Runs on a thread of rayon's global pool (moving there if called from outside it),
    /// so the many small parallel kernels of one step do not each pay a thread hand-off.
    ///
    /// Greedy decoding of two tokens with a cache, on the tiny llama fixture:
    ///
    /// ```
    /// use candle_core::{DType, Device, Tensor};
    /// use llmdrop::{DropPlan, Logits, ModelSource, NoProbe};
    ///
    /// let model = ModelSource::open(&llmdrop_testkit::tiny_dir("llama"))?;
    /// let dec = model.load_decoder(&DropPlan::empty(), DType::F32, &Device::Cpu)?;
    /// let mut cache = dec.new_cache();
    /// let mut ids = Tensor::new(&[[1u32, 72, 101, 108]], &Device::Cpu)?;
    /// for _ in 0..2 {
    ///     let logits = dec.forward(&ids, Some(&mut cache), &mut NoProbe, Logits::Last)?;
    ///     let logits = logits.expect("Logits::Last gives logits");
    ///     assert_eq!(logits.dims(), &[1, 1, model.config().vocab_size]);
    ///     let next = logits.flatten_all()?.argmax(0)?.to_scalar::<u32>()?;
    ///     ids = Tensor::new(&[[next]], &Device::Cpu)?;
    /// }
    /// assert_eq!(cache.seq_len(), 5);
    /// # Ok::<(), llmdrop::Error>(())
    /// ```
    pub fn forward(
        &self,
        ids: &Tensor,
        cache: Option<&mut KvCache>,
        probe: &mut dyn Probe,
        which: Logits,
    ) -> Result<Option<Tensor>> {
        // on a pool thread, the others polling through the pass's parallel sections
        llmdrop_kernels::awake::hold(move || self.forward_here(ids, cache, probe, which))
    }

    /// Logits of every position of `ids` `[batch, seq]` (no cache), in f64 when the
    /// decoder computes in f64 (`--dtype f64`, the reference precision), else f32 as
    /// [`Decoder::forward`] gives them.
    pub fn exact_logits(&self, ids: &Tensor) -> Result<Tensor> {
        let run = || -> Result<Tensor> {
            let x = self.hidden_states(ids, None, &mut NoProbe)?;
            head::exact_logits(&self.norm, self.head()?, &x)
        };
        llmdrop_kernels::awake::hold(run)
    }

    fn forward_here(
        &self,
        ids: &Tensor,
        cache: Option<&mut KvCache>,
        probe: &mut dyn Probe,
        which: Logits,
    ) -> Result<Option<Tensor>> {
        let t = ids.dim(1)?;
        let x = self.hidden_states(ids, cache, probe)?;
        let x = match which {
            Logits::None => return Ok(None),
            Logits::All => x,
            Logits::Last => x.narrow(1, t - 1, 1)?,
        };
        Ok(Some(head::logits(&self.norm, self.head()?, &x)?))
    }

    fn head(&self) -> Result<&Linear> {
        self.lm_head.as_ref().ok_or_else(|| {
            Error::unsupported(
                "this decoder",
                "was loaded for hidden states only: no logits",
            )
        })
    }

    /// The last layer's output (before the final norm).
    fn hidden_states(
        &self,
        ids: &Tensor,
        mut cache: Option<&mut KvCache>,
        probe: &mut dyn Probe,
    ) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let offset = cache.as_ref().map_or(0, |c| c.seq_len());
        let f = &self.frame;
        f.check_ids(ids, offset)?;
        let mut x = f.embedded(self.embed.rows_of(&ids.flatten_all()?)?, b, t)?;
        let masks = f.masks(t, offset, |i| self.layers[i].attn.is_some())?;
        for (i, layer) in self.layers.iter().enumerate() {
            x = f.layer_forward(i, layer, x, &masks, offset, cache.as_deref_mut(), probe)?;
        }
        Ok(x)
    }

    /// Bytes of the output projection (the embedding matrix when tied).
    pub fn lm_head_bytes(&self) -> usize {
        self.lm_head.as_ref().map_or(0, Linear::bytes)
    }

    /// Bytes of the weights this decoder holds (shared tensors counted once).
    pub fn weight_bytes(&self) -> usize {
        let t = |x: &Tensor| x.elem_count() * x.dtype().size_in_bytes();
        let mut n = self.embed.bytes() + t(&self.norm.weight);
        if !self.frame.cfg.tie_word_embeddings {
            n += self.lm_head_bytes();
        }
        for l in &self.layers {
            if let Some(a) = &l.attn {
                n += a.norm_bytes() + a.module.weight_bytes();
            }
            if let Some(m) = &l.mlp {
                n += m.norm_bytes() + m.module.weight_bytes();
            }
        }
        n
    }
}

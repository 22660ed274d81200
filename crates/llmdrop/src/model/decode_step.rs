//! One decode step of several sequences as one pass (continuous batching in a server):
//! each sequence on its own KV cache, at its own position, the weights read once for all.

use candle_core::Tensor;

use super::cache::KvCache;
use super::decoder::{Decoder, Logits};
use super::head;
use super::linear::Linear;
use crate::error::{Error, Result};
use crate::probe::NoProbe;

impl Decoder {
    /// The next position of `n` sequences at once: `ids[j]` follows the sequence held in
    /// `caches[j]` (a cache of one sequence, of any length: the sequences need not be
    /// alike) and is appended to it. Returns the f32 logits `[n, vocab]`.
    ///
    /// Row `j` is bit for bit what [`Decoder::forward`] gives for `ids[j]` alone on
    /// `caches[j]`, whatever the other rows: the norms, projections, MLP and output head
    /// run on all rows at once with kernels that compute a row alike in any batch (packed
    /// f32, bf16 and quantized matrices), attention runs per sequence on its own cache.
    /// Where the weights are dense candle tensors (whose products may round a row
    /// differently beside others) the sequences run one after another. After an error
    /// the caches may hold part of the step.
    ///
    /// ```
    /// use candle_core::{DType, Device, Tensor};
    /// use llmdrop::{DropPlan, Logits, ModelSource, NoProbe};
    ///
    /// let model = ModelSource::open(&llmdrop_testkit::tiny_dir("llama"))?;
    /// let dec = model.load_decoder(&DropPlan::empty(), DType::F32, &Device::Cpu)?;
    /// let (mut a, mut b) = (dec.new_cache(), dec.new_cache());
    /// for (cache, prompt) in [(&mut a, vec![1u32, 72, 101]), (&mut b, vec![1u32, 9])] {
    ///     let ids = Tensor::new(prompt, &Device::Cpu)?.unsqueeze(0)?;
    ///     dec.forward(&ids, Some(cache), &mut NoProbe, Logits::Last)?;
    /// }
    /// let logits = dec.decode_step(&[108, 33], &mut [&mut a, &mut b])?;
    /// assert_eq!(logits.dims(), &[2, model.config().vocab_size]);
    /// assert_eq!((a.seq_len(), b.seq_len()), (4, 3));
    /// # Ok::<(), llmdrop::Error>(())
    /// ```
    pub fn decode_step(&self, ids: &[u32], caches: &mut [&mut KvCache]) -> Result<Tensor> {
        // on a pool thread, the others polling through the step's many short sections
        llmdrop_kernels::awake::hold(move || self.decode_step_here(ids, caches))
    }

    fn decode_step_here(&self, ids: &[u32], caches: &mut [&mut KvCache]) -> Result<Tensor> {
        let n = ids.len();
        if n == 0 || caches.len() != n {
            return Err(Error::Argument {
                option: "caches",
                reason: format!("are {} for {n} ids: one per id, at least one", caches.len()),
            });
        }
        let head = self.lm_head.as_ref().ok_or_else(|| {
            Error::unsupported(
                "this decoder",
                "was loaded for hidden states only: no logits",
            )
        })?;
        let f = &self.frame;
        let mut offsets = Vec::with_capacity(n);
        for (&id, c) in ids.iter().zip(caches.iter()) {
            self.check_cache(c)?;
            let off = c.seq_len();
            f.check_ids(&Tensor::new(&[[id]], &f.device)?, off)?;
            offsets.push(off);
        }
        if !self.rows_alike() {
            let mut rows = Vec::with_capacity(n);
            for (&id, c) in ids.iter().zip(caches.iter_mut()) {
                let t = Tensor::new(&[[id]], &f.device)?;
                let y = self.forward(&t, Some(&mut **c), &mut NoProbe, Logits::Last)?;
                let y = y.ok_or_else(|| Error::unsupported("this decoder", "gave no logits"))?;
                rows.push(y.squeeze(1)?);
            }
            return Ok(Tensor::cat(&rows, 0)?);
        }
        let mut x = f.embedded(self.embed.rows_of(&Tensor::new(ids, &f.device)?)?, n, 1)?;
        for (i, layer) in self.layers.iter().enumerate() {
            if let Some(b) = &layer.attn {
                let h = b.pre.forward(&x)?;
                let a = b
                    .module
                    .forward_rows(&h, f.rope_of(i), &offsets, caches, i)?;
                x = (x + b.finish(a)?)?;
            }
            if let Some(b) = &layer.mlp {
                let h = b.pre.forward(&x)?;
                x = (x + b.finish(b.module.forward(&h)?)?)?;
            }
        }
        Ok(head::logits(&self.norm, head, &x)?.squeeze(1)?)
    }

    /// Whether every product computes a row alike in any batch (no dense candle weights).
    fn rows_alike(&self) -> bool {
        !self.lm_head.as_ref().is_some_and(Linear::is_dense)
            && self.layers.iter().all(|l| {
                !l.attn.as_ref().is_some_and(|a| a.module.has_dense())
                    && !l.mlp.as_ref().is_some_and(|m| m.module.has_dense())
            })
    }

    /// A cache of one sequence with a slot for each of this decoder's attention layers.
    fn check_cache(&self, c: &KvCache) -> Result<()> {
        let fits = c.layers() == self.layers.len()
            && (0..self.layers.len()).all(|i| c.has_slot(i) == self.layers[i].attn.is_some());
        if !fits {
            return Err(Error::Argument {
                option: "caches",
                reason: "include one made for another model (see Decoder::new_cache)".into(),
            });
        }
        if c.batch() > 1 {
            return Err(Error::Argument {
                option: "caches",
                reason: format!("include one of {} sequences: one each", c.batch()),
            });
        }
        Ok(())
    }
}

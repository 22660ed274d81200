//! Layer-streamed execution: hidden states of many sequences pass through layer `i`
//! before layer `i + 1` is read, so memory holds one layer's weights (plus the hidden
//! states) rather than the model's.
//!
//! Each layer is loaded by [`Layer::load`], the code the in-memory
//! [`Decoder`](super::Decoder) loads with (the same conversion and packing), run by
//! [`Frame::layer_forward`], the step the decoder runs, then dropped, and the pages of its
//! stored bytes handed back to the kernel ([`WeightSource::release`]). The embedding rows
//! are read for the tokens of the pass only, and loaded through the same code as the whole
//! table ([`RowSubset`]). Every value is the in-memory pass's, bit for bit.

use std::collections::btree_map::{BTreeMap, Entry};

use candle_core::{Device, Tensor};
use rayon::prelude::*;

use super::frame::{Frame, Masks};
use super::layer::Layer;
use super::weights::Weights;
use crate::config::Config;
use crate::error::Result;
use crate::io::names::split_layer_name;
use crate::io::read_once::ReadOnce;
use crate::io::row_subset::RowSubset;
use crate::io::source::ModelSource;
use crate::plan::DropPlan;
use crate::probe::Probe;
use crate::progress::Progress;
use crate::quant::Precision;

use super::decoder::Outputs;
use super::head::{OutputHead, EMBED};
use super::head_slices::HeadSlices;

/// What [`LayerStream::run_from`] calls after each layer: the layer, every state (its
/// output), every probe, and the progress.
pub type LayerHook<'h, P> =
    dyn FnMut(usize, &[Tensor], &mut [P], &mut dyn Progress) -> Result<()> + 'h;

/// A model opened for layer-streamed passes: no weights are held between layers.
pub struct LayerStream<'a> {
    src: &'a ModelSource,
    frame: Frame,
    /// The stored tensors of each layer (HF names), whose pages go back after it ran.
    layer_tensors: Vec<Vec<String>>,
}

impl<'a> LayerStream<'a> {
    /// `src` with `plan` (plus whatever its files say is dropped) at `precision`. Reads no
    /// tensor data.
    pub fn open(
        src: &'a ModelSource,
        plan: &DropPlan,
        precision: impl Into<Precision>,
        device: &Device,
    ) -> Result<Self> {
        let cfg = src.config();
        let plan = plan.union(src.stored_plan());
        plan.validate(cfg.num_layers)?;
        // before the first layer loads, which a streamed run's clock already counts
        super::weights::choose_kernels(device);
        let mut layer_tensors = vec![Vec::new(); cfg.num_layers];
        for t in src.weights().tensors() {
            if let Some((i, _)) = split_layer_name(&t.name).filter(|(i, _)| *i < cfg.num_layers) {
                layer_tensors[i].push(t.name.clone());
            }
        }
        Ok(Self {
            src,
            frame: Frame::new(cfg, &plan, precision.into(), device)?,
            layer_tensors,
        })
    }

    pub fn config(&self) -> &Config {
        &self.frame.cfg
    }

    /// The precision the layers are loaded and run at.
    pub fn precision(&self) -> Precision {
        self.frame.precision
    }

    pub fn device(&self) -> &Device {
        &self.frame.device
    }

    /// The modules dropped (the plan asked for and the files' own).
    pub fn plan(&self) -> &DropPlan {
        &self.frame.plan
    }

    fn weights_of<'w>(&'w self, src: &'w dyn crate::io::WeightSource) -> Weights<'w> {
        Weights::new(
            src,
            &self.frame.cfg,
            self.frame.precision,
            &self.frame.device,
        )
    }

    /// The residual stream's start (`[1, t, hidden]`) of each sequence of `seqs`: the
    /// embedding rows of these tokens alone are read, each once, and loaded as the
    /// in-memory decoder loads its table for `outputs` (for logits, the table is the
    /// output head's matrix, quantized as the head is: the same rows, bit for bit).
    pub fn embed(&self, seqs: &[Vec<u32>], outputs: Outputs) -> Result<Vec<Tensor>> {
        let f = &self.frame;
        let device = &f.device;
        for s in seqs {
            f.check_ids(&Tensor::new(s.as_slice(), device)?.unsqueeze(0)?, 0)?;
        }
        let mut ids: Vec<usize> = seqs.iter().flatten().map(|&i| i as usize).collect();
        ids.sort_unstable();
        ids.dedup();
        let view = RowSubset {
            inner: self.src.weights(),
            name: EMBED,
            full: [f.cfg.vocab_size, f.cfg.hidden_size],
            ids: &ids,
        };
        let w = self.weights_of(&view);
        let (n, h) = (ids.len(), f.cfg.hidden_size);
        let table = match outputs {
            Outputs::HiddenStates => w.rows_table(EMBED, n, h)?,
            Outputs::Logits => w.matrix(EMBED, n, h, true)?,
        };
        let states = seqs
            .iter()
            .map(|s| {
                // each token's row of the cut table: found, as every id was put in it
                let local: Vec<u32> = s
                    .iter()
                    .map(|&t| ids.binary_search(&(t as usize)).unwrap_or(0) as u32)
                    .collect();
                let rows = table.rows_of(&Tensor::new(local.as_slice(), device)?)?;
                f.embedded(rows, 1, s.len())
            })
            .collect::<Result<Vec<_>>>()?;
        self.src.weights().release(&[EMBED.to_string()]);
        Ok(states)
    }

    /// The output head (final norm and projection), loaded by the code the in-memory
    /// decoder loads it with; a tied head reads the whole embedding matrix. Hand its
    /// pages back with [`LayerStream::release_head`] once it is dropped.
    pub fn head(&self) -> Result<OutputHead> {
        OutputHead::load(&self.weights_of(self.src.weights()), &self.frame.cfg, None)
    }

    /// The output head read `rows` vocabulary rows at a time ([`HeadSlices`]): holds the
    /// final norm, and each slice only while it is used. Hand its pages back with
    /// [`HeadSlices::release`].
    pub fn head_slices(&self, rows: usize) -> Result<HeadSlices<'_>> {
        let f = &self.frame;
        HeadSlices::open(self.src.weights(), &f.cfg, f.precision, &f.device, rows)
    }

    /// The weight-free part of the model (config, plan, RoPE, dtype) that runs a layer.
    pub(crate) fn frame(&self) -> &Frame {
        &self.frame
    }

    /// Reads layer `i` as the in-memory decoder loads it.
    pub(crate) fn load_layer(&self, i: usize) -> Result<Layer> {
        Layer::load(
            &self.weights_of(&ReadOnce(self.src.weights())),
            &self.frame.cfg,
            &self.frame.plan,
            i,
        )
    }

    /// Asks for layer `i`'s stored bytes to be read ahead (while an earlier layer computes).
    pub(crate) fn prefetch_layer(&self, i: usize) {
        if let Some(names) = self.layer_tensors.get(i) {
            self.src.weights().prefetch(names);
        }
    }

    /// Hands the pages of layer `i`'s stored tensors back to the kernel.
    pub(crate) fn release_layer(&self, i: usize) {
        self.src.weights().release(&self.layer_tensors[i]);
    }

    /// Hands the pages of the head's stored tensors back to the kernel.
    pub fn release_head(&self) {
        let names = ["model.norm.weight", "lm_head.weight", EMBED];
        self.src.weights().release(&names.map(String::from));
    }

    /// Runs every state of `states` (`[1, t, hidden]`, from [`LayerStream::embed`]) through
    /// every layer, layer by layer, each state observed by its own probe; `lanes` states
    /// run side by side (as [`crate::score::score`] runs its blocks). Progress counts layers.
    pub fn run<P: Probe>(
        &self,
        states: &mut [Tensor],
        probes: &mut [P],
        lanes: usize,
        progress: &mut dyn Progress,
    ) -> Result<()> {
        self.run_from(states, probes, lanes, 0, progress, &mut |_, _, _, _| Ok(()))
    }

    /// As [`LayerStream::run`], from layer `from` (`states` are that layer's inputs, as an
    /// earlier run left them), calling `after(i, states, probes, progress)` once layer `i`
    /// has run on every state (a checkpoint; an error there stops the run).
    pub fn run_from<P: Probe>(
        &self,
        states: &mut [Tensor],
        probes: &mut [P],
        lanes: usize,
        from: usize,
        progress: &mut dyn Progress,
        after: &mut LayerHook<'_, P>,
    ) -> Result<()> {
        let f = &self.frame;
        let mut masks: BTreeMap<usize, Masks> = BTreeMap::new();
        for x in states.iter() {
            let t = x.dim(1)?;
            if let Entry::Vacant(e) = masks.entry(t) {
                e.insert(f.masks(t, 0, |i| !f.plan.drops_attn(i))?);
            }
        }
        let lanes = lanes.max(1);
        progress.start_at("layer by layer", f.cfg.num_layers as u64, from as u64);
        for i in from..f.cfg.num_layers {
            let layer = self.load_layer(i)?;
            self.prefetch_layer(i + 1);
            for (xs, ps) in states.chunks_mut(lanes).zip(probes.chunks_mut(lanes)) {
                xs.par_iter_mut()
                    .zip(ps.par_iter_mut())
                    .try_for_each(|(x, p)| -> Result<()> {
                        let m = &masks[&x.dim(1)?];
                        *x = f.layer_forward(i, &layer, x.clone(), m, 0, None, p)?;
                        Ok(())
                    })?;
            }
            drop(layer);
            self.src.weights().release(&self.layer_tensors[i]);
            after(i, states, probes, &mut *progress)?;
            progress.advance(1);
        }
        progress.finish();
        Ok(())
    }
}

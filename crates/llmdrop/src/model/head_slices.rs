//! The output head read a slice of the vocabulary at a time: the final norm, and rows
//! `a..b` of the output projection (`lm_head.weight`, or the embedding matrix when tied)
//! read alone from the file and loaded by the code the in-memory head is loaded with
//! ([`RowSubset`]: the same conversion and packing, so each row is the whole matrix's
//! row, bit for bit). Every output of llmdrop's matrix products is one chain over the
//! hidden dimension whatever the matrix's other rows, so a slice's logits are the
//! in-memory head's logits of those tokens, bit for bit. A head held as a dense candle
//! tensor (f16; f32 or bf16 on a CPU without llmdrop's AVX-512 kernels) is never sliced:
//! candle's matmul may sum in another order for another number of rows.

use std::ops::Range;

use candle_core::{DType, Device, Tensor};

use super::head::{load_norm, projection_name};
use super::linear::Linear;
use super::norm::RmsNorm;
use super::weights::Weights;
use crate::config::Config;
use crate::error::Result;
use crate::io::row_subset::RowSubset;
use crate::io::WeightSource;
use crate::quant::Precision;

/// The final norm (held) and the output projection (read in slices of `rows` rows).
pub struct HeadSlices<'a> {
    src: &'a dyn WeightSource,
    cfg: &'a Config,
    precision: Precision,
    device: &'a Device,
    norm: RmsNorm,
    /// The stored matrix of the projection.
    name: &'static str,
    rows: usize,
}

/// Rows `start..start + len` of the output projection, as held.
pub struct HeadSlice {
    pub start: usize,
    proj: Linear,
}

impl<'a> HeadSlices<'a> {
    /// The head of `cfg` in `src`, read `rows` vocabulary rows at a time (at least 1, at
    /// most the vocabulary; the whole vocabulary unless [`can_slice`]). Loads the final
    /// norm; reads nothing of the projection.
    pub(crate) fn open(
        src: &'a dyn WeightSource,
        cfg: &'a Config,
        precision: Precision,
        device: &'a Device,
        rows: usize,
    ) -> Result<Self> {
        let w = Weights::new(src, cfg, precision, device);
        let name = projection_name(&w, cfg)?;
        let rows = match w.own_kernel(name, cfg.hidden_size, true) {
            true => rows,
            false => cfg.vocab_size,
        };
        Ok(Self {
            name,
            norm: load_norm(&w, cfg)?,
            src,
            cfg,
            precision,
            device,
            rows: rows.clamp(1, cfg.vocab_size.max(1)),
        })
    }

    /// Vocabulary rows per slice.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The slices' row ranges, in vocabulary order.
    pub fn ranges(&self) -> Vec<Range<usize>> {
        let v = self.cfg.vocab_size;
        (0..v)
            .step_by(self.rows)
            .map(|a| a..(a + self.rows).min(v))
            .collect()
    }

    /// The final norm of the residual stream `x` (`[b, t, hidden]`).
    pub fn norm(&self, x: &Tensor) -> Result<Tensor> {
        self.norm.forward(x)
    }

    /// Reads and loads rows `r` of the projection (the whole matrix by its own read when
    /// `r` covers it).
    pub fn load(&self, r: Range<usize>) -> Result<HeadSlice> {
        let (v, h) = (self.cfg.vocab_size, self.cfg.hidden_size);
        let weights = |src| Weights::new(src, self.cfg, self.precision, self.device);
        let weight = if r == (0..v) {
            weights(self.src).matrix(self.name, v, h, true)?
        } else {
            let ids: Vec<usize> = r.clone().collect();
            let view = RowSubset {
                inner: self.src,
                name: self.name,
                full: [v, h],
                ids: &ids,
            };
            weights(&view).matrix(self.name, ids.len(), h, true)?
        };
        Ok(HeadSlice {
            start: r.start,
            proj: Linear { weight, bias: None },
        })
    }

    /// Hands the pages of the head's stored tensors back to the kernel.
    pub fn release(&self) {
        self.src
            .release(&[self.name.to_string(), "model.norm.weight".to_string()]);
    }
}

/// Whether the head of `cfg` in `src` at `precision` is read in slices on the CPU (see
/// the module doc); a missing projection says no.
pub fn can_slice(src: &dyn WeightSource, cfg: &Config, precision: Precision) -> bool {
    let w = Weights::new(src, cfg, precision, &Device::Cpu);
    projection_name(&w, cfg).is_ok_and(|n| w.own_kernel(n, cfg.hidden_size, true))
}

impl HeadSlice {
    /// f32 logits (`[.., rows]`) of the slice's tokens for normed states (`[.., hidden]`),
    /// as the in-memory head computes them.
    pub fn logits(&self, normed: &Tensor) -> Result<Tensor> {
        Ok(self.proj.forward(normed)?.to_dtype(DType::F32)?)
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.proj.bytes()
    }
}

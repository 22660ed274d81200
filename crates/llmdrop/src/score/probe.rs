//! The scoring probe: block, attention and MLP similarities and the consecutive matrix,
//! streamed; a probe holds one calibration block's hidden states at most.

use std::sync::Arc;

use candle_core::Tensor;
use llmdrop_kernels::gram::gram;

use super::cosine::{CosSum, Rows};
use super::table::ScoreTable;
use crate::dest::SpillDir;
use crate::error::Result;
use crate::probe::{Probe, Site};

#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct ScoreOptions {
    /// Attention / MLP similarity with the residual: cos(X, X + Attn(LN1 X)) (the paper,
    /// LLM-Drop's `layer_drop_norm=True`). Without: cos(LN1 X, Attn(LN1 X)).
    pub residual: bool,
    /// Also compute the consecutive-layer matrix `S[i][n]`.
    pub consecutive: bool,
}

impl Default for ScoreOptions {
    fn default() -> Self {
        Self {
            residual: true,
            consecutive: true,
        }
    }
}

/// The running sums behind a [`ScoreTable`].
#[derive(Debug, Clone)]
struct Sums {
    block: Vec<CosSum>,
    attn: Vec<CosSum>,
    mlp: Vec<CosSum>,
    /// Sums of cos(h_i, h_j) over tokens, `(L+1) x (L+1)`.
    pairs: Vec<f64>,
    pair_tokens: u64,
    tokens: u64,
}

impl Sums {
    fn new(layers: usize) -> Self {
        Self {
            block: vec![CosSum::default(); layers],
            attn: vec![CosSum::default(); layers],
            mlp: vec![CosSum::default(); layers],
            pairs: vec![0.0; (layers + 1) * (layers + 1)],
            pair_tokens: 0,
            tokens: 0,
        }
    }

    fn add(&mut self, o: &Sums) {
        let cos =
            |a: &mut [CosSum], b: &[CosSum]| a.iter_mut().zip(b).for_each(|(a, b)| a.merge(b));
        cos(&mut self.block, &o.block);
        cos(&mut self.attn, &o.attn);
        cos(&mut self.mlp, &o.mlp);
        self.pairs
            .iter_mut()
            .zip(&o.pairs)
            .for_each(|(a, b)| *a += b);
        self.pair_tokens += o.pair_tokens;
        self.tokens += o.tokens;
    }
}

/// A probe's sums and unit-state counters, as a checkpoint stores them: per layer
/// (sum, count) of block, attention and MLP cosines, the pair sums, and `[pair_tokens,
/// tokens, unit_tokens, hidden, filled]`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ProbeState {
    pub block: Vec<(f64, u64)>,
    pub attn: Vec<(f64, u64)>,
    pub mlp: Vec<(f64, u64)>,
    pub pairs: Vec<f64>,
    pub counts: [u64; 5],
}

/// Streams similarities of every layer; see [`ScoreTable`] for what they mean.
///
/// Sums are exact to merge in a fixed order: a block scored into an empty probe and
/// [absorbed](ScoreProbe::absorb) gives the same bits as that block scored in place, so
/// blocks can be scored side by side and still give one thread's result.
pub struct ScoreProbe {
    opts: ScoreOptions,
    layers: usize,
    sums: Sums,
    x: Option<Rows>,
    y: Option<Rows>,
    branch_in: Option<Rows>,
    /// Unit-length h_0..h_L of the current block, `[L+1, tokens, hidden]`, written in place
    /// (reused across blocks of the same length).
    units: Vec<f32>,
    /// Tokens of the current block.
    unit_tokens: usize,
    /// Width of the current block's hidden states.
    x_hidden: usize,
    /// How many of h_0..h_L `units` holds (or the spill file has) for the current block.
    filled: usize,
    /// Where h_0..h_L go instead of `units`, and the block's number there.
    spill: Option<(Arc<SpillDir>, usize)>,
}

impl ScoreProbe {
    pub fn new(layers: usize, opts: &ScoreOptions) -> Self {
        Self {
            opts: *opts,
            layers,
            sums: Sums::new(layers),
            x: None,
            y: None,
            branch_in: None,
            units: Vec::new(),
            unit_tokens: 0,
            x_hidden: 0,
            filled: 0,
            spill: None,
        }
    }

    /// A probe that appends each unit hidden state to block `block`'s file in `dir` as
    /// soon as it is computed, instead of holding them: the consecutive-layer pairs are
    /// then added by [`ScoreProbe::add_spilled_pairs`].
    pub(crate) fn spilling(mut self, dir: Arc<SpillDir>, block: usize) -> Self {
        self.spill = Some((dir, block));
        self
    }

    /// Lets go of the hidden states the probe still holds (the last layer's output), so
    /// that a spilled block's read-back does not count on top of them.
    pub(crate) fn drop_rows(&mut self) {
        (self.x, self.y, self.branch_in) = (None, None, None);
    }

    /// Reads the unit hidden states this (spilling) probe wrote back into `units` and adds
    /// their pairwise cosines, as [`ScoreProbe::flush_pairs`] adds them from memory.
    pub(crate) fn add_spilled_pairs(&mut self, units: &mut Vec<f32>) -> Result<()> {
        let n = self.layers + 1;
        let Some((dir, block)) = &self.spill else {
            return Ok(());
        };
        if std::mem::take(&mut self.filled) != n {
            return Ok(());
        }
        let hidden = self.x_hidden;
        dir.read(*block, n * self.unit_tokens * hidden, units)?;
        self.add_pairs(units);
        Ok(())
    }

    /// What a checkpoint keeps of this probe between two layers: its sums and how far its
    /// unit hidden states have got. Refused for a probe that holds unit hidden states in
    /// memory (only a spilling probe's are on disk).
    pub(crate) fn state(&self) -> Result<ProbeState> {
        if self.spill.is_none() && self.filled > 0 {
            return Err(crate::Error::unsupported(
                "checkpoint",
                "a probe holding its unit hidden states in memory",
            ));
        }
        let s = &self.sums;
        let cos = |v: &[CosSum]| v.iter().map(|c| (c.sum, c.count)).collect::<Vec<_>>();
        Ok(ProbeState {
            block: cos(&s.block),
            attn: cos(&s.attn),
            mlp: cos(&s.mlp),
            pairs: s.pairs.clone(),
            counts: [
                s.pair_tokens,
                s.tokens,
                self.unit_tokens as u64,
                self.x_hidden as u64,
                self.filled as u64,
            ],
        })
    }

    /// Puts back what [`ScoreProbe::state`] gave, into a new probe of the same shape; the
    /// next layer's input is then read from the hidden state passed in.
    pub(crate) fn restore(&mut self, st: &ProbeState) -> Result<()> {
        let n = self.layers;
        let fits = [st.block.len(), st.attn.len(), st.mlp.len()] == [n; 3]
            && st.pairs.len() == (n + 1) * (n + 1)
            && st.counts[4] <= n as u64 + 1;
        if !fits {
            return Err(crate::Error::unsupported(
                "checkpoint",
                format!("probe sums of another shape than {n} layers"),
            ));
        }
        let cos = |v: &[(f64, u64)]| {
            v.iter()
                .map(|&(sum, count)| CosSum { sum, count })
                .collect()
        };
        self.sums = Sums {
            block: cos(&st.block),
            attn: cos(&st.attn),
            mlp: cos(&st.mlp),
            pairs: st.pairs.clone(),
            pair_tokens: st.counts[0],
            tokens: st.counts[1],
        };
        self.unit_tokens = st.counts[2] as usize;
        self.x_hidden = st.counts[3] as usize;
        self.filled = st.counts[4] as usize;
        (self.x, self.y, self.branch_in) = (None, None, None);
        Ok(())
    }

    /// Adds what `other` has summed to this probe's sums and empties `other`'s (its
    /// buffers stay for the next block).
    pub fn absorb(&mut self, other: &mut ScoreProbe) {
        self.sums.add(&other.sums);
        other.sums = Sums::new(other.layers);
    }

    /// All pairwise cosines of this block's hidden states, summed over tokens: row i of
    /// `[L+1, tokens * hidden]` holds every token's unit h_i, so
    /// `G[i][j] = Σ_t cos(h_i(t), h_j(t))`.
    fn flush_pairs(&mut self) {
        if self.spill.is_some() {
            return;
        }
        let n = self.layers + 1;
        let filled = std::mem::take(&mut self.filled);
        if filled != n || self.units.is_empty() {
            return;
        }
        let units = std::mem::take(&mut self.units);
        self.add_pairs(&units);
        self.units = units;
    }

    /// Adds the Gram matrix of one block's `[L+1, tokens * hidden]` unit states.
    fn add_pairs(&mut self, units: &[f32]) {
        let n = self.layers + 1;
        let len = units.len() / n;
        for (acc, v) in self.sums.pairs.iter_mut().zip(gram(units, n, len)) {
            *acc += v;
        }
        self.sums.pair_tokens += self.unit_tokens as u64;
    }

    /// Writes the unit-length rows of `x` as hidden state number `self.filled`.
    fn push_unit(&mut self, x: &Rows) -> Result<()> {
        let (tokens, hidden) = (x.tokens(), x.hidden);
        let n = self.layers + 1;
        if self.filled == 0 {
            if self.spill.is_none() {
                self.units.resize(n * tokens * hidden, 0.0);
            }
            self.unit_tokens = tokens;
            self.x_hidden = hidden;
        } else if tokens != self.unit_tokens {
            return Err(crate::Error::unsupported(
                "probe",
                format!("{tokens} tokens after {} in one pass", self.unit_tokens),
            ));
        }
        let len = tokens * hidden;
        match &self.spill {
            // one layer's units at a time, freed once on disk
            Some((dir, block)) => {
                let mut one = vec![0.0f32; len];
                x.write_units(&mut one)?;
                dir.append(*block, &one)?;
            }
            None => x.write_units(&mut self.units[self.filled * len..][..len])?,
        }
        self.filled += 1;
        Ok(())
    }

    pub fn finish(self) -> ScoreTable {
        let n = self.layers + 1;
        let s = &self.sums;
        let consecutive = (self.opts.consecutive && s.pair_tokens > 0).then(|| {
            (0..self.layers)
                .map(|i| {
                    (1..=self.layers - i)
                        .map(|gap| s.pairs[i * n + i + gap] / s.pair_tokens as f64)
                        .collect()
                })
                .collect()
        });
        ScoreTable {
            num_layers: self.layers,
            tokens: s.tokens,
            residual: self.opts.residual,
            block: s.block.iter().map(CosSum::mean).collect(),
            attn: s.attn.iter().map(CosSum::mean).collect(),
            mlp: s.mlp.iter().map(CosSum::mean).collect(),
            consecutive,
        }
    }
}

impl Probe for ScoreProbe {
    fn observe(&mut self, layer: usize, site: Site, h: &Tensor) -> Result<()> {
        match site {
            Site::Input => {
                // layer i's input is layer i-1's output, already on the host
                let x = match self.y.take().filter(|_| layer > 0) {
                    Some(z) => z,
                    None => Rows::new(h)?,
                };
                if layer == 0 {
                    self.sums.tokens += x.tokens() as u64;
                    self.filled = 0;
                }
                if self.opts.consecutive {
                    self.push_unit(&x)?;
                }
                self.x = Some(x);
            }
            Site::AfterAttn => {
                let y = Rows::new(h)?;
                if self.opts.residual {
                    let x = self.x.as_ref().expect("Input precedes AfterAttn");
                    self.sums.attn[layer].add(&x.cosines(&y)?);
                }
                self.y = Some(y);
            }
            Site::AfterMlp => {
                let z = Rows::new(h)?;
                let x = self.x.take().expect("Input precedes AfterMlp");
                let y = self.y.take().expect("AfterAttn precedes AfterMlp");
                if self.opts.residual {
                    self.sums.mlp[layer].add(&y.cosines(&z)?);
                }
                self.sums.block[layer].add(&x.cosines(&z)?);
                if self.opts.consecutive && layer + 1 == self.layers {
                    self.push_unit(&z)?;
                    self.flush_pairs();
                }
                self.y = Some(z); // the next layer's input
            }
            Site::AttnIn | Site::MlpIn => self.branch_in = Some(Rows::new(h)?),
            Site::AttnOut | Site::MlpOut => {
                let input = self
                    .branch_in
                    .take()
                    .expect("branch input precedes its output");
                let c = input.cosines(&Rows::new(h)?)?;
                if site == Site::AttnOut {
                    self.sums.attn[layer].add(&c);
                } else {
                    self.sums.mlp[layer].add(&c);
                }
            }
        }
        Ok(())
    }

    fn wants_branches(&self) -> bool {
        !self.opts.residual
    }
}

//! The scoring probe: block, attention and MLP similarities and the consecutive matrix,
//! streamed; memory holds one calibration block's hidden states at most.

use candle_core::Tensor;

use super::cosine::{CosSum, Rows};
use super::table::ScoreTable;
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

/// Streams similarities of every layer; see [`ScoreTable`] for what they mean.
pub struct ScoreProbe {
    opts: ScoreOptions,
    layers: usize,
    block: Vec<CosSum>,
    attn: Vec<CosSum>,
    mlp: Vec<CosSum>,
    /// Sums of cos(h_i, h_j) over tokens, `(L+1) x (L+1)`.
    pairs: Vec<f64>,
    pair_tokens: u64,
    tokens: u64,
    x: Option<Rows>,
    y: Option<Rows>,
    branch_in: Option<Rows>,
    /// Unit-length h_0..h_L of the current block, `[L+1, tokens, hidden]`, written in place
    /// (reused across blocks of the same length).
    units: Option<Tensor>,
    /// How many of h_0..h_L `units` holds for the current block.
    filled: usize,
}

impl ScoreProbe {
    pub fn new(layers: usize, opts: &ScoreOptions) -> Self {
        Self {
            opts: *opts,
            layers,
            block: vec![CosSum::default(); layers],
            attn: vec![CosSum::default(); layers],
            mlp: vec![CosSum::default(); layers],
            pairs: vec![0.0; (layers + 1) * (layers + 1)],
            pair_tokens: 0,
            tokens: 0,
            x: None,
            y: None,
            branch_in: None,
            units: None,
            filled: 0,
        }
    }

    /// All pairwise cosines of this block's hidden states, summed over tokens, as one
    /// matmul: row i of `[L+1, tokens * hidden]` holds every token's unit h_i, so
    /// `V Vᵀ [i][j] = Σ_t cos(h_i(t), h_j(t))` (no transposed copy of the buffer).
    fn flush_pairs(&mut self) -> Result<()> {
        let n = self.layers + 1;
        let filled = std::mem::take(&mut self.filled);
        let Some(h) = self.units.as_ref().filter(|_| filled == n) else {
            return Ok(());
        };
        let tokens = h.dim(1)?;
        let v = h.reshape((n, ()))?;
        let gram = v.matmul(&v.t()?)?; // [L+1, L+1]
        let g = gram.flatten_all()?.to_vec1::<f32>()?;
        for (acc, v) in self.pairs.iter_mut().zip(g) {
            *acc += v as f64;
        }
        self.pair_tokens += tokens as u64;
        Ok(())
    }

    /// Writes the unit-length rows of `x` as hidden state number `self.filled`.
    fn push_unit(&mut self, x: &Rows, device: &candle_core::Device) -> Result<()> {
        let (tokens, hidden) = (x.tokens(), x.hidden);
        let n = self.layers + 1;
        let fits = self
            .units
            .as_ref()
            .is_some_and(|u| u.dims() == [n, tokens, hidden]);
        if !fits {
            self.units = Some(Tensor::zeros(
                (n, tokens, hidden),
                candle_core::DType::F32,
                device,
            )?);
        }
        let u = x.unit_tensor(device)?.unsqueeze(0)?;
        self.units
            .as_ref()
            .expect("allocated")
            .slice_set(&u, 0, self.filled)?;
        self.filled += 1;
        Ok(())
    }

    pub fn finish(self) -> ScoreTable {
        let n = self.layers + 1;
        let consecutive = (self.opts.consecutive && self.pair_tokens > 0).then(|| {
            (0..self.layers)
                .map(|i| {
                    (1..=self.layers - i)
                        .map(|gap| self.pairs[i * n + i + gap] / self.pair_tokens as f64)
                        .collect()
                })
                .collect()
        });
        ScoreTable {
            num_layers: self.layers,
            tokens: self.tokens,
            residual: self.opts.residual,
            block: self.block.iter().map(CosSum::mean).collect(),
            attn: self.attn.iter().map(CosSum::mean).collect(),
            mlp: self.mlp.iter().map(CosSum::mean).collect(),
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
                    self.tokens += x.tokens() as u64;
                    self.filled = 0;
                }
                if self.opts.consecutive {
                    self.push_unit(&x, h.device())?;
                }
                self.x = Some(x);
            }
            Site::AfterAttn => {
                let y = Rows::new(h)?;
                if self.opts.residual {
                    let x = self.x.as_ref().expect("Input precedes AfterAttn");
                    self.attn[layer].add(&x.cosines(&y));
                }
                self.y = Some(y);
            }
            Site::AfterMlp => {
                let z = Rows::new(h)?;
                let x = self.x.take().expect("Input precedes AfterMlp");
                let y = self.y.take().expect("AfterAttn precedes AfterMlp");
                if self.opts.residual {
                    self.mlp[layer].add(&y.cosines(&z));
                }
                self.block[layer].add(&x.cosines(&z));
                if self.opts.consecutive && layer + 1 == self.layers {
                    self.push_unit(&z, h.device())?;
                    self.flush_pairs()?;
                }
                self.y = Some(z); // the next layer's input
            }
            Site::AttnIn | Site::MlpIn => self.branch_in = Some(Rows::new(h)?),
            Site::AttnOut | Site::MlpOut => {
                let input = self
                    .branch_in
                    .take()
                    .expect("branch input precedes its output");
                let c = input.cosines(&Rows::new(h)?);
                if site == Site::AttnOut {
                    self.attn[layer].add(&c);
                } else {
                    self.mlp[layer].add(&c);
                }
            }
        }
        Ok(())
    }

    fn wants_branches(&self) -> bool {
        !self.opts.residual
    }
}

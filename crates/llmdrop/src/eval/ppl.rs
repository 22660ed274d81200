//! Perplexity over non-overlapping windows (DESIGN §5).

use candle_core::Tensor;
use serde::Serialize;

use super::log_softmax::log_softmax_at;
use crate::error::{Error, Result};
use crate::json_f64;
use crate::model::{Decoder, Logits};
use crate::probe::NoProbe;
use crate::progress::Progress;

/// How perplexity is computed.
#[derive(Debug, Clone)]
pub struct PplOptions {
    /// Window length L in tokens.
    pub seq_len: usize,
    /// Use at most this many windows.
    pub max_windows: Option<usize>,
    /// Score only the second half of each window, as llama.cpp's `llama-perplexity` does;
    /// otherwise every token of a window but its first.
    pub second_half: bool,
    /// The BOS token for a model whose tokenizer adds one (Gemma): each window is then BOS
    /// + L - 1 text tokens, and the first text token is scored too. None: L text tokens.
    pub bos: Option<u32>,
}

/// The result, with what is needed to combine or check it. A model that overflows (or
/// whose outputs are otherwise not finite) gives a perplexity that is not finite: the
/// result is still returned, so it can be reported, and [`PplResult::is_finite`] /
/// [`PplResult::non_finite`] tell a caller to treat it as a failed check.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct PplResult {
    #[serde(with = "json_f64")]
    pub ppl: f64,
    /// Total negative log-likelihood (nats) over the scored tokens.
    #[serde(with = "json_f64")]
    pub nll: f64,
    pub tokens_scored: usize,
    pub windows: usize,
    pub seq_len: usize,
    /// Tokens in the text (a trailing partial window is not scored).
    pub tokens_total: usize,
}

impl PplResult {
    /// Whether the perplexity (and the NLL it comes from) is a finite number.
    pub fn is_finite(&self) -> bool {
        self.ppl.is_finite() && self.nll.is_finite()
    }

    /// Why the result is not a usable measurement, or None when [`PplResult::is_finite`].
    pub fn non_finite(&self) -> Option<String> {
        (!self.is_finite()).then(|| {
            format!(
                "perplexity is {} (total NLL {} over {} tokens): the model's log-probabilities are not finite",
                self.ppl, self.nll, self.tokens_scored
            )
        })
    }
}

/// ppl = exp(total NLL / total scored tokens) over the windows `ids` cuts into (each
/// behind `opts.bos` when set).
pub fn perplexity(
    dec: &Decoder,
    ids: &[u32],
    opts: &PplOptions,
    progress: &mut dyn Progress,
) -> Result<PplResult> {
    let w = Windows::cut(ids, opts)?;
    progress.start("perplexity", w.wins.len() as u64);
    let mut sum = NllSum::default();
    for win in &w.wins {
        let input = Tensor::new(win.as_slice(), dec.device())?.unsqueeze(0)?;
        let logits = dec
            .forward(&input, None, &mut NoProbe, Logits::All)?
            .expect("logits requested");
        sum.add(&logits, win, w.first)?;
        progress.advance(1);
    }
    progress.finish();
    Ok(sum.finish(&w))
}

/// The windows perplexity scores, each of `seq_len` ids (BOS-led when `opts.bos`).
pub(crate) struct Windows {
    pub wins: Vec<Vec<u32>>,
    /// The first position whose prediction is scored.
    pub first: usize,
    pub seq_len: usize,
    pub tokens_total: usize,
}

impl Windows {
    /// The windows `opts` cuts `ids` into (at most `opts.max_windows`).
    pub fn cut(ids: &[u32], opts: &PplOptions) -> Result<Self> {
        let l = opts.seq_len;
        if l < 2 {
            return Err(Error::argument(
                "seq_len",
                format!("is {l}: it must be at least 2"),
            ));
        }
        // text tokens per window
        let n = l - opts.bos.is_some() as usize;
        let mut windows = ids.len() / n;
        if let Some(m) = opts.max_windows {
            windows = windows.min(m);
        }
        if windows == 0 {
            return Err(Error::NotEnough {
                what: "the text".into(),
                reason: format!("has {} tokens, fewer than one window of {n}", ids.len()),
            });
        }
        let wins = (0..windows)
            .map(|w| {
                let text = &ids[w * n..(w + 1) * n];
                opts.bos
                    .iter()
                    .copied()
                    .chain(text.iter().copied())
                    .collect()
            })
            .collect();
        Ok(Self {
            wins,
            first: if opts.second_half { l / 2 } else { 0 },
            seq_len: l,
            tokens_total: ids.len(),
        })
    }
}

/// The NLL summed over windows, in the order they are added.
#[derive(Default)]
pub(crate) struct NllSum {
    nll: f64,
    scored: usize,
}

impl NllSum {
    /// Adds the NLL of window `win` from its logits (`[1, seq_len, vocab]`): position `p`
    /// predicts token `p + 1`, from position `first` on.
    pub fn add(&mut self, logits: &Tensor, win: &[u32], first: usize) -> Result<()> {
        let l = win.len();
        let logits = logits.squeeze(0)?;
        let rows = logits.narrow(0, first, l - 1 - first)?.to_vec2::<f32>()?;
        for (r, row) in rows.iter().enumerate() {
            self.add_log_prob(log_softmax_at(row, win[first + r + 1] as usize));
        }
        Ok(())
    }

    /// Adds one scored token's log-probability (the windows' tokens in order).
    pub fn add_log_prob(&mut self, log_prob: f64) {
        self.nll -= log_prob;
        self.scored += 1;
    }

    pub fn finish(self, w: &Windows) -> PplResult {
        PplResult {
            ppl: (self.nll / self.scored as f64).exp(),
            nll: self.nll,
            tokens_scored: self.scored,
            windows: w.wins.len(),
            seq_len: w.seq_len,
            tokens_total: w.tokens_total,
        }
    }
}

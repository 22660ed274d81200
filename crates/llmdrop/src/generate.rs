//! Text generation with the KV cache: greedy, or seeded temperature sampling.

use std::time::Instant;

use candle_core::Tensor;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::model::{Decoder, Logits};
use crate::probe::NoProbe;

#[derive(Debug, Clone)]
pub struct GenerateOptions {
    pub max_tokens: usize,
    /// 0 = greedy.
    pub temperature: f64,
    pub seed: u64,
    /// Stop at the model's end-of-sequence token(s).
    pub stop: Vec<u32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Generation {
    pub prompt_tokens: usize,
    pub tokens: Vec<u32>,
    pub prefill_secs: f64,
    pub decode_secs: f64,
}

impl Generation {
    /// Tokens generated after the first, per second of decoding.
    pub fn decode_tokens_per_sec(&self) -> f64 {
        let n = self.tokens.len().saturating_sub(1);
        if n == 0 || self.decode_secs == 0.0 {
            0.0
        } else {
            n as f64 / self.decode_secs
        }
    }
}

/// Generates up to `max_tokens` after `prompt`, calling `on_token` for each new token.
pub fn generate(
    dec: &Decoder,
    prompt: &[u32],
    opts: &GenerateOptions,
    on_token: &mut dyn FnMut(u32) -> Result<()>,
) -> Result<Generation> {
    if prompt.is_empty() {
        return Err(Error::argument("prompt", "is empty"));
    }
    let max = dec.config().max_position_embeddings;
    if prompt.len() >= max {
        return Err(Error::TooLong {
            what: format!("the {}-token prompt and one generated token", prompt.len()),
            max,
        });
    }
    // generation stops where the model's positions end
    let max_tokens = opts.max_tokens.min(max - prompt.len());
    let mut rng = rand::rngs::StdRng::seed_from_u64(opts.seed);
    let mut cache = dec.new_cache();
    let mut tokens = Vec::new();
    let t0 = Instant::now();
    let mut input = Tensor::new(prompt, dec.device())?.unsqueeze(0)?;
    let mut prefill_secs = 0.0;
    for step in 0..max_tokens {
        let logits = dec
            .forward(&input, Some(&mut cache), &mut NoProbe, Logits::Last)?
            .expect("logits requested")
            .flatten_all()?
            .to_vec1::<f32>()?;
        let next = if opts.temperature <= 0.0 {
            argmax(&logits)
        } else {
            sample(&logits, opts.temperature, &mut rng)
        };
        if step == 0 {
            prefill_secs = t0.elapsed().as_secs_f64();
        }
        tokens.push(next);
        on_token(next)?;
        if opts.stop.contains(&next) {
            break;
        }
        input = Tensor::new(&[next], dec.device())?.unsqueeze(0)?;
    }
    Ok(Generation {
        prompt_tokens: prompt.len(),
        tokens,
        prefill_secs,
        decode_secs: t0.elapsed().as_secs_f64() - prefill_secs,
    })
}

/// Index of the largest logit (the first one on ties, as torch.argmax).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in logits.iter().enumerate() {
        if x > logits[best] {
            best = i;
        }
    }
    best as u32
}

fn sample(logits: &[f32], temperature: f64, rng: &mut impl Rng) -> u32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let w: Vec<f64> = logits
        .iter()
        .map(|&x| ((x as f64 - max) / temperature).exp())
        .collect();
    let total: f64 = w.iter().sum();
    let mut r = rng.random::<f64>() * total;
    for (i, &p) in w.iter().enumerate() {
        if r < p {
            return i as u32;
        }
        r -= p;
    }
    (w.len() - 1) as u32
}

//! Speed and memory of a decoder: prefill tokens/s, decode tokens/s, KV-cache bytes.

use std::time::Instant;

use candle_core::Tensor;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::generate::argmax;
use crate::model::{Decoder, Logits};
use crate::probe::NoProbe;

#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Prompt length processed in one forward pass.
    pub context: usize,
    /// Tokens decoded one at a time after the prompt.
    pub generate: usize,
    /// Timed repetitions (after one warm-up).
    pub reps: usize,
}

/// Median and spread of repeated measurements.
#[derive(Debug, Clone, Serialize)]
pub struct Stat {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Stat {
    fn of(mut v: Vec<f64>) -> Stat {
        v.sort_by(|a, b| a.total_cmp(b));
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Stat {
            median,
            min: v[0],
            max: v[n - 1],
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchResult {
    pub context: usize,
    pub generate: usize,
    pub reps: usize,
    /// Prompt tokens per second (one forward pass over `context` tokens).
    pub prefill_tokens_per_sec: Stat,
    /// 1 / median per-token latency, per repetition.
    pub decode_tokens_per_sec: Stat,
    /// KV cache after `context + generate` positions.
    pub kv_cache_bytes: usize,
    pub kv_slots: usize,
}

/// Measures `dec` on a fixed synthetic prompt (ids cycle through the vocabulary).
pub fn bench(dec: &Decoder, opts: &BenchOptions) -> Result<BenchResult> {
    if opts.context == 0 || opts.reps == 0 {
        return Err(Error::Input("context and reps must be positive".into()));
    }
    let vocab = dec.config().vocab_size as u32;
    let prompt: Vec<u32> = (0..opts.context as u32)
        .map(|i| (i * 7919 + 13) % vocab)
        .collect();
    let mut prefill = Vec::new();
    let mut decode = Vec::new();
    let mut kv = (0, 0);
    for rep in 0..=opts.reps {
        let mut cache = dec.new_cache();
        let input = Tensor::new(prompt.as_slice(), dec.device())?.unsqueeze(0)?;
        let t0 = Instant::now();
        let logits = dec
            .forward(&input, Some(&mut cache), &mut NoProbe, Logits::Last)?
            .expect("logits requested");
        let mut next = argmax(&logits.flatten_all()?.to_vec1::<f32>()?);
        let prefill_secs = t0.elapsed().as_secs_f64();
        let mut lat = Vec::with_capacity(opts.generate);
        for _ in 0..opts.generate {
            let t = Instant::now();
            let input = Tensor::new(&[next], dec.device())?.unsqueeze(0)?;
            let logits = dec
                .forward(&input, Some(&mut cache), &mut NoProbe, Logits::Last)?
                .expect("logits requested");
            next = argmax(&logits.flatten_all()?.to_vec1::<f32>()?);
            lat.push(t.elapsed().as_secs_f64());
        }
        if rep == 0 {
            continue; // warm-up
        }
        prefill.push(opts.context as f64 / prefill_secs);
        if !lat.is_empty() {
            decode.push(1.0 / Stat::of(lat).median);
        }
        kv = (cache.bytes(), cache.num_slots());
    }
    Ok(BenchResult {
        context: opts.context,
        generate: opts.generate,
        reps: opts.reps,
        prefill_tokens_per_sec: Stat::of(prefill),
        decode_tokens_per_sec: if decode.is_empty() {
            Stat {
                median: 0.0,
                min: 0.0,
                max: 0.0,
            }
        } else {
            Stat::of(decode)
        },
        kv_cache_bytes: kv.0,
        kv_slots: kv.1,
    })
}

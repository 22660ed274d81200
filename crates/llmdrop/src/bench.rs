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

/// The most repetitions a benchmark runs.
pub const MAX_REPS: usize = 10_000;

/// Measures `dec` on a fixed synthetic prompt (ids cycle through the vocabulary).
pub fn bench(dec: &Decoder, opts: &BenchOptions) -> Result<BenchResult> {
    if opts.context == 0 || opts.reps == 0 {
        let option = if opts.context == 0 { "context" } else { "reps" };
        return Err(Error::argument(option, "must be positive"));
    }
    if opts.reps > MAX_REPS {
        return Err(Error::argument(
            "reps",
            format!("is {}: at most {MAX_REPS}", opts.reps),
        ));
    }
    // checked before the prompt is built: the model bounds what can run
    let max = dec.config().max_position_embeddings;
    if opts.context.saturating_add(opts.generate) > max {
        return Err(Error::TooLong {
            what: format!(
                "context {} plus {} generated tokens",
                opts.context, opts.generate
            ),
            max,
        });
    }
    let vocab = (dec.config().vocab_size as u32).max(1);
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

/// Peak resident set size of this process in bytes (Linux `VmHWM`), if known.
pub fn peak_rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Floating-point operations of one forward pass over `tokens` positions of a sequence
/// (no lm_head): 2 per weight of every kept linear layer and token, plus the attention
/// products QK^T and AV over the causal triangle of each kept layer (query i reads keys
/// 0..=i: `tokens (tokens + 1) / 2` pairs). Only needed work counts: an implementation
/// that computes the masked half too does not get credit for it.
pub fn forward_flops(dec: &Decoder, tokens: usize) -> f64 {
    forward_flops_of(dec.config(), dec.plan(), tokens)
}

/// [`forward_flops`] of the model `c` with the modules `plan` drops removed.
pub fn forward_flops_of(c: &crate::Config, plan: &crate::DropPlan, tokens: usize) -> f64 {
    let (h, q, kv, i) = (
        c.hidden_size as f64,
        (c.num_heads * c.head_dim) as f64,
        (c.num_kv_heads * c.head_dim) as f64,
        c.intermediate_size as f64,
    );
    let t = tokens as f64;
    let mut per_seq = 0.0;
    for l in 0..c.num_layers {
        if !plan.drops_attn(l) {
            per_seq += 2.0 * t * (h * q * 2.0 + h * kv * 2.0);
            per_seq += 2.0 * 2.0 * (t * (t + 1.0) / 2.0) * q;
        }
        if !plan.drops_mlp(l) {
            per_seq += 2.0 * t * 3.0 * h * i;
        }
    }
    per_seq
}

/// What one decode step at position `pos` must do: multiply-adds (as FLOPs) and bytes
/// read (every kept weight matrix once, plus the keys and values of `pos` earlier
/// positions in every kept attention layer).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct StepCost {
    pub flops: f64,
    pub bytes: f64,
}

/// The cost model behind the "ideal" speedup of a pruned model: a decode step that is
/// bound by memory traffic speeds up by the ratio of bytes, one bound by arithmetic by the
/// ratio of FLOPs.
pub fn decode_step_cost(dec: &Decoder, pos: usize) -> StepCost {
    let c = dec.config();
    let (h, q, kv, i, v) = (
        c.hidden_size as f64,
        (c.num_heads * c.head_dim) as f64,
        (c.num_kv_heads * c.head_dim) as f64,
        c.intermediate_size as f64,
        c.vocab_size as f64,
    );
    let p = pos as f64;
    let elem = dec.dtype().size_in_bytes() as f64;
    let mut cost = StepCost {
        flops: 2.0 * h * v,
        bytes: dec.lm_head_bytes() as f64,
    };
    for l in dec.layers() {
        if let Some(a) = &l.attn {
            cost.flops += 2.0 * (h * q * 2.0 + h * kv * 2.0) + 2.0 * 2.0 * p * q;
            cost.bytes += a.module.weight_bytes() as f64 + 2.0 * p * kv * elem;
        }
        if let Some(m) = &l.mlp {
            cost.flops += 2.0 * 3.0 * h * i;
            cost.bytes += m.module.weight_bytes() as f64;
        }
    }
    cost
}

/// f32 matmul throughput of this machine with the current thread count: GFLOP/s of an
/// `n x n x n` product (median of `reps` after a warm-up).
pub fn matmul_gflops(n: usize, reps: usize) -> Result<f64> {
    let dev = candle_core::Device::Cpu;
    let a = Tensor::ones((n, n), candle_core::DType::F32, &dev)?;
    let b = Tensor::ones((n, n), candle_core::DType::F32, &dev)?;
    let _ = a.matmul(&b)?;
    let mut v = Vec::new();
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        let c = a.matmul(&b)?;
        let _ = c.dims();
        v.push(2.0 * (n as f64).powi(3) / t.elapsed().as_secs_f64() / 1e9);
    }
    Ok(Stat::of(v).median)
}

//! What the engine's step-by-step tests share: the tiny llama (real files) with room for
//! prompts of several prefill chunks, jobs and their events.

use std::path::Path;

use llmdrop::pipeline::ModelOptions;
use llmdrop::DropPlan;
use tokio::sync::mpsc;

use super::{Event, Job, Params, Sampling};
use crate::model::Model;

/// The tiny llama with 1024 positions (its own config says 256: one chunk).
pub(super) fn tiny_long_model(dir: &Path) -> Model {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tiny/llama");
    for f in [
        "model.safetensors",
        "tokenizer.json",
        "generation_config.json",
    ] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    let cfg = std::fs::read(src.join("config.json")).unwrap();
    let mut cfg: serde_json::Value = serde_json::from_slice(&cfg).unwrap();
    cfg["max_position_embeddings"] = 1024.into();
    std::fs::write(dir.join("config.json"), cfg.to_string()).unwrap();
    Model::load(&ModelOptions::new(dir), &DropPlan::empty()).unwrap()
}

/// Greedy, no stop; echoed with `logprobs` alternatives when Some.
pub(super) fn greedy(max_tokens: usize, logprobs: Option<usize>) -> Params {
    Params {
        max_tokens,
        echo: logprobs.is_some(),
        logprobs,
        sampling: Sampling {
            temperature: 0.0,
            top_p: 1.0,
            top_k: 0,
            seed: 0,
        },
        stop: vec![],
        stop_ids: vec![],
        skip_special: false,
    }
}

pub(super) fn job(prompts: Vec<Vec<u32>>, params: Params) -> (Job, mpsc::UnboundedReceiver<Event>) {
    let (events, rx) = mpsc::unbounded_channel();
    let job = Job {
        prompts,
        params,
        events,
    };
    (job, rx)
}

/// The events received so far, as their Debug text (floats printed exactly).
pub(super) fn drain(rx: &mut mpsc::UnboundedReceiver<Event>) -> Vec<String> {
    std::iter::from_fn(|| rx.try_recv().ok())
        .map(|e| format!("{e:?}"))
        .collect()
}

/// `n` ids of the tiny vocabulary after BOS.
pub(super) fn long_prompt(n: usize) -> Vec<u32> {
    let mut p = vec![1];
    p.extend((1..n as u32).map(|i| (i * 37 + 11) % 256));
    p
}

/// How many of `events` are tokens.
pub(super) fn tokens(events: &[String]) -> usize {
    events.iter().filter(|e| e.starts_with("Token")).count()
}

use std::process::ExitCode;

use candle_core::{DType, Tensor};
use clap::Args;
use serde::Serialize;

use crate::args::{Ctx, DropArgs, ModelArgs};
use crate::output;

#[derive(Args)]
pub struct LogitsArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    drop: DropArgs,
    /// Text to run (tokenized without special tokens, BOS as the model's config says).
    #[arg(long, conflicts_with = "ids")]
    prompt: Option<String>,
    /// Token ids to run, comma-separated.
    #[arg(long, value_delimiter = ',')]
    ids: Vec<u32>,
    /// Print only the top K logits of each position (0 = all).
    #[arg(long, default_value_t = 0)]
    top: usize,
}

#[derive(Serialize)]
struct LogitsReport {
    ids: Vec<u32>,
    plan: llmdrop::DropPlan,
    /// Per position: all logits, or the top K as (id, logit); f64 values when computing
    /// in f64, else the f32 values.
    logits: Vec<Vec<f64>>,
    top: Vec<Vec<(u32, f64)>>,
}

/// Logits of every position as JSON (with or without `--json`): for comparing llmdrop
/// with other engines.
pub fn run(a: LogitsArgs, ctx: Ctx) -> anyhow::Result<ExitCode> {
    let plan = a.drop.plan();
    let (_src, dec, tok) = a.model.load(&plan, ctx)?;
    let ids = match &a.prompt {
        Some(p) => tok.encode_prompt(p)?,
        None => a.ids.clone(),
    };
    if ids.is_empty() {
        anyhow::bail!("give --prompt or --ids");
    }
    let t = Tensor::new(ids.as_slice(), dec.device())?.unsqueeze(0)?;
    // f64 holds an f32 exactly: every digit of either precision is printed
    let rows = dec
        .exact_logits(&t)?
        .squeeze(0)?
        .to_dtype(DType::F64)?
        .to_vec2::<f64>()?;
    let (logits, top) = if a.top == 0 {
        (rows, vec![])
    } else {
        let top = rows
            .iter()
            .map(|r| {
                let mut v: Vec<(u32, f64)> =
                    r.iter().enumerate().map(|(i, &x)| (i as u32, x)).collect();
                v.sort_by(|x, y| y.1.total_cmp(&x.1));
                v.truncate(a.top);
                v
            })
            .collect();
        (vec![], top)
    };
    output::print_json(
        "logits",
        &LogitsReport {
            ids,
            plan: dec.plan().clone(),
            logits,
            top,
        },
    )?;
    Ok(ExitCode::SUCCESS)
}

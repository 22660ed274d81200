use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use candle_core::Device;
use clap::Args;
use llmdrop::eval::suite::resolve;
use llmdrop::eval::{evaluate_task, perplexity, PplOptions, Task};
use llmdrop::io::tokenizer::Tokenizer;
use llmdrop::report::eval::{EvalReport, ModelColumn};
use llmdrop::{Decoder, DropPlan, ModelSource};
use serde::Deserialize;

use crate::args::{threads, DropArgs, ModelArgs};
use crate::output;
use crate::progress::Bars;

#[derive(Args)]
pub struct EvalArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// A pruned variant of --model given by layer lists (its own column).
    #[command(flatten)]
    drop: DropArgs,
    /// A pruned variant from a plan.json (as `llmdrop drop` writes); repeatable.
    #[arg(long)]
    plan: Vec<PathBuf>,
    /// A pruned model directory (as `llmdrop drop` writes); repeatable.
    #[arg(long)]
    pruned: Vec<PathBuf>,
    /// Tasks, comma-separated: default, bigbench:NAME, LAYOUT:FILE.jsonl, FILE.jsonl, FILE.json.
    #[arg(long, default_value = "default", value_delimiter = ',')]
    tasks: Vec<String>,
    /// Few-shot examples per prompt, drawn from the task itself.
    #[arg(long, default_value_t = 0)]
    shots: usize,
    /// Seed for the few-shot draws.
    #[arg(long, default_value_t = 1234)]
    seed: u64,
    /// Use only the first N examples of each task.
    #[arg(long)]
    limit: Option<usize>,
    /// Also measure perplexity on this UTF-8 text.
    #[arg(long)]
    ppl_data: Option<PathBuf>,
    /// Perplexity window.
    #[arg(long, default_value_t = 512)]
    seq_len: usize,
    #[arg(long)]
    max_windows: Option<usize>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// Print a markdown table.
    #[arg(long)]
    markdown: bool,
}

#[derive(Deserialize)]
struct PlanFile {
    plan: DropPlan,
}

/// Loads the tasks named on the command line.
pub fn load_tasks(
    specs: &[String],
    shots: usize,
    seed: u64,
    limit: Option<usize>,
) -> anyhow::Result<Vec<Task>> {
    let mut tasks = Vec::new();
    for spec in specs {
        for mut t in resolve(spec)? {
            if let Some(n) = limit {
                t.examples.truncate(n);
            }
            tasks.push(t.with_fewshot(shots, seed));
        }
    }
    if tasks.is_empty() {
        anyhow::bail!("no tasks to evaluate");
    }
    Ok(tasks)
}

/// Evaluates one model on the tasks and the perplexity text.
#[allow(clippy::too_many_arguments)]
pub fn evaluate(
    name: &str,
    model: &str,
    dec: &Decoder,
    tok: &Tokenizer,
    tasks: &[Task],
    ppl: Option<(&[u32], &PplOptions)>,
    json: bool,
) -> anyhow::Result<ModelColumn> {
    let t0 = Instant::now();
    let mut scores = Vec::new();
    for t in tasks {
        let (s, _) = evaluate_task(dec, tok, t, &mut Bars::new(json))
            .with_context(|| format!("task {}", t.name))?;
        scores.push(s);
    }
    let ppl = match ppl {
        Some((ids, o)) => Some(perplexity(dec, ids, o, &mut Bars::new(json))?),
        None => None,
    };
    Ok(ModelColumn {
        name: name.into(),
        model: model.into(),
        plan: dec.plan().clone(),
        tasks: scores,
        ppl,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

pub fn run(a: EvalArgs) -> anyhow::Result<ExitCode> {
    let tasks = load_tasks(&a.tasks, a.shots, a.seed, a.limit)?;
    let dtype = a.model.dtype()?;
    let src = a.model.open()?;
    let model_sha = llmdrop::io::hash::model_sha256(&src)?;
    let tok = src.tokenizer()?;
    let base = src.load_decoder(&DropPlan::empty(), dtype, &Device::Cpu)?;
    let ppl_ids = match &a.ppl_data {
        Some(p) => Some(tok.encode(&llmdrop::io::text::read_utf8(p)?)?),
        None => None,
    };
    let ppl_opts = PplOptions {
        seq_len: a.seq_len,
        max_windows: a.max_windows,
        second_half: false,
    };
    let ppl = ppl_ids.as_deref().map(|ids| (ids, &ppl_opts));
    let path = src.path().display().to_string();

    // variants: original, --drop-*, each --plan, each --pruned
    let mut variants: Vec<(String, DropPlan)> = vec![("original".into(), DropPlan::empty())];
    let cli_plan = a.drop.plan()?;
    if !cli_plan.is_empty() {
        variants.push((describe(&cli_plan), cli_plan));
    }
    for p in &a.plan {
        let text = llmdrop::io::text::read_utf8_limited(p, llmdrop::io::text::MAX_JSON_BYTES)?;
        let f: PlanFile = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a plan.json", p.display()))?;
        variants.push((p.display().to_string(), f.plan));
    }
    let mut columns = Vec::new();
    for (name, plan) in &variants {
        let dec = base.pruned(plan)?;
        columns.push(evaluate(name, &path, &dec, &tok, &tasks, ppl, a.json)?);
    }
    for dir in &a.pruned {
        let s = ModelSource::open(dir)?;
        let t = s.tokenizer()?;
        let d = s.load_decoder(&DropPlan::empty(), dtype, &Device::Cpu)?;
        let ids = match &a.ppl_data {
            Some(p) => Some(t.encode(&llmdrop::io::text::read_utf8(p)?)?),
            None => None,
        };
        let ppl = ids.as_deref().map(|ids| (ids, &ppl_opts));
        columns.push(evaluate(
            &dir.display().to_string(),
            &dir.display().to_string(),
            &d,
            &t,
            &tasks,
            ppl,
            a.json,
        )?);
    }
    let report = EvalReport {
        llmdrop_version: llmdrop::VERSION.into(),
        model_sha256: model_sha,
        threads: threads(),
        dtype: a.model.dtype.clone(),
        shots: a.shots,
        seed: a.seed,
        limit: a.limit,
        ppl_data: a.ppl_data.as_ref().map(|p| p.display().to_string()),
        columns,
    };
    if a.json {
        output::print_json("eval", &report)?;
    } else if a.markdown {
        output::print_text(&report.to_markdown())?;
    } else {
        output::print_text(&report.to_text())?;
    }
    Ok(super::checked(report.non_finite()))
}

/// A short name for a plan: `-attn 3,5 -mlp 4`.
pub fn describe(p: &DropPlan) -> String {
    let list = |s: &std::collections::BTreeSet<usize>| {
        s.iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut parts = Vec::new();
    if !p.attn.is_empty() {
        parts.push(format!("-attn {}", list(&p.attn)));
    }
    if !p.mlp.is_empty() {
        parts.push(format!("-mlp {}", list(&p.mlp)));
    }
    parts.join(" ")
}

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use llmdrop::pipeline::{
    self, EvalOptions, DEFAULT_FEWSHOT_SEED, DEFAULT_PPL_SEQ_LEN, DEFAULT_TASKS,
};

use crate::args::{Ctx, DropArgs, ModelArgs};
use crate::memory_args::BudgetArgs;
use crate::output;
use crate::progress::Console;

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
    #[arg(long, default_value = DEFAULT_TASKS, value_delimiter = ',')]
    tasks: Vec<String>,
    /// Few-shot examples per prompt, drawn from the task itself.
    #[arg(long, default_value_t = 0)]
    shots: usize,
    /// Seed for the few-shot draws.
    #[arg(long, default_value_t = DEFAULT_FEWSHOT_SEED)]
    seed: u64,
    /// Use only the first N examples of each task.
    #[arg(long)]
    limit: Option<usize>,
    /// Also measure perplexity on this UTF-8 text.
    #[arg(long)]
    ppl_data: Option<PathBuf>,
    /// Perplexity window.
    #[arg(long, default_value_t = DEFAULT_PPL_SEQ_LEN)]
    seq_len: usize,
    #[arg(long)]
    max_windows: Option<usize>,
    /// Print a markdown table.
    #[arg(long)]
    markdown: bool,
    #[command(flatten)]
    memory: BudgetArgs,
}

pub fn run(a: EvalArgs, ctx: Ctx) -> anyhow::Result<ExitCode> {
    let opts = EvalOptions {
        tasks: a.tasks.clone(),
        shots: a.shots,
        seed: a.seed,
        limit: a.limit,
        ppl_data: a.ppl_data.clone(),
        seq_len: a.seq_len,
        max_windows: a.max_windows,
        plan: a.drop.plan(),
        plan_files: a.plan.clone(),
        pruned: a.pruned.clone(),
        memory: a.memory.policy(),
    };
    let report = pipeline::evaluate_models(&a.model.options(), &opts, &mut Console::new(ctx))?;
    if ctx.json {
        output::print_json("eval", &report)?;
    } else if a.markdown {
        output::print_text(&report.to_markdown())?;
    } else {
        output::print_text(&report.to_text())?;
    }
    Ok(output::checked(report.non_finite()))
}

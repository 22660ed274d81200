//! Evaluation: tasks (and a perplexity text) -> one report column per model variant.

use std::path::PathBuf;
use std::time::Instant;

use candle_core::Device;
use serde::Deserialize;

use super::eval_memory::{eval_memory, EvalShapes};
use super::events::{Event, Observer};
use super::export::read_plan_file;
use super::ModelOptions;
use crate::budget::{MemoryPolicy, ScoreMode};
use crate::error::{Error, Result};
use crate::eval::suite::resolve;
use crate::eval::{
    evaluate_task, evaluate_task_streamed, perplexity, perplexity_streamed, PplOptions, Task,
};
use crate::io::source::ModelSource;
use crate::io::tokenizer::Tokenizer;
use crate::model::{Decoder, LayerStream};
use crate::plan::DropPlan;
use crate::progress::Progress;
use crate::report::eval::{EvalReport, ModelColumn};

/// The task list when none is asked for: the built-in suite.
pub const DEFAULT_TASKS: &str = "default";
/// Seed of the few-shot draws, unless asked otherwise.
pub const DEFAULT_FEWSHOT_SEED: u64 = 1234;
/// Perplexity window, unless asked otherwise.
pub const DEFAULT_PPL_SEQ_LEN: usize = 512;

/// Which tasks, and which variants of the model, [`evaluate_models`] measures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalOptions {
    /// Task specs: default, bigbench:NAME, LAYOUT:FILE.jsonl, FILE.jsonl, FILE.json.
    pub tasks: Vec<String>,
    /// Few-shot examples per prompt, drawn from the task itself.
    pub shots: usize,
    /// Seed for the few-shot draws.
    pub seed: u64,
    /// Use only the first N examples of each task.
    pub limit: Option<usize>,
    /// Also measure perplexity on this UTF-8 text.
    pub ppl_data: Option<PathBuf>,
    /// Perplexity window.
    pub seq_len: usize,
    pub max_windows: Option<usize>,
    /// A pruned variant of the model given by layer lists (its own column when not empty).
    pub plan: DropPlan,
    /// Pruned variants from plan.json files (as the drop workflow writes).
    pub plan_files: Vec<PathBuf>,
    /// Pruned model folders (as the drop workflow writes).
    pub pruned: Vec<PathBuf>,
    /// Whether the models are held or their layers streamed, and the memory allowed.
    pub memory: MemoryPolicy,
}

impl Default for EvalOptions {
    fn default() -> Self {
        Self {
            tasks: vec![DEFAULT_TASKS.into()],
            shots: 0,
            seed: DEFAULT_FEWSHOT_SEED,
            limit: None,
            ppl_data: None,
            seq_len: DEFAULT_PPL_SEQ_LEN,
            max_windows: None,
            plan: DropPlan::empty(),
            plan_files: Vec::new(),
            pruned: Vec::new(),
            memory: MemoryPolicy::default(),
        }
    }
}

#[derive(Deserialize)]
struct PlanFile {
    plan: DropPlan,
}

/// Loads the tasks named by `specs`, each cut to `limit` examples, with `shots` few-shot
/// examples drawn with `seed`.
pub fn load_tasks(
    specs: &[String],
    shots: usize,
    seed: u64,
    limit: Option<usize>,
) -> Result<Vec<Task>> {
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
        return Err(Error::argument("tasks", "names no task to evaluate"));
    }
    Ok(tasks)
}

/// How [`evaluate`] runs a model variant.
pub enum Runner<'a> {
    /// The variant held in memory.
    Held(&'a Decoder),
    /// The variant's layers streamed, each task (in order) and the perplexity cut as
    /// `shapes` says.
    Streamed {
        stream: &'a LayerStream<'a>,
        shapes: &'a EvalShapes,
    },
}

/// Evaluates one model (named `name` in the report, from `model`) on the tasks and the
/// perplexity text.
pub fn evaluate(
    name: &str,
    model: &str,
    run: Runner<'_>,
    tok: &Tokenizer,
    tasks: &[Task],
    ppl: Option<(&[u32], &PplOptions)>,
    progress: &mut dyn Progress,
) -> Result<ModelColumn> {
    let t0 = Instant::now();
    let mut scores = Vec::new();
    for (i, t) in tasks.iter().enumerate() {
        let (s, _) = match &run {
            Runner::Held(dec) => evaluate_task(dec, tok, t, progress),
            Runner::Streamed { stream, shapes } => {
                let shape = shapes.tasks.get(i).copied().unwrap_or_default();
                evaluate_task_streamed(stream, tok, t, shape, progress)
            }
        }
        .map_err(|e| Error::context(format!("task {}", t.name), e))?;
        scores.push(s);
    }
    let ppl = match (ppl, &run) {
        (Some((ids, o)), Runner::Held(dec)) => Some(perplexity(dec, ids, o, progress)?),
        (Some((ids, o)), Runner::Streamed { stream, shapes }) => {
            Some(perplexity_streamed(stream, ids, o, shapes.ppl, progress)?)
        }
        (None, _) => None,
    };
    let plan = match &run {
        Runner::Held(dec) => dec.plan().clone(),
        Runner::Streamed { stream, .. } => stream.plan().clone(),
    };
    Ok(ModelColumn {
        name: name.into(),
        model: model.into(),
        plan,
        tasks: scores,
        ppl,
        seconds: t0.elapsed().as_secs_f64(),
        memory: None,
    })
}

/// Multiple-choice accuracy (and perplexity) of the model and each variant in `opts`:
/// the original first, then the layer lists, each plan file, each pruned folder. Each
/// model is held in memory when it fits `opts.memory`, else its layers are streamed
/// (the same results, bit for bit); [`Event::EvalMode`] says which before any weight is
/// read.
pub fn evaluate_models(
    model: &ModelOptions,
    opts: &EvalOptions,
    obs: &mut dyn Observer,
) -> Result<EvalReport> {
    let tasks = load_tasks(&opts.tasks, opts.shots, opts.seed, opts.limit)?;
    let dtype = model.dtype;
    let src = model.open()?;
    let model_sha = crate::io::hash::model_sha256(&src)?;
    let tok = src.tokenizer()?;
    let ppl_ids = match &opts.ppl_data {
        Some(p) => Some(tok.encode(&crate::io::text::read_utf8(p)?)?),
        None => None,
    };
    let ppl_opts = PplOptions {
        seq_len: opts.seq_len,
        max_windows: opts.max_windows,
        second_half: false,
        bos: tok.sequence_bos(),
    };
    let ppl = ppl_ids.as_deref().map(|ids| (ids, &ppl_opts));
    let path = src.path().display().to_string();

    let mut variants: Vec<(String, DropPlan)> = vec![("original".into(), DropPlan::empty())];
    if !opts.plan.is_empty() {
        variants.push((describe(&opts.plan), opts.plan.clone()));
    }
    for p in &opts.plan_files {
        let f: PlanFile = read_plan_file(p)?;
        variants.push((p.display().to_string(), f.plan));
    }
    let mut columns = Vec::new();
    let (choice, shapes) = eval_memory(&src, dtype, &tok, &tasks, ppl, &opts.memory)?;
    obs.event(Event::EvalMode {
        choice,
        model: &path,
    });
    let base = match choice.mode {
        ScoreMode::InMemory => Some(src.load_decoder(&DropPlan::empty(), dtype, &Device::Cpu)?),
        ScoreMode::Streamed => None,
    };
    for (name, plan) in &variants {
        let mut col = match &base {
            Some(b) => evaluate(
                name,
                &path,
                Runner::Held(&b.pruned(plan)?),
                &tok,
                &tasks,
                ppl,
                obs,
            )?,
            None => {
                let stream = LayerStream::open(&src, plan, dtype, &Device::Cpu)?;
                let run = Runner::Streamed {
                    stream: &stream,
                    shapes: &shapes,
                };
                evaluate(name, &path, run, &tok, &tasks, ppl, obs)?
            }
        };
        col.memory = Some(choice);
        columns.push(col);
    }
    drop(base);
    for dir in &opts.pruned {
        let s = ModelSource::open(dir)?;
        let t = s.tokenizer()?;
        let ids = match &opts.ppl_data {
            Some(p) => Some(t.encode(&crate::io::text::read_utf8(p)?)?),
            None => None,
        };
        let ppl = ids.as_deref().map(|ids| (ids, &ppl_opts));
        let name = dir.display().to_string();
        let (choice, shapes) = eval_memory(&s, dtype, &t, &tasks, ppl, &opts.memory)?;
        obs.event(Event::EvalMode {
            choice,
            model: &name,
        });
        let mut col = match choice.mode {
            ScoreMode::InMemory => {
                let d = s.load_decoder(&DropPlan::empty(), dtype, &Device::Cpu)?;
                evaluate(&name, &name, Runner::Held(&d), &t, &tasks, ppl, obs)?
            }
            ScoreMode::Streamed => {
                let stream = LayerStream::open(&s, &DropPlan::empty(), dtype, &Device::Cpu)?;
                let run = Runner::Streamed {
                    stream: &stream,
                    shapes: &shapes,
                };
                evaluate(&name, &name, run, &t, &tasks, ppl, obs)?
            }
        };
        col.memory = Some(choice);
        columns.push(col);
    }
    Ok(EvalReport {
        llmdrop_version: crate::VERSION.into(),
        model_sha256: model_sha,
        threads: candle_core::utils::get_num_threads(),
        dtype: dtype.name().into(),
        shots: opts.shots,
        seed: opts.seed,
        limit: opts.limit,
        ppl_data: opts.ppl_data.as_ref().map(|p| p.display().to_string()),
        columns,
    })
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

//! The sweep: quality against modules dropped for each strategy, resumable.

use std::path::{Path, PathBuf};

use super::calibrate::{calibrate, CalibOptions};
use super::eval::{
    evaluate, load_tasks, Runner, DEFAULT_FEWSHOT_SEED, DEFAULT_PPL_SEQ_LEN, DEFAULT_TASKS,
};
use super::events::{Event, Observer};
use super::score::run_scoring;
use super::ModelOptions;
use crate::dest::{self, Inputs, Kind};
use crate::error::{Error, Result, StrategyError};
use crate::eval::PplOptions;
use crate::io::text::{read_utf8_limited, MAX_JSON_BYTES};
use crate::plan::DropPlan;
use crate::report::sweep::{point, SweepKey, SweepResults};
use crate::report::ScoreReport;
use crate::strategy::{select, SelectOptions, Strategy};

/// Strategies swept, unless asked otherwise (comma-separated, as the CLI takes them).
pub const DEFAULT_STRATEGIES: &str = "attn,mlp,block,joint";

/// Folder the sweep writes to, unless asked otherwise.
pub const DEFAULT_SWEEP_DIR: &str = "sweep";

/// What [`sweep`] drops, measures and where it writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepOptions {
    pub calib: CalibOptions,
    /// Strategies to sweep (block, attn, mlp, joint).
    pub strategies: Vec<Strategy>,
    /// Largest number of units to drop.
    pub max: usize,
    /// Step between drop counts (0, step, 2 step, … max); positive.
    pub step: usize,
    pub keep_first: usize,
    pub keep_last: usize,
    /// Task specs (as for [`super::EvalOptions::tasks`]).
    pub tasks: Vec<String>,
    pub shots: usize,
    pub seed_fewshot: u64,
    /// Use only the first N examples of each task.
    pub limit: Option<usize>,
    /// Perplexity text; `None`: the cached docutils reStructuredText primer.
    pub ppl_data: Option<PathBuf>,
    pub ppl_seq_len: usize,
    /// Output folder: scores.json, results.json (resumable), report.md, *.svg.
    pub out: PathBuf,
}

impl Default for SweepOptions {
    fn default() -> Self {
        Self {
            calib: CalibOptions::default(),
            strategies: DEFAULT_STRATEGIES
                .split(',')
                .map(|s| s.parse().expect("a known strategy"))
                .collect(),
            max: 8,
            step: 2,
            keep_first: 0,
            keep_last: 0,
            tasks: vec![DEFAULT_TASKS.into()],
            shots: 0,
            seed_fewshot: DEFAULT_FEWSHOT_SEED,
            limit: None,
            ppl_data: None,
            ppl_seq_len: DEFAULT_PPL_SEQ_LEN,
            out: DEFAULT_SWEEP_DIR.into(),
        }
    }
}

/// What a sweep measured and wrote.
#[derive(Debug, Clone)]
pub struct SweepOutcome {
    /// Every point measured, this run or a previous one with the same key.
    pub results: SweepResults,
    /// The markdown report written to `report.md`.
    pub markdown: String,
}

/// Scores the model (reusing `out/scores.json` when it matches), then evaluates each
/// strategy at 0, step, … max dropped units; each point is saved to `out/results.json` as
/// it finishes, and a run with the same key resumes where the last one stopped. Writes
/// `report.md`, `ppl.svg` and `accuracy.svg`.
pub fn sweep(
    model: &ModelOptions,
    opts: &SweepOptions,
    obs: &mut dyn Observer,
) -> Result<SweepOutcome> {
    if opts.step == 0 {
        return Err(Error::argument("step", "must be positive"));
    }
    if opts.strategies.contains(&Strategy::Consecutive) {
        return Err(StrategyError::SweepConsecutive.into());
    }
    let ppl_path = match &opts.ppl_data {
        Some(p) => p.clone(),
        None => crate::assets::default_ppl_text(),
    };
    // the output folder is checked before any work: never onto an input
    let mut inputs = Inputs::of_model(&model.path()?);
    inputs.add("calibration data", &opts.calib.data_path()?);
    inputs.add("perplexity text", &ppl_path);
    for t in &opts.tasks {
        let file = t.rsplit_once(':').map_or(t.as_str(), |(_, f)| f);
        if Path::new(file).exists() {
            inputs.add("task file", Path::new(file));
        }
    }
    dest::check_folder(&opts.out, &inputs)?;
    let tasks = load_tasks(&opts.tasks, opts.shots, opts.seed_fewshot, opts.limit)?;
    let (src, dec, tok) = model.load(&DropPlan::empty())?;
    let model_sha = crate::io::hash::model_sha256(&src)?;
    let cal = calibrate(&opts.calib, model.dtype, &tok)?;
    std::fs::create_dir_all(&opts.out).map_err(|e| Error::io(&opts.out, e))?;

    let scores_path = opts.out.join("scores.json");
    let report = match ScoreReport::read(&scores_path)
        .ok()
        .filter(|r| r.matches(&model_sha, &cal.blocks.hash, &cal.settings))
    {
        Some(r) => r,
        None => {
            let r = run_scoring(&src, &model_sha, &dec, &cal, obs)?;
            r.write(&scores_path, &inputs)?;
            r
        }
    };

    let ppl_text = crate::io::text::read_utf8(&ppl_path)?;
    let ppl_ids = tok.encode(&ppl_text)?;
    let ppl_opts = PplOptions {
        seq_len: opts.ppl_seq_len,
        max_windows: None,
        second_half: false,
        bos: tok.sequence_bos(),
    };
    let key = SweepKey {
        model_sha256: model_sha.clone(),
        scores_data_sha256: cal.blocks.hash.clone(),
        score_settings: cal.settings.clone(),
        tasks: tasks.iter().map(|t| t.name.clone()).collect(),
        shots: opts.shots,
        limit: opts.limit,
        ppl_data_sha256: Some(crate::io::hash::sha256_bytes(ppl_text.as_bytes())),
        ppl_seq_len: opts.ppl_seq_len,
        keep_first: opts.keep_first,
        keep_last: opts.keep_last,
    };
    let results_path = opts.out.join("results.json");
    let mut results = read_utf8_limited(&results_path, MAX_JSON_BYTES)
        .ok()
        .and_then(|t| serde_json::from_str::<SweepResults>(&t).ok())
        .filter(|r| r.key == key)
        .unwrap_or(SweepResults {
            schema_version: 1,
            key,
            results: Default::default(),
        });

    let ks: Vec<usize> = (0..=opts.max).step_by(opts.step).collect();
    let names: Vec<String> = opts.strategies.iter().map(|s| s.to_string()).collect();
    let path = src.path().display().to_string();
    let mut todo: Vec<(String, DropPlan)> = vec![("none:0".into(), DropPlan::empty())];
    for s in &opts.strategies {
        for &k in ks.iter().filter(|&&k| k > 0) {
            let o = SelectOptions {
                n: k,
                keep_first: opts.keep_first,
                keep_last: opts.keep_last,
            };
            match select(&report.table, *s, &o) {
                Ok(plan) => todo.push((point(&s.to_string(), k), plan)),
                Err(_) => break, // more than this strategy can drop
            }
        }
    }
    let total = todo.len();
    for (i, (label, plan)) in todo.iter().enumerate() {
        if results.results.contains_key(label) {
            continue;
        }
        obs.event(Event::SweepPoint {
            index: i + 1,
            total,
            label,
        });
        let col = evaluate(
            label,
            &path,
            Runner::Held(&dec.pruned(plan)?),
            &tok,
            &tasks,
            Some((&ppl_ids, &ppl_opts)),
            obs,
        )?;
        results.results.insert(label.clone(), col);
        let json = serde_json::to_string_pretty(&results)
            .map_err(|e| Error::context(results_path.display().to_string(), e))?;
        dest::write_file(&results_path, Kind::SweepResults, &inputs, json.as_bytes())?;
    }
    let markdown = results.to_markdown(&names, &ks);
    let out = |name: &str| opts.out.join(name);
    dest::write_file(
        &out("report.md"),
        Kind::SweepReport,
        &inputs,
        markdown.as_bytes(),
    )?;
    let (ppl_svg, acc_svg) = results.plots(&names, &ks);
    dest::write_file(&out("ppl.svg"), Kind::Svg, &inputs, ppl_svg.as_bytes())?;
    dest::write_file(&out("accuracy.svg"), Kind::Svg, &inputs, acc_svg.as_bytes())?;
    Ok(SweepOutcome { results, markdown })
}

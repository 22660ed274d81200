use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use llmdrop::dest::{self, Inputs, Kind};
use llmdrop::eval::PplOptions;
use llmdrop::io::text::{read_utf8_limited, MAX_JSON_BYTES};
use llmdrop::plan::strategy::{select, SelectOptions, Strategy};
use llmdrop::report::sweep::{point, SweepKey, SweepResults};
use llmdrop::report::ScoreReport;
use llmdrop::DropPlan;

use super::eval::{evaluate, load_tasks};
use super::score::{calibration, run_scoring};
use crate::args::{CalibArgs, ModelArgs};
use crate::output;

#[derive(Args)]
pub struct SweepArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    calib: CalibArgs,
    /// Strategies to sweep, comma-separated.
    #[arg(long, default_value = "attn,mlp,block,joint", value_delimiter = ',')]
    strategies: Vec<String>,
    /// Largest number of units to drop.
    #[arg(long, default_value_t = 8)]
    max: usize,
    /// Step between drop counts (0, step, 2 step, … max).
    #[arg(long, default_value_t = 2)]
    step: usize,
    #[arg(long, default_value_t = 0)]
    keep_first: usize,
    #[arg(long, default_value_t = 0)]
    keep_last: usize,
    /// Tasks (as for `llmdrop eval`).
    #[arg(long, default_value = "default", value_delimiter = ',')]
    tasks: Vec<String>,
    #[arg(long, default_value_t = 0)]
    shots: usize,
    #[arg(long, default_value_t = 1234)]
    seed_fewshot: u64,
    /// Use only the first N examples of each task.
    #[arg(long)]
    limit: Option<usize>,
    /// Perplexity text (default: the cached docutils reStructuredText primer).
    #[arg(long)]
    ppl_data: Option<PathBuf>,
    #[arg(long, default_value_t = 512)]
    ppl_seq_len: usize,
    /// Output directory: scores.json, results.json (resumable), report.md, *.svg.
    #[arg(long, default_value = "sweep")]
    out: PathBuf,
    /// Print JSON results instead of the markdown report.
    #[arg(long)]
    json: bool,
}

pub fn run(a: SweepArgs) -> anyhow::Result<ExitCode> {
    if a.step == 0 {
        anyhow::bail!("--step must be positive");
    }
    let strategies: Vec<Strategy> = a
        .strategies
        .iter()
        .map(|s| s.parse())
        .collect::<Result<_, _>>()?;
    if strategies.contains(&Strategy::Consecutive) {
        anyhow::bail!(
            "the sweep covers block, attn, mlp and joint; use `llmdrop drop` for consecutive"
        );
    }
    let ppl_path = match &a.ppl_data {
        Some(p) => p.clone(),
        None => {
            llmdrop::assets::cache_dir().join("text/docutils-0.21.2/docs/user/rst/quickstart.txt")
        }
    };
    // the output folder is checked before any work: never onto an input
    let mut inputs = Inputs::of_model(&a.model.path()?);
    inputs.add("calibration data", &a.calib.data_path()?);
    inputs.add("perplexity text", &ppl_path);
    for t in &a.tasks {
        let file = t.rsplit_once(':').map_or(t.as_str(), |(_, f)| f);
        if std::path::Path::new(file).exists() {
            inputs.add("task file", std::path::Path::new(file));
        }
    }
    dest::check_folder(&a.out, &inputs)?;
    let tasks = load_tasks(&a.tasks, a.shots, a.seed_fewshot, a.limit)?;
    let (src, dec, tok) = a.model.load(&DropPlan::empty())?;
    let model_sha = llmdrop::io::hash::model_sha256(&src)?;
    let cal = calibration(&a.calib, &a.model, &tok)?;
    std::fs::create_dir_all(&a.out)?;

    let scores_path = a.out.join("scores.json");
    let report = match ScoreReport::read(&scores_path)
        .ok()
        .filter(|r| r.matches(&model_sha, &cal.blocks.hash, &cal.settings))
    {
        Some(r) => r,
        None => {
            let r = run_scoring(&src, &model_sha, &dec, &cal, a.json)?;
            r.write(&scores_path, &inputs)?;
            r
        }
    };

    let ppl_text = llmdrop::io::text::read_utf8(&ppl_path)?;
    let ppl_ids = tok.encode(&ppl_text)?;
    let ppl_opts = PplOptions {
        seq_len: a.ppl_seq_len,
        max_windows: None,
        second_half: false,
    };
    let key = SweepKey {
        model_sha256: model_sha.clone(),
        scores_data_sha256: cal.blocks.hash.clone(),
        score_settings: cal.settings.clone(),
        tasks: tasks.iter().map(|t| t.name.clone()).collect(),
        shots: a.shots,
        limit: a.limit,
        ppl_data_sha256: Some(llmdrop::io::hash::sha256_bytes(ppl_text.as_bytes())),
        ppl_seq_len: a.ppl_seq_len,
        keep_first: a.keep_first,
        keep_last: a.keep_last,
    };
    let results_path = a.out.join("results.json");
    let mut results = read_utf8_limited(&results_path, MAX_JSON_BYTES)
        .ok()
        .and_then(|t| serde_json::from_str::<SweepResults>(&t).ok())
        .filter(|r| r.key == key)
        .unwrap_or(SweepResults {
            schema_version: 1,
            key,
            results: Default::default(),
        });

    let ks: Vec<usize> = (0..=a.max).step_by(a.step).collect();
    let names: Vec<String> = strategies.iter().map(|s| s.to_string()).collect();
    let path = src.path().display().to_string();
    let mut todo: Vec<(String, DropPlan)> = vec![("none:0".into(), DropPlan::empty())];
    for s in &strategies {
        for &k in ks.iter().filter(|&&k| k > 0) {
            let o = SelectOptions {
                n: k,
                keep_first: a.keep_first,
                keep_last: a.keep_last,
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
        if !a.json {
            eprintln!("[{}/{total}] {label}", i + 1);
        }
        let col = evaluate(
            label,
            &path,
            &dec.pruned(plan)?,
            &tok,
            &tasks,
            Some((&ppl_ids, &ppl_opts)),
            a.json,
        )?;
        results.results.insert(label.clone(), col);
        dest::write_file(
            &results_path,
            Kind::SweepResults,
            &inputs,
            serde_json::to_string_pretty(&results)?.as_bytes(),
        )?;
    }
    let md = results.to_markdown(&names, &ks);
    let report_path = a.out.join("report.md");
    dest::write_file(&report_path, Kind::SweepReport, &inputs, md.as_bytes())?;
    let (ppl_svg, acc_svg) = results.plots(&names, &ks);
    let svg_path = |name: &str| a.out.join(name);
    dest::write_file(&svg_path("ppl.svg"), Kind::Svg, &inputs, ppl_svg.as_bytes())?;
    dest::write_file(
        &svg_path("accuracy.svg"),
        Kind::Svg,
        &inputs,
        acc_svg.as_bytes(),
    )?;
    if a.json {
        output::print_json("sweep", &results)?;
    } else {
        output::print_text(&md)?;
        eprintln!("wrote {}", a.out.display());
    }
    let failed: Vec<String> = results
        .results
        .iter()
        .filter_map(|(label, col)| col.non_finite().map(|m| format!("{label}: {m}")))
        .collect();
    Ok(super::checked(
        (!failed.is_empty()).then(|| failed.join("\n")),
    ))
}

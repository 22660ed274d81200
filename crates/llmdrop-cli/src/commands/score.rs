use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use llmdrop::calib::{pack, read_documents, CalibBlocks, PackOptions, TextSource};
use llmdrop::dest::{self, Inputs, Kind};
use llmdrop::io::tokenizer::Tokenizer;
use llmdrop::report::{svg, ScoreReport, ScoreSettings};
use llmdrop::score::{score, ScoreOptions, ScoreTable};
use llmdrop::{Decoder, ModelSource};

use crate::args::{threads, CalibArgs, ModelArgs};
use crate::output;
use crate::progress::Bars;

#[derive(Args)]
pub struct ScoreArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    calib: CalibArgs,
    /// Where to write the scores.
    #[arg(long, default_value = "scores.json")]
    out: PathBuf,
    /// Also write SVG plots (per-layer bars, consecutive heatmap) into this directory.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// The calibration blocks and the settings that identify a score table.
pub struct Calibration {
    pub data_path: PathBuf,
    pub blocks: CalibBlocks,
    pub settings: ScoreSettings,
}

pub fn calibration(
    c: &CalibArgs,
    model: &ModelArgs,
    tok: &Tokenizer,
) -> anyhow::Result<Calibration> {
    let data_path = c.data_path()?;
    let src = TextSource {
        path: data_path.clone(),
        field: c.field.clone(),
    };
    let docs = read_documents(&src)?;
    let opts = PackOptions {
        seq_len: c.seq_len,
        samples: c.samples,
        shuffle: c.shuffle,
        seed: c.seed,
    };
    let blocks = pack(&docs, tok, &opts)
        .with_context(|| format!("calibration data {}", data_path.display()))?;
    Ok(Calibration {
        data_path,
        blocks,
        settings: ScoreSettings {
            samples: c.samples,
            seq_len: c.seq_len,
            shuffle: c.shuffle,
            seed: c.seed,
            residual: !c.no_residual,
            dtype: model.dtype.clone(),
        },
    })
}

/// Scores `dec` on the calibration blocks and wraps the table in a report.
pub fn run_scoring(
    src: &ModelSource,
    model_sha256: &str,
    dec: &Decoder,
    cal: &Calibration,
    json: bool,
) -> anyhow::Result<ScoreReport> {
    let opts = ScoreOptions {
        residual: cal.settings.residual,
        consecutive: true,
    };
    let t0 = Instant::now();
    let table = score(dec, &cal.blocks.blocks, &opts, &mut Bars::new(json))?;
    let seconds = t0.elapsed().as_secs_f64();
    Ok(ScoreReport {
        schema_version: llmdrop::report::scores::SCORES_SCHEMA,
        llmdrop_version: llmdrop::VERSION.into(),
        model_path: src.path().display().to_string(),
        model_sha256: model_sha256.into(),
        data_path: cal.data_path.display().to_string(),
        data_sha256: cal.blocks.hash.clone(),
        settings: cal.settings.clone(),
        threads: threads(),
        seconds,
        tokens_per_sec: table.tokens as f64 / seconds,
        gflops_per_sec: cal.blocks.blocks.len() as f64
            * llmdrop::bench::forward_flops(dec, cal.settings.seq_len)
            / seconds
            / 1e9,
        peak_rss_bytes: llmdrop::bench::peak_rss_bytes(),
        table,
    })
}

pub fn run(a: ScoreArgs) -> anyhow::Result<ExitCode> {
    let src = a.model.open()?;
    // outputs are checked before any work: never onto an input, never over a foreign file
    let mut inputs = Inputs::of_model(src.path());
    inputs.add("calibration data", &a.calib.data_path()?);
    dest::check(&a.out, Kind::ScoresFile, &inputs, false)?;
    if let Some(dir) = &a.plot {
        dest::check_folder(dir, &inputs)?;
        if dest::resolve(dir) == dest::resolve(&a.out) {
            anyhow::bail!("--plot and --out are the same path {}", dir.display());
        }
    }
    // the calibration tokens first: the tokenizer is freed before the weights arrive, so
    // the two never count together in the peak memory
    let cal = calibration(&a.calib, &a.model, &src.tokenizer()?)?;
    crate::memory::release_freed();
    let dec = src.load_decoder_for(
        &llmdrop::DropPlan::empty(),
        a.model.dtype()?,
        &candle_core::Device::Cpu,
        llmdrop::model::Outputs::HiddenStates,
    )?;
    // the load's transient copies (file blocks, dequantized tensors) go back too
    crate::memory::release_freed();
    let model_sha = llmdrop::io::hash::model_sha256(&src)?;
    let report = run_scoring(&src, &model_sha, &dec, &cal, a.json)?;
    report.write(&a.out, &inputs)?;
    if let Some(dir) = &a.plot {
        write_plots(&report.table, dir, &inputs)?;
    }
    if a.json {
        output::print_json("score", &report)?;
    } else {
        output::print_text(&render_table(&report))?;
        eprintln!("scores written to {}", a.out.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// The per-layer table: similarity and rank (1 = most redundant) of each kind.
pub fn render_table(r: &ScoreReport) -> String {
    let t = &r.table;
    let (rb, ra, rm) = (
        ScoreTable::ranks(&t.block),
        ScoreTable::ranks(&t.attn),
        ScoreTable::ranks(&t.mlp),
    );
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} calibration tokens ({} x {}), {:.0} tokens/s ({:.1} GFLOP/s), {} threads{}",
        t.tokens,
        r.settings.samples,
        r.settings.seq_len,
        r.tokens_per_sec,
        r.gflops_per_sec,
        r.threads,
        if t.residual { "" } else { ", without residual" }
    );
    let _ = writeln!(s, "layer  block sim  rank  attn sim  rank  mlp sim   rank");
    for i in 0..t.num_layers {
        let _ = writeln!(
            s,
            "{i:>5}  {:>9.6}  {:>4}  {:>8.6}  {:>4}  {:>8.6}  {:>4}",
            t.block[i], rb[i], t.attn[i], ra[i], t.mlp[i], rm[i]
        );
    }
    s
}

/// Writes the SVG plots into `dir` (created if needed; a file there is replaced only when
/// llmdrop wrote it).
pub fn write_plots(t: &ScoreTable, dir: &Path, inputs: &Inputs) -> anyhow::Result<()> {
    dest::check_folder(dir, inputs)?;
    std::fs::create_dir_all(dir).with_context(|| format!("{}", dir.display()))?;
    let min = t
        .block
        .iter()
        .chain(&t.attn)
        .chain(&t.mlp)
        .copied()
        .fold(1.0f64, f64::min);
    let y_min = ((min * 10.0).floor() / 10.0).max(0.0);
    let bars = svg::layer_bars(
        "Similarity per layer (higher = more redundant)",
        &[("block", &t.block), ("attention", &t.attn), ("MLP", &t.mlp)],
        y_min,
    );
    dest::write_file(
        &dir.join("similarity.svg"),
        Kind::Svg,
        inputs,
        bars.as_bytes(),
    )?;
    if let Some(c) = &t.consecutive {
        let hm = svg::heatmap("cos(h_i, h_i+n)", c, "start layer i", "gap n");
        dest::write_file(
            &dir.join("consecutive.svg"),
            Kind::Svg,
            inputs,
            hm.as_bytes(),
        )?;
    }
    Ok(())
}

use std::fmt::Write;
use std::process::ExitCode;

use clap::Args;
use llmdrop::bench::{bench, BenchOptions, BenchResult};
use serde::Serialize;

use crate::args::{threads, Ctx, DropArgs, ModelArgs};
use crate::output;

#[derive(Args)]
pub struct BenchArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    drop: DropArgs,
    /// Prompt lengths to measure, comma-separated.
    #[arg(long, default_value = "128", value_delimiter = ',')]
    context: Vec<usize>,
    /// Tokens to decode after each prompt.
    #[arg(long, default_value_t = 32)]
    generate: usize,
    /// Timed repetitions (after one warm-up).
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// With a drop plan: measure the original model too, in the same run, and print ratios.
    #[arg(long)]
    compare_original: bool,
    /// Also measure candle's dense matmul (2048^3) with the same threads, for comparison
    /// with the f32 FMA limit (which every run measures).
    #[arg(long)]
    peak: bool,
    /// Print a markdown table.
    #[arg(long, conflicts_with = "json")]
    markdown: bool,
}

#[derive(Serialize)]
struct BenchReport {
    model: String,
    dtype: String,
    /// The quantized-matmul kernel this CPU runs (quantized dtypes only).
    quant_kernel: Option<&'static str>,
    threads: usize,
    plan: llmdrop::DropPlan,
    weight_load_secs: f64,
    weight_bytes: u64,
    /// The unpruned model, measured in the same run (with --compare-original).
    original: Option<Vec<BenchResult>>,
    /// Per context (with --compare-original): the decode speedup the removed work predicts.
    ideal: Option<Vec<Ideal>>,
    /// This machine's f32 limit: fused multiply-adds on registers, all threads, measured
    /// in this run.
    fma_peak_gflops: f64,
    /// The share of the machine's CPU time the hypervisor gave to other guests while the
    /// model ran (Linux's `steal`; 0 on bare metal, None where it cannot be read): speeds
    /// measured while it was high are that much below what the CPU does.
    cpu_stolen_fraction: Option<f64>,
    /// What candle's dense matmul reaches (2048³).
    matmul_peak_gflops: Option<f64>,
    peak_rss_bytes: Option<u64>,
    results: Vec<BenchResult>,
}

/// One row per context (and per model with --compare-original), for reports.
fn markdown(r: &BenchReport) -> anyhow::Result<String> {
    let mut t = String::new();
    let kernel = r
        .quant_kernel
        .map(|k| format!(", kernel {k}"))
        .unwrap_or_default();
    writeln!(
        t,
        "`{}`, dtype {}{kernel}, {} thread(s), {:.1} MiB of weights; {} (f32 FMA limit {:.1} \
         GFLOP/s at these threads)\n",
        r.model,
        r.dtype,
        r.threads,
        r.weight_bytes as f64 / (1 << 20) as f64,
        llmdrop_kernels::machine::Machine::detect().summary(),
        r.fma_peak_gflops
    )?;
    writeln!(
        t,
        "| model | context | prefill tok/s | decode tok/s | KV cache MiB | KV slots |"
    )?;
    writeln!(t, "|---|---|---|---|---|---|")?;
    let row = |t: &mut String, name: &str, b: &BenchResult| -> std::fmt::Result {
        writeln!(
            t,
            "| {name} | {} | {:.1} ({:.1}-{:.1}) | {:.1} ({:.1}-{:.1}) | {:.2} | {} |",
            b.context,
            b.prefill_tokens_per_sec.median,
            b.prefill_tokens_per_sec.min,
            b.prefill_tokens_per_sec.max,
            b.decode_tokens_per_sec.median,
            b.decode_tokens_per_sec.min,
            b.decode_tokens_per_sec.max,
            b.kv_cache_bytes as f64 / (1 << 20) as f64,
            b.kv_slots
        )
    };
    let name = if r.plan.is_empty() { "model" } else { "pruned" };
    for (i, b) in r.results.iter().enumerate() {
        if let Some(o) = r.original.as_ref().and_then(|o| o.get(i)) {
            row(&mut t, "original", o)?;
        }
        row(&mut t, name, b)?;
    }
    if let Some(ideal) = &r.ideal {
        writeln!(
            t,
            "\n| context | decode speedup | ideal (bytes) | ideal (FLOPs) | of the bytes ideal |"
        )?;
        writeln!(t, "|---|---|---|---|---|")?;
        for i in ideal {
            writeln!(
                t,
                "| {} | {:.2}x | {:.2}x | {:.2}x | {:.0}% |",
                i.context,
                i.measured,
                i.by_bytes,
                i.by_flops,
                100.0 * i.of_bytes_ideal
            )?;
        }
    }
    Ok(t)
}

/// Decode speedup predicted by the cost model at the middle of the decoded tokens, and the
/// measured one as a fraction of it.
#[derive(Serialize)]
struct Ideal {
    context: usize,
    by_bytes: f64,
    by_flops: f64,
    measured: f64,
    /// measured / by_bytes: decode steps here are bound by memory traffic.
    of_bytes_ideal: f64,
}

fn ideal(
    full: &llmdrop::Decoder,
    pruned: &llmdrop::Decoder,
    orig: &BenchResult,
    ours: &BenchResult,
) -> Ideal {
    let pos = ours.context + ours.generate / 2;
    let (o, p) = (
        llmdrop::bench::decode_step_cost(full, pos),
        llmdrop::bench::decode_step_cost(pruned, pos),
    );
    let measured = ours.decode_tokens_per_sec.median
        / orig.decode_tokens_per_sec.median.max(f64::MIN_POSITIVE);
    let by_bytes = o.bytes / p.bytes;
    Ideal {
        context: ours.context,
        by_bytes,
        by_flops: o.flops / p.flops,
        measured,
        of_bytes_ideal: measured / by_bytes,
    }
}

pub fn run(a: BenchArgs, ctx: Ctx) -> anyhow::Result<ExitCode> {
    // (clap checks the conflict only when --json comes after the command name)
    if ctx.json && a.markdown {
        anyhow::bail!("--json and --markdown cannot be used together");
    }
    let plan = a.drop.plan();
    let t0 = std::time::Instant::now();
    let (src, full, _tok) = a.model.load(&llmdrop::DropPlan::empty(), ctx)?;
    let dec = full.pruned(&plan)?;
    let weight_load_secs = t0.elapsed().as_secs_f64();
    let run_all = |d: &llmdrop::Decoder| -> anyhow::Result<Vec<BenchResult>> {
        let mut out = Vec::new();
        for &context in &a.context {
            out.push(bench(
                d,
                &BenchOptions {
                    context,
                    generate: a.generate,
                    reps: a.reps,
                },
            )?);
        }
        Ok(out)
    };
    let original = if a.compare_original && !plan.is_empty() {
        Some(run_all(&full)?)
    } else {
        None
    };
    let cpu_before = llmdrop_kernels::steal::CpuTimes::now();
    let results = run_all(&dec)?;
    let cpu_stolen_fraction = cpu_before
        .zip(llmdrop_kernels::steal::CpuTimes::now())
        .and_then(|(a, b)| a.stolen_until(&b));
    let fma_peak_gflops = llmdrop_kernels::peak::fma_peak_gflops(50_000_000, 5);
    let matmul_peak_gflops = if a.peak {
        Some(llmdrop::bench::matmul_gflops(2048, 5)?)
    } else {
        None
    };
    let ideal = original.as_ref().map(|orig| {
        orig.iter()
            .zip(&results)
            .map(|(o, r)| ideal(&full, &dec, o, r))
            .collect()
    });
    let report = BenchReport {
        model: src.path().display().to_string(),
        dtype: a.model.dtype.name().to_string(),
        quant_kernel: dec
            .precision()
            .quant()
            .map(|_| llmdrop_kernels::Kernel::Auto.quant_name()),
        threads: threads(),
        plan,
        weight_load_secs,
        weight_bytes: dec.weight_bytes() as u64,
        original,
        ideal,
        fma_peak_gflops,
        cpu_stolen_fraction,
        matmul_peak_gflops,
        peak_rss_bytes: llmdrop::bench::peak_rss_bytes(),
        results,
    };
    if ctx.json {
        output::print_json("bench", &report)?;
        return Ok(ExitCode::SUCCESS);
    }
    if a.markdown {
        output::print_text(&markdown(&report)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = String::new();
    let kernel = report
        .quant_kernel
        .map(|k| format!(" (kernel {k})"))
        .unwrap_or_default();
    writeln!(
        t,
        "model {}  dtype {}{kernel}  threads {}",
        report.model, report.dtype, report.threads
    )?;
    writeln!(
        t,
        "context  prefill tok/s (min-max)     decode tok/s (min-max)    kv cache"
    )?;
    for r in &report.results {
        let p = &r.prefill_tokens_per_sec;
        let d = &r.decode_tokens_per_sec;
        writeln!(
            t,
            "{:>7}  {:>8.1} ({:.1}-{:.1})  {:>8.1} ({:.1}-{:.1})  {:.2} MiB in {} slots",
            r.context,
            p.median,
            p.min,
            p.max,
            d.median,
            d.min,
            d.max,
            r.kv_cache_bytes as f64 / (1 << 20) as f64,
            r.kv_slots
        )?;
    }
    if let Some(orig) = &report.original {
        writeln!(t, "original model, same run:")?;
        for (r, o) in report.results.iter().zip(orig) {
            writeln!(
                t,
                "{:>7}  prefill {:.1} tok/s (pruned {:.2}x)  decode {:.1} tok/s (pruned {:.2}x)  kv {:.2} MiB (pruned {:.4}x)",
                o.context,
                o.prefill_tokens_per_sec.median,
                r.prefill_tokens_per_sec.median / o.prefill_tokens_per_sec.median,
                o.decode_tokens_per_sec.median,
                r.decode_tokens_per_sec.median / o.decode_tokens_per_sec.median.max(f64::MIN_POSITIVE),
                o.kv_cache_bytes as f64 / (1 << 20) as f64,
                r.kv_cache_bytes as f64 / o.kv_cache_bytes.max(1) as f64
            )?;
        }
        for i in report.ideal.iter().flatten() {
            writeln!(
                t,
                "{:>7}  decode speedup {:.2}x; ideal from removed bytes {:.2}x, from removed FLOPs {:.2}x: {:.0}% of the bytes ideal",
                i.context,
                i.measured,
                i.by_bytes,
                i.by_flops,
                100.0 * i.of_bytes_ideal
            )?;
        }
    }
    let matmul = report
        .matmul_peak_gflops
        .map(|mm| format!("; candle matmul 2048^3: {mm:.1}"))
        .unwrap_or_default();
    writeln!(
        t,
        "f32 limit: {:.1} GFLOP/s (fused multiply-adds, {} threads){matmul}{}\nmachine: {}",
        report.fma_peak_gflops,
        report.threads,
        f32_call(),
        llmdrop_kernels::machine::Machine::detect().summary()
    )?;
    output::print_text(&t)?;
    Ok(ExitCode::SUCCESS)
}

/// `; f32 call 6x2 (measured: 12x1 took 1.11x the time of 6x2)` where f32 products ran.
fn f32_call() -> String {
    use llmdrop_kernels::gemm::tune::ChosenBy;
    let Some(c) = llmdrop_kernels::gemm::Blocking::choice() else {
        return String::new();
    };
    let by = match (c.chosen_by, c.rows12_over_rows6) {
        (ChosenBy::Measured, Some(r)) => format!("measured: 12x1 took {r:.2}x the time of 6x2"),
        (ChosenBy::Env, _) => "LLMDROP_GEMM_TILE".into(),
        _ => "the vendor's".into(),
    };
    format!("; f32 call {} ({by})", c.tile)
}

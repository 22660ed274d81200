//! `llmdrop bench` on a tiny model: every dtype runs, the reports carry what they claim,
//! and a pruned run compared with the original keeps exactly its kept share of the KV cache.

mod common;

use common::reports::{BenchReport, BenchResult};
use common::Run;
use llmdrop_testkit as testkit;

/// Runs `llmdrop ARGS` with one thread (many short runs: no thread pool to spin up).
fn llmdrop(args: &[&str]) -> Run {
    common::llmdrop(args).env("RAYON_NUM_THREADS", "1").run()
}

#[test]
fn bench_reports_every_dtype_and_the_kv_share() {
    let model = testkit::tiny_dir("llama");
    let m = model.to_str().unwrap();
    let base = [
        "bench",
        "--model",
        m,
        "--context",
        "8,16",
        "--generate",
        "3",
        "--reps",
        "1",
    ];
    let mut sizes = vec![];
    for dtype in ["f32", "bf16", "q8_0", "q4_k", "q4_1", "native"] {
        let mut args = base.to_vec();
        args.extend([
            "--dtype",
            dtype,
            "--drop-attn",
            "1",
            "--compare-original",
            "--json",
        ]);
        let r = llmdrop(&args);
        assert_eq!(r.code, 0, "{dtype}: {}", r.stderr);
        let v: BenchReport = r.json();
        assert_eq!(v.dtype, dtype);
        assert_eq!(
            v.quant_kernel.is_some(),
            dtype != "f32" && dtype != "bf16",
            "{dtype}"
        );
        let (ours, orig) = (&v.results[1], &v.original.as_ref().unwrap()[1]);
        assert_eq!(ours.context, 16);
        assert!(ours.decode_tokens_per_sec.median > 0.0);
        // 2 of 3 attention layers kept: exactly 2/3 of the cache
        let kv = |r: &BenchResult| r.kv_cache_bytes;
        assert_eq!(kv(ours) * 3, kv(orig) * 2, "{dtype}");
        assert_eq!(v.ideal.as_ref().unwrap().len(), 2);
        sizes.push((dtype, v.weight_bytes));
    }
    // f32 > bf16 > q8_0 > q4_1; native keeps the safetensors floats as f32
    let size = |d: &str| sizes.iter().find(|(x, _)| *x == d).unwrap().1;
    assert!(size("f32") > size("bf16") && size("bf16") > size("q8_0"));
    assert!(size("q8_0") > size("q4_1"));
    assert_eq!(size("native"), size("f32"));

    let mut args = base.to_vec();
    args.extend(["--dtype", "q8_0", "--markdown"]);
    let r = llmdrop(&args);
    r.assert_success();
    let out = &r.stdout;
    assert!(out.contains("| model | context | prefill tok/s"), "{out}");
    assert!(out.contains("kernel "), "{out}");
    assert!(
        out.contains("| model | 8 |") && out.contains("| model | 16 |"),
        "{out}"
    );

    let mut args = base.to_vec();
    args.extend(["--dtype", "q3_k"]);
    llmdrop(&args).assert_clean_error(&["q4_k, q4_1, native"]);
}

/// What /proc/cpuinfo says, read here independently of llmdrop: (model name, processors).
fn cpuinfo() -> Option<(String, usize)> {
    let text = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let name = text
        .lines()
        .find(|l| l.starts_with("model name"))?
        .split_once(':')?
        .1
        .trim()
        .to_string();
    let count = text.lines().filter(|l| l.starts_with("processor")).count();
    Some((name, count))
}

/// `score` of 2 x 32 tokens of `data` on `model`, the scores written to `out`.
fn score_args<'a>(model: &'a str, data: &'a str, out: &'a str) -> [&'a str; 11] {
    [
        "score",
        "--model",
        model,
        "--data",
        data,
        "--samples",
        "2",
        "--seq-len",
        "32",
        "--out",
        out,
    ]
}

#[test]
fn speed_reports_name_their_machine_and_its_fma_limit() {
    let model = testkit::tiny_dir("llama");
    let m = model.to_str().unwrap();
    let data = common::text().display().to_string();
    let tmp = tempfile::tempdir().unwrap();
    let scores = tmp.path().join("scores.json");
    let bench_args = ["bench", "--model", m, "--context", "8", "--generate", "1"];
    let score_args = score_args(m, &data, scores.to_str().unwrap());
    let text = llmdrop(&bench_args);
    assert_eq!(text.code, 0, "{}", text.stderr);
    let json = |args: &[&str]| -> serde_json::Value {
        let mut a = args.to_vec();
        a.push("--json");
        let r = llmdrop(&a);
        assert_eq!(r.code, 0, "{}", r.stderr);
        r.json()
    };
    let (bench, score) = (json(&bench_args), json(&score_args));
    for doc in [&bench, &score] {
        let machine = &doc["machine"];
        assert!(machine["logical_cpus"].as_u64().unwrap() >= 1, "{machine}");
        if let Some((name, count)) = cpuinfo() {
            assert_eq!(machine["cpu_model"], name.as_str());
            assert_eq!(machine["logical_cpus"], count);
        }
        let fma = doc["fma_peak_gflops"].as_f64().unwrap();
        assert!(fma.is_finite() && fma > 0.0, "{fma}");
    }
    if std::path::Path::new("/sys/devices/system/cpu/cpu0/cache/index0").exists() {
        let caches = bench["machine"]["caches"].as_array().unwrap();
        assert!(caches.iter().any(|c| c["level"] == 1), "{caches:?}");
    }
    let want =
        score["gflops_per_sec"].as_f64().unwrap() / score["fma_peak_gflops"].as_f64().unwrap();
    assert!((score["fraction_of_fma_peak"].as_f64().unwrap() - want).abs() <= 1e-12 * want.abs());
    // the CPU time stolen by the hypervisor, where Linux counts it: a share, and the
    // fraction of the limit read against the CPU the run had
    if std::fs::read_to_string("/proc/stat").is_ok_and(|s| s.starts_with("cpu ")) {
        for doc in [&bench, &score] {
            let stolen = doc["cpu_stolen_fraction"].as_f64().unwrap();
            assert!((0.0..1.0).contains(&stolen), "{stolen}");
        }
        let stolen = score["cpu_stolen_fraction"].as_f64().unwrap();
        let unstolen = score["fraction_of_fma_peak_unstolen"].as_f64().unwrap();
        assert!(
            (unstolen - want / (1.0 - stolen)).abs() <= 1e-12 * unstolen,
            "{score}"
        );
    }
    // f32 scoring has no bf16 limit; bf16-mixed has one where the CPU has a bf16 kernel
    assert!(score.get("bf16_peak_gflops").is_none(), "{score}");
    let mut mixed_args = score_args.to_vec();
    mixed_args.extend(["--dtype", "bf16-mixed"]);
    let mixed = json(&mixed_args);
    if llmdrop_kernels::caps().avx512_bf16() {
        let peak = mixed["bf16_peak_gflops"].as_f64().unwrap();
        assert!(peak.is_finite() && peak > 0.0, "{peak}");
        let want = mixed["gflops_per_sec"].as_f64().unwrap() / peak;
        let got = mixed["fraction_of_bf16_peak"].as_f64().unwrap();
        assert!((got - want).abs() <= 1e-12 * want.abs());
    } else {
        assert!(mixed.get("bf16_peak_gflops").is_none(), "{mixed}");
    }
    // the text report names the machine too
    assert!(text.stdout.contains("machine: "), "{}", text.stdout);
}

#[test]
fn the_f32_call_is_reported_and_moves_no_score() {
    let model = testkit::tiny_dir("llama");
    let data = common::text().display().to_string();
    let tmp = tempfile::tempdir().unwrap();
    let score = |tile: Option<&str>| -> serde_json::Value {
        let out = tmp
            .path()
            .join(format!("scores-{}.json", tile.unwrap_or("own")));
        let mut args = score_args(model.to_str().unwrap(), &data, out.to_str().unwrap()).to_vec();
        args.push("--json");
        // the developer's own measurement settings must not reach these runs
        let mut cmd = common::llmdrop(&args)
            .env("RAYON_NUM_THREADS", "1")
            .env_remove("LLMDROP_GEMM_TILE")
            .env_remove("LLMDROP_GEMM_KC")
            .env_remove("LLMDROP_GEMM_MC");
        if let Some(t) = tile {
            cmd = cmd.env("LLMDROP_GEMM_TILE", t);
        }
        let r = cmd.run();
        assert_eq!(r.code, 0, "{}", r.stderr);
        r.json()
    };
    let own = score(None);
    if !llmdrop_kernels::caps().avx512f() {
        // no packed f32 products: nothing chosen, nothing reported
        assert!(own.get("f32_gemm").is_none(), "{own}");
        return;
    }
    // timed on this core: the ratio it measured and the call that ratio picks
    let g = &own["f32_gemm"];
    assert_eq!(g["chosen_by"], "measured", "{g}");
    let ratio = g["rows12_over_rows6"].as_f64().unwrap();
    assert!(ratio.is_finite() && ratio > 0.0, "{g}");
    let vendor = own["machine"]["vendor"].as_str();
    let fallback = llmdrop_kernels::gemm::Shape::for_vendor(vendor);
    let want = llmdrop_kernels::gemm::tune::decide(ratio, fallback);
    assert_eq!(g["tile"], want.name(), "{g}");
    // either call named by LLMDROP_GEMM_TILE runs it, and the scores keep every bit
    for (tile, mc) in [("12x1", 384), ("6x2", 1032)] {
        let named = score(Some(tile));
        let g = &named["f32_gemm"];
        assert_eq!(g["tile"], tile, "{g}");
        assert_eq!(g["chosen_by"], "env", "{g}");
        assert!(g["rows12_over_rows6"].is_null(), "{g}");
        assert_eq!(g["mc"], mc, "{g}");
        assert_eq!(named["table"], own["table"], "{tile}");
    }
}

#[test]
fn a_measurement_setting_the_kernels_would_ignore_is_refused() {
    let model = testkit::tiny_dir("llama");
    let m = model.to_str().unwrap();
    let args = ["bench", "--model", m, "--context", "8", "--generate", "1"];
    for (name, value, says) in [
        ("LLMDROP_GEMM_TILE", "8x3", "the calls: 12x1, 6x2"),
        ("LLMDROP_GEMM_TILE", "6X2", "no such call"),
        (
            "LLMDROP_GEMM_KC",
            "lots",
            "not a whole number from 1 to 16777216",
        ),
        ("LLMDROP_GEMM_MC", "0", "not a whole number from 1"),
        // past the bound, where rounding up to whole blocks would overflow
        (
            "LLMDROP_GEMM_KC",
            "18446744073709551615",
            "not a whole number",
        ),
        ("LLMDROP_GEMM_MC", "16777217", "not a whole number"),
    ] {
        let r = common::llmdrop(&args).env(name, value).run();
        r.assert_clean_error(&[name, says]);
        assert!(r.stdout.is_empty(), "{name}={value}: {}", r.stdout);
    }
    // named well (or empty: unset), each runs
    for (name, value) in [
        ("LLMDROP_GEMM_TILE", "12x1"),
        ("LLMDROP_GEMM_TILE", ""),
        ("LLMDROP_GEMM_KC", "256"),
        ("LLMDROP_GEMM_MC", "96"),
        ("LLMDROP_GEMM_MC", "16777216"),
    ] {
        llmdrop_with(&args, name, value).assert_success();
    }
}

/// [`llmdrop`] with one more environment variable.
fn llmdrop_with(args: &[&str], name: &str, value: &str) -> Run {
    common::llmdrop(args)
        .env("RAYON_NUM_THREADS", "1")
        .env(name, value)
        .run()
}

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

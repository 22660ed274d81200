//! `llmdrop bench` on a tiny model: every dtype runs, the reports carry what they claim,
//! and a pruned run compared with the original keeps exactly its kept share of the KV cache.

use std::process::Command;

use llmdrop::testkit;

fn llmdrop(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_llmdrop"))
        .args(args)
        .env("RAYON_NUM_THREADS", "1")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
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
        let (code, out, err) = llmdrop(&args);
        assert_eq!(code, 0, "{dtype}: {err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["dtype"], dtype);
        assert_eq!(
            v["quant_kernel"].is_string(),
            dtype != "f32" && dtype != "bf16",
            "{dtype}"
        );
        let (ours, orig) = (&v["results"][1], &v["original"][1]);
        assert_eq!(ours["context"], 16);
        assert!(ours["decode_tokens_per_sec"]["median"].as_f64().unwrap() > 0.0);
        // 2 of 3 attention layers kept: exactly 2/3 of the cache
        let kv = |r: &serde_json::Value| r["kv_cache_bytes"].as_u64().unwrap();
        assert_eq!(kv(ours) * 3, kv(orig) * 2, "{dtype}");
        assert_eq!(v["ideal"].as_array().unwrap().len(), 2);
        sizes.push((dtype, v["weight_bytes"].as_u64().unwrap()));
    }
    // f32 > bf16 > q8_0 > q4_1; native keeps the safetensors floats as f32
    let size = |d: &str| sizes.iter().find(|(x, _)| *x == d).unwrap().1;
    assert!(size("f32") > size("bf16") && size("bf16") > size("q8_0"));
    assert!(size("q8_0") > size("q4_1"));
    assert_eq!(size("native"), size("f32"));

    let mut args = base.to_vec();
    args.extend(["--dtype", "q8_0", "--markdown"]);
    let (code, out, err) = llmdrop(&args);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("| model | context | prefill tok/s"), "{out}");
    assert!(out.contains("kernel "), "{out}");
    assert!(
        out.contains("| model | 8 |") && out.contains("| model | 16 |"),
        "{out}"
    );

    let mut args = base.to_vec();
    args.extend(["--dtype", "q3_k"]);
    let (code, _, err) = llmdrop(&args);
    assert_eq!(code, 2);
    assert!(
        err.starts_with("llmdrop: ") && err.contains("q4_k, q4_1, native"),
        "{err}"
    );
}

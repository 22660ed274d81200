//! `llmdrop logits`: every logit of every position, in f64 with every digit when the
//! model runs in the reference precision (`--dtype f64`).

mod common;

use common::{run, s};
use llmdrop_testkit as testkit;

fn logits(dtype: &str) -> Vec<f64> {
    let m = testkit::tiny_dir("llama");
    let r = run(&[
        "logits",
        "--model",
        s(&m),
        "--ids",
        "1,72,101,108",
        "--dtype",
        dtype,
    ]);
    r.assert_success();
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let rows = v["logits"].as_array().unwrap();
    assert_eq!(rows.len(), 4);
    rows.iter()
        .flat_map(|r| r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()))
        .collect()
}

#[test]
fn f64_logits_keep_their_digits() {
    let (f32s, f64s) = (logits("f32"), logits("f64"));
    assert_eq!(f32s.len(), f64s.len());
    // an f32 run prints f32 values; the f64 run values f32 cannot hold
    assert!(f32s.iter().all(|&x| f64::from(x as f32) == x));
    let wide = f64s.iter().filter(|&&x| f64::from(x as f32) != x).count();
    assert!(
        wide * 2 > f64s.len(),
        "{wide} of {} values are f32s",
        f64s.len()
    );
    // the same model: the two agree to f32's rounding, not bit for bit
    let d = f32s
        .iter()
        .zip(&f64s)
        .map(|(a, b)| (a - b).abs())
        .fold(0f64, f64::max);
    assert!(d > 0.0 && d < 1e-4, "max |f32 - f64| {d}");
}

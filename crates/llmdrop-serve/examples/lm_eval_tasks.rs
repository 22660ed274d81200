//! Writes llmdrop's multiple-choice tasks as lm-eval-harness custom tasks over local JSON
//! files, and llmdrop's own scores of them (per-example log-likelihoods, acc, acc_norm), so
//! that `scripts/serve/lm_eval_check.sh` can compare lm-eval through `llmdrop serve` with
//! `llmdrop eval` example by example.
//!
//!     cargo run --release -p llmdrop-serve --example lm_eval_tasks -- OUT_DIR [TASKS] [LIMIT]
//!
//! TASKS: `llmdrop eval`'s task specs, comma-separated (default: the default suite).
//! Writes `OUT_DIR/tasks/<task>.jsonl` (`{context, choices, gold}`), `OUT_DIR/tasks/<task>.yaml`
//! (lm-eval task `llmdrop_<task>`: `target_delimiter` " " when every continuation is
//! `" " + choice`, so lm-eval's `acc_norm` divides by the same choice lengths as llmdrop's)
//! and `OUT_DIR/llmdrop.json`. The model is the default one, f32, nothing dropped.

use std::path::PathBuf;

use llmdrop::eval::evaluate_task;
use llmdrop::pipeline::{load_tasks, ModelOptions, DEFAULT_TASKS};
use llmdrop::progress::NoProgress;
use llmdrop::DropPlan;
use serde_json::json;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let out = PathBuf::from(
        args.first()
            .ok_or("usage: lm_eval_tasks OUT_DIR [TASKS] [LIMIT]")?,
    );
    let specs: Vec<String> = args
        .get(1)
        .map_or(DEFAULT_TASKS, String::as_str)
        .split(',')
        .map(String::from)
        .collect();
    let limit = args.get(2).map(|l| l.parse()).transpose()?;
    let tasks = load_tasks(&specs, 0, 0, limit)?;
    let (src, dec, tok) = ModelOptions::default().load(&DropPlan::empty())?;
    let dir = out.join("tasks");
    std::fs::create_dir_all(&dir)?;
    let mut report = Vec::new();
    for t in &tasks {
        let name = t.name.replace([':', '/', '.'], "_");
        let mut lines = String::new();
        let mut spaced = true;
        for ex in &t.examples {
            let ctx = &ex.requests[0].0;
            if ex.requests.iter().any(|(c, _)| c != ctx) {
                return Err(format!("{}: an example varies its context", t.name).into());
            }
            spaced &= ex
                .requests
                .iter()
                .zip(&ex.choices)
                .all(|((_, cont), choice)| *cont == format!(" {choice}"));
            let conts: Vec<&str> = ex.requests.iter().map(|(_, c)| c.as_str()).collect();
            lines.push_str(&json!({"context": ctx, "choices": ex.choices, "continuations": conts, "gold": ex.gold}).to_string());
            lines.push('\n');
        }
        let data = dir.join(format!("{name}.jsonl"));
        std::fs::write(&data, lines)?;
        let (choice_field, delimiter) = if spaced {
            ("choices", " ")
        } else {
            ("continuations", "")
        };
        let yaml = format!(
            "task: llmdrop_{name}\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {}\ntest_split: test\noutput_type: multiple_choice\ndoc_to_text: context\ndoc_to_choice: {choice_field}\ndoc_to_target: gold\ntarget_delimiter: \"{delimiter}\"\nmetric_list:\n  - metric: acc\n    aggregation: mean\n    higher_is_better: true\n  - metric: acc_norm\n    aggregation: mean\n    higher_is_better: true\n",
            std::fs::canonicalize(&data)?.display()
        );
        std::fs::write(dir.join(format!("{name}.yaml")), yaml)?;
        let (score, results) = evaluate_task(&dec, &tok, t, &mut NoProgress)?;
        eprintln!(
            "{}: {} examples, acc {:.4}, acc_norm {:.4}",
            t.name, score.examples, score.acc, score.acc_norm
        );
        report.push(json!({
            "task": format!("llmdrop_{name}"),
            "spec": t.name,
            "acc": score.acc,
            "acc_norm": score.acc_norm,
            "examples": score.examples,
            "loglikelihoods": results.iter().map(|r| &r.loglikelihoods).collect::<Vec<_>>(),
        }));
    }
    std::fs::write(
        out.join("llmdrop.json"),
        serde_json::to_string_pretty(&json!({"model": src.path(), "tasks": report}))?,
    )?;
    Ok(())
}

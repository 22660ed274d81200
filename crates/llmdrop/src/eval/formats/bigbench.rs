//! BIG-bench `task.json` files.

use std::path::Path;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::eval::task::{McExample, Task};
use crate::io::text::read_utf8;

/// Reads a BIG-bench `task.json` (multiple-choice examples with `target_scores`), formatted
/// as BIG-bench's JSON tasks do: `task_prefix`, then `example_input_prefix` (default
/// `"\nQ: "`) + input, the choices appended after `choice_prefix` (default
/// `"\n  choice: "`, in sorted order) unless `append_choices_to_input` is false, then
/// `example_output_prefix` (default `"\nA: "`). The gold choice has the highest score.
pub fn read_bigbench(path: &Path, name: &str) -> Result<Task> {
    let text = read_utf8(path)?;
    let bad = |e: String| Error::data(path, None, e);
    let v: Value = serde_json::from_str(&text).map_err(|e| bad(format!("not valid JSON: {e}")))?;
    let s = |k: &str, d: &str| v.get(k).and_then(Value::as_str).unwrap_or(d).to_string();
    let task_prefix = s("task_prefix", "");
    let in_prefix = s("example_input_prefix", "\nQ: ");
    let out_prefix = s("example_output_prefix", "\nA: ");
    let choice_prefix = s("choice_prefix", "\n  choice: ");
    let append = v
        .get("append_choices_to_input")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let list = v
        .get("examples")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("no `examples` list".into()))?;
    let mut examples = Vec::new();
    for (i, e) in list.iter().enumerate() {
        let at = |m: String| bad(format!("example {}: {m}", i + 1));
        let Some(scores) = e.get("target_scores").and_then(Value::as_object) else {
            continue; // not multiple choice
        };
        let input = e
            .get("input")
            .and_then(Value::as_str)
            .ok_or_else(|| at("no `input`".into()))?;
        let mut choices: Vec<(String, f64)> = scores
            .iter()
            .map(|(k, s)| {
                Ok((
                    k.clone(),
                    s.as_f64()
                        .ok_or_else(|| at(format!("score of {k:?} is not a number")))?,
                ))
            })
            .collect::<Result<_>>()?;
        if choices.is_empty() {
            return Err(at("empty `target_scores`".into()));
        }
        choices.sort_by(|a, b| a.0.cmp(&b.0));
        let mut gold = 0;
        for (j, (_, sc)) in choices.iter().enumerate() {
            if *sc > choices[gold].1 {
                gold = j;
            }
        }
        let names: Vec<String> = choices.into_iter().map(|c| c.0).collect();
        let mut body = input.to_string();
        if append {
            body.push_str(&choice_prefix);
            body.push_str(&names.join(&choice_prefix));
        }
        let ctx = format!("{task_prefix}{in_prefix}{body}{out_prefix}");
        examples.push(McExample::shared_context(&ctx, names, gold));
    }
    if examples.is_empty() {
        return Err(bad("no multiple-choice examples".into()));
    }
    Ok(Task {
        name: name.into(),
        examples,
    })
}

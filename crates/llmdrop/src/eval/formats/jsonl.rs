//! JSON Lines task files, one example per line, in one of the [`LAYOUTS`].

use std::path::Path;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::eval::task::{McExample, Task};
use crate::io::text::read_utf8;

/// The JSON Lines layouts `read_jsonl` understands.
pub const LAYOUTS: &[&str] = &[
    "mc",
    "arc",
    "openbookqa",
    "hellaswag",
    "piqa",
    "boolq",
    "winogrande",
];

fn field<'a>(v: &'a Value, keys: &[&str]) -> std::result::Result<&'a Value, String> {
    keys.iter()
        .find_map(|k| v.get(*k))
        .ok_or_else(|| format!("missing field `{}`", keys.join("` or `")))
}

fn string(v: &Value, keys: &[&str]) -> std::result::Result<String, String> {
    field(v, keys)?
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("`{}` is not a string", keys[0]))
}

fn strings(v: &Value) -> std::result::Result<Vec<String>, String> {
    v.as_array()
        .ok_or("choices are not a list")?
        .iter()
        .map(|c| {
            c.as_str()
                .map(str::to_string)
                .ok_or_else(|| "a choice is not a string".to_string())
        })
        .collect()
}

fn index(v: &Value) -> std::result::Result<i64, String> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| "gold index is not an integer".into()),
        Value::String(s) => s
            .trim()
            .parse()
            .map_err(|_| format!("gold index {s:?} is not an integer")),
        Value::Bool(b) => Ok(*b as i64),
        _ => Err("gold index is not an integer".into()),
    }
}

/// lm-eval's hellaswag text cleanup.
fn hellaswag_clean(s: &str) -> String {
    let s = s.trim().replace(" [title]", ". ");
    let mut out = String::with_capacity(s.len());
    let mut depth = 0;
    for c in s.chars() {
        match c {
            '[' => depth += 1,
            ']' if depth > 0 => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out.replace("  ", " ")
}

fn lettered(v: &Value) -> std::result::Result<(Vec<String>, usize), String> {
    let ch = field(v, &["choices"])?;
    let texts = strings(field(ch, &["text"])?)?;
    let labels = strings(field(ch, &["label"])?)?;
    let key = string(v, &["answerKey"])?;
    let gold = labels
        .iter()
        .position(|l| *l == key)
        .ok_or_else(|| format!("answerKey {key:?} is not among the labels {labels:?}"))?;
    Ok((texts, gold))
}

fn example(layout: &str, v: &Value) -> std::result::Result<McExample, String> {
    let (ex, n) = match layout {
        "mc" => {
            let q = string(v, &["query", "context", "prompt"])?;
            let choices = strings(field(v, &["choices"])?)?;
            let gold = index(field(v, &["gold", "label", "answer"])?)?;
            let n = choices.len();
            (
                McExample::shared_context(&q, choices, gold.max(0) as usize),
                (gold, n),
            )
        }
        "arc" | "openbookqa" => {
            let (choices, gold) = lettered(v)?;
            let q = if layout == "arc" {
                format!("Question: {}\nAnswer:", string(v, &["question"])?)
            } else {
                string(v, &["question_stem"])?
            };
            let n = choices.len();
            (
                McExample::shared_context(&q, choices, gold),
                (gold as i64, n),
            )
        }
        "hellaswag" => {
            let ctx = format!(
                "{} {}",
                string(v, &["ctx_a"])?,
                capitalize(&string(v, &["ctx_b"])?)
            );
            let q = hellaswag_clean(&format!("{}: {ctx}", string(v, &["activity_label"])?));
            let choices: Vec<String> = strings(field(v, &["endings"])?)?
                .iter()
                .map(|e| hellaswag_clean(e))
                .collect();
            let gold = index(field(v, &["label"])?)?;
            let n = choices.len();
            (
                McExample::shared_context(&q, choices, gold.max(0) as usize),
                (gold, n),
            )
        }
        "piqa" => {
            let q = format!("Question: {}\nAnswer:", string(v, &["goal"])?);
            let choices = vec![string(v, &["sol1"])?, string(v, &["sol2"])?];
            let gold = index(field(v, &["label"])?)?;
            (
                McExample::shared_context(&q, choices, gold.max(0) as usize),
                (gold, 2),
            )
        }
        "boolq" => {
            let q = format!(
                "{}\nQuestion: {}?\nAnswer:",
                string(v, &["passage"])?,
                string(v, &["question"])?
            );
            let gold = index(field(v, &["label", "answer"])?)?;
            (
                McExample::shared_context(
                    &q,
                    vec!["no".into(), "yes".into()],
                    gold.max(0) as usize,
                ),
                (gold, 2),
            )
        }
        "winogrande" => {
            let s = string(v, &["sentence"])?;
            let i = s.find('_').ok_or("sentence has no `_`")?;
            let options = vec![string(v, &["option1"])?, string(v, &["option2"])?];
            let cont = format!(" {}", s[i + 1..].trim());
            let requests = options
                .iter()
                .map(|o| (format!("{}{o}", &s[..i]), cont.clone()))
                .collect();
            let gold = index(field(v, &["answer"])?)? - 1;
            (
                McExample {
                    requests,
                    choices: options,
                    gold: gold.max(0) as usize,
                },
                (gold, 2),
            )
        }
        other => {
            return Err(format!(
                "unknown layout `{other}` (known: {})",
                LAYOUTS.join(", ")
            ))
        }
    };
    let (gold, n) = n;
    if n == 0 {
        return Err("no choices".into());
    }
    if ex.choices.iter().any(|c| c.trim().is_empty()) {
        return Err("a choice is empty".into());
    }
    if gold < 0 || gold as usize >= n {
        return Err(format!("gold index {gold} is out of range for {n} choices"));
    }
    Ok(ex)
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// Reads a JSON Lines task file in `layout`; errors name the file and line.
pub fn read_jsonl(path: &Path, layout: &str, name: &str) -> Result<Task> {
    if !LAYOUTS.contains(&layout) {
        return Err(Error::Unknown {
            what: "task layout",
            name: layout.into(),
            expected: format!("known: {}", LAYOUTS.join(", ")),
        });
    }
    let text = read_utf8(path)?;
    let mut examples = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = |e: String| Error::data(path, Some(n + 1), e);
        let v: Value =
            serde_json::from_str(line).map_err(|e| at(format!("not valid JSON: {e}")))?;
        examples.push(example(layout, &v).map_err(at)?);
    }
    if examples.is_empty() {
        return Err(Error::data(path, None, "no examples"));
    }
    Ok(Task {
        name: name.into(),
        examples,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(lines: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("t.jsonl");
        std::fs::write(&p, lines).unwrap();
        (d, p)
    }

    #[test]
    fn layouts_build_the_lm_eval_prompts() {
        let (_d, p) = write(
            r#"{"goal": "Open a jar", "sol1": "twist the lid", "sol2": "eat the lid", "label": 0}"#,
        );
        let t = read_jsonl(&p, "piqa", "piqa").unwrap();
        assert_eq!(
            t.examples[0].requests[1],
            (
                "Question: Open a jar\nAnswer:".into(),
                " eat the lid".into()
            )
        );
        let (_d, p) = write(
            r#"{"sentence": "A is taller than B because _ grew.", "option1": "A", "option2": "B", "answer": "1"}"#,
        );
        let t = read_jsonl(&p, "winogrande", "w").unwrap();
        assert_eq!(
            t.examples[0].requests[1],
            ("A is taller than B because B".into(), " grew.".into())
        );
        assert_eq!(t.examples[0].gold, 0);
        let (_d, p) = write(
            r#"{"activity_label": "Baking", "ctx_a": "She mixes flour.", "ctx_b": "then [step] she", "endings": ["bakes it [title] Done", "x"], "label": "0"}"#,
        );
        let t = read_jsonl(&p, "hellaswag", "h").unwrap();
        assert_eq!(
            t.examples[0].requests[0].0,
            "Baking: She mixes flour. Then she"
        );
        assert_eq!(t.examples[0].choices[0], "bakes it. Done");
        let (_d, p) =
            write(r#"{"passage": "Cats purr.", "question": "do cats purr", "answer": true}"#);
        let t = read_jsonl(&p, "boolq", "b").unwrap();
        assert_eq!(t.examples[0].gold, 1);
        assert_eq!(
            t.examples[0].requests[0].0,
            "Cats purr.\nQuestion: do cats purr?\nAnswer:"
        );
    }

    #[test]
    fn bad_lines_name_file_and_line() {
        let (_d, p) =
            write("{\"query\": \"q\", \"choices\": [\"a\", \"b\"], \"gold\": 0}\n{not json}\n");
        let e = read_jsonl(&p, "mc", "t").unwrap_err().to_string();
        assert!(e.contains("t.jsonl:2: not valid JSON"), "{e}");
        let (_d, p) = write("{\"query\": \"q\", \"choices\": [\"a\", \"b\"], \"gold\": 2}\n");
        let e = read_jsonl(&p, "mc", "t").unwrap_err().to_string();
        assert!(
            e.contains("t.jsonl:1: gold index 2 is out of range for 2 choices"),
            "{e}"
        );
        let (_d, p) = write("{\"query\": \"q\", \"choices\": [], \"gold\": 0}\n");
        assert!(read_jsonl(&p, "mc", "t")
            .unwrap_err()
            .to_string()
            .contains("no choices"));
        let (_d, p) = write("{\"query\": \"q\", \"choices\": [\"a\", \" \"], \"gold\": 0}\n");
        assert!(read_jsonl(&p, "mc", "t")
            .unwrap_err()
            .to_string()
            .contains("a choice is empty"));
        let (_d, p) = write("{\"question\": \"q\"}\n");
        let e = read_jsonl(&p, "arc", "t").unwrap_err().to_string();
        assert!(e.contains("t.jsonl:1: missing field `choices`"), "{e}");
    }

    #[test]
    fn fewshot_never_shows_the_example_itself() {
        let lines: Vec<String> = (0..5)
            .map(|i| format!(r#"{{"query": "Q{i}:", "choices": ["a{i}", "b{i}"], "gold": 0}}"#))
            .collect();
        let (_d, p) = write(&lines.join("\n"));
        let t = read_jsonl(&p, "mc", "t").unwrap().with_fewshot(3, 7);
        for (i, ex) in t.examples.iter().enumerate() {
            let ctx = &ex.requests[0].0;
            assert!(ctx.ends_with(&format!("Q{i}:")));
            assert_eq!(ctx.matches(&format!("Q{i}:")).count(), 1, "{ctx}");
            assert_eq!(ctx.matches("\n\n").count(), 3);
        }
        assert_eq!(t, t.clone());
    }
}

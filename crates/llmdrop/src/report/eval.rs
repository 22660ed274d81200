//! The evaluation table: one column per model variant, rows per task and perplexity.

use std::fmt::Write;

use serde::{Deserialize, Serialize};

use crate::eval::{PplResult, TaskScore};
use crate::json_f64;
use crate::plan::DropPlan;

/// One evaluated model variant.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelColumn {
    pub name: String,
    pub model: String,
    pub plan: DropPlan,
    pub tasks: Vec<TaskScore>,
    pub ppl: Option<PplResult>,
    #[serde(with = "json_f64")]
    pub seconds: f64,
    /// How the model was run (held or layer-streamed) and the memory it was estimated at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<crate::budget::MemoryChoice>,
}

impl ModelColumn {
    /// Why this column's results are not a measurement (a perplexity or an accuracy that
    /// comes from non-finite model outputs), one line per result; None when all are finite.
    pub fn non_finite(&self) -> Option<String> {
        let lines: Vec<String> = self
            .tasks
            .iter()
            .filter_map(TaskScore::non_finite)
            .chain(self.ppl.as_ref().and_then(PplResult::non_finite))
            .map(|l| format!("{}: {l}", self.name))
            .collect();
        (!lines.is_empty()).then(|| lines.join("\n"))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalReport {
    pub llmdrop_version: String,
    pub model_sha256: String,
    pub threads: usize,
    pub dtype: String,
    pub shots: usize,
    pub seed: u64,
    pub limit: Option<usize>,
    pub ppl_data: Option<String>,
    pub columns: Vec<ModelColumn>,
}

impl EvalReport {
    /// Why some results are not a measurement (see [`ModelColumn::non_finite`]); None when
    /// every perplexity and accuracy is finite.
    pub fn non_finite(&self) -> Option<String> {
        let lines: Vec<String> = self
            .columns
            .iter()
            .filter_map(ModelColumn::non_finite)
            .collect();
        (!lines.is_empty()).then(|| lines.join("\n"))
    }
}

fn pct(x: f64) -> String {
    format!("{:.1}", 100.0 * x)
}

impl EvalReport {
    /// Rows: `task acc`, `task acc_norm` (value ± stderr, in %), then perplexity; a mean
    /// accuracy row when there are several tasks.
    fn rows(&self) -> (Vec<String>, Vec<Vec<String>>) {
        let mut names = Vec::new();
        let mut cells: Vec<Vec<String>> = Vec::new();
        let first = match self.columns.first() {
            Some(c) => c,
            None => return (names, cells),
        };
        for (ti, t) in first.tasks.iter().enumerate() {
            for (label, get) in [
                (
                    "acc",
                    (|s: &TaskScore| (s.acc, s.acc_stderr)) as fn(&TaskScore) -> (f64, f64),
                ),
                ("acc_norm", |s: &TaskScore| (s.acc_norm, s.acc_norm_stderr)),
            ] {
                names.push(format!("{} {label} (chance {})", t.task, pct(t.chance)));
                cells.push(
                    self.columns
                        .iter()
                        .map(|c| {
                            let (v, e) = get(&c.tasks[ti]);
                            format!("{} ± {}", pct(v), pct(e))
                        })
                        .collect(),
                );
            }
        }
        if first.tasks.len() > 1 {
            names.push("mean acc".into());
            cells.push(self.columns.iter().map(|c| pct(mean_acc(c))).collect());
        }
        if first.ppl.is_some() {
            names.push("perplexity".into());
            cells.push(
                self.columns
                    .iter()
                    .map(|c| {
                        c.ppl
                            .as_ref()
                            .map_or("-".into(), |p| format!("{:.3}", p.ppl))
                    })
                    .collect(),
            );
        }
        (names, cells)
    }

    pub fn to_markdown(&self) -> String {
        let (names, cells) = self.rows();
        let mut s = String::new();
        let _ = write!(s, "| |");
        for c in &self.columns {
            let _ = write!(s, " {} |", c.name);
        }
        let _ = write!(s, "\n|---|");
        for _ in &self.columns {
            let _ = write!(s, "---|");
        }
        s.push('\n');
        for (n, row) in names.iter().zip(&cells) {
            let _ = writeln!(s, "| {n} | {} |", row.join(" | "));
        }
        s
    }

    pub fn to_text(&self) -> String {
        let (names, cells) = self.rows();
        let w0 = names
            .iter()
            .map(|n| n.chars().count())
            .max()
            .unwrap_or(0)
            .max(4);
        let widths: Vec<usize> = self
            .columns
            .iter()
            .enumerate()
            .map(|(j, c)| {
                cells
                    .iter()
                    .map(|r| r[j].len())
                    .chain([c.name.len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut s = String::new();
        let _ = write!(s, "{:w0$}", "");
        for (c, w) in self.columns.iter().zip(&widths) {
            let _ = write!(s, "  {:>w$}", c.name, w = w);
        }
        s.push('\n');
        for (n, row) in names.iter().zip(&cells) {
            let _ = write!(s, "{n:w0$}");
            for (v, w) in row.iter().zip(&widths) {
                let _ = write!(s, "  {v:>w$}", w = w);
            }
            s.push('\n');
        }
        s
    }
}

/// Mean accuracy over a column's tasks.
pub fn mean_acc(c: &ModelColumn) -> f64 {
    if c.tasks.is_empty() {
        return 0.0;
    }
    c.tasks.iter().map(|t| t.acc).sum::<f64>() / c.tasks.len() as f64
}

//! The sweep: quality against modules dropped, per strategy; a resumable results file,
//! a markdown report and SVG line plots.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::{Deserialize, Serialize};

use super::eval::{mean_acc, ModelColumn};

/// Everything the sweep's results depend on; results are reused only when this matches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepKey {
    pub model_sha256: String,
    pub scores_data_sha256: String,
    pub score_settings: super::ScoreSettings,
    pub tasks: Vec<String>,
    pub shots: usize,
    pub limit: Option<usize>,
    pub ppl_data_sha256: Option<String>,
    pub ppl_seq_len: usize,
    pub keep_first: usize,
    pub keep_last: usize,
}

/// Results so far: `"strategy:k"` -> column.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SweepResults {
    pub schema_version: u32,
    pub key: SweepKey,
    pub results: BTreeMap<String, ModelColumn>,
}

/// Label of a sweep point.
pub fn point(strategy: &str, k: usize) -> String {
    format!("{strategy}:{k}")
}

impl SweepResults {
    /// Why some results are not a measurement, one `label: reason` line per point; None
    /// when every perplexity and accuracy is finite.
    pub fn non_finite(&self) -> Option<String> {
        let failed: Vec<String> = self
            .results
            .iter()
            .filter_map(|(label, col)| col.non_finite().map(|m| format!("{label}: {m}")))
            .collect();
        (!failed.is_empty()).then(|| failed.join("\n"))
    }

    fn series(
        &self,
        strategies: &[String],
        ks: &[usize],
        f: impl Fn(&ModelColumn) -> Option<f64>,
    ) -> Vec<(String, Vec<(f64, f64)>)> {
        strategies
            .iter()
            .map(|s| {
                let pts =
                    ks.iter()
                        .filter_map(|&k| {
                            let c = self.results.get(&point(s, k)).or_else(|| {
                                (k == 0).then(|| self.results.get("none:0")).flatten()
                            })?;
                            f(c).map(|v| (k as f64, v))
                        })
                        .collect();
                (s.clone(), pts)
            })
            .collect()
    }

    /// Markdown: one table per strategy (k, plan, perplexity, mean accuracy, each task).
    pub fn to_markdown(&self, strategies: &[String], ks: &[usize]) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "# llmdrop sweep\n");
        let _ =
            writeln!(
            s,
            "Model sha256 `{}`; calibration blocks sha256 `{}` ({} x {} tokens); tasks: {}{}.\n",
            self.key.model_sha256,
            self.key.scores_data_sha256,
            self.key.score_settings.samples,
            self.key.score_settings.seq_len,
            self.key.tasks.join(", "),
            self.key.limit.map(|l| format!(" (first {l} examples each)")).unwrap_or_default()
        );
        let _ = writeln!(s, "k counts what the strategy drops: blocks (block), attention layers (attn), MLP layers (mlp), modules of either kind (joint).\n");
        for st in strategies {
            let _ = writeln!(s, "## {st}\n");
            let first = ks.iter().find_map(|&k| self.column(st, k));
            let task_names: Vec<String> = first
                .map(|c| c.tasks.iter().map(|t| t.task.clone()).collect())
                .unwrap_or_default();
            let _ = write!(s, "| k | dropped | perplexity | mean acc |");
            for t in &task_names {
                let _ = write!(s, " {t} |");
            }
            let _ = write!(s, "\n|---|---|---|---|");
            for _ in &task_names {
                let _ = write!(s, "---|");
            }
            s.push('\n');
            for &k in ks {
                let Some(c) = self.column(st, k) else {
                    continue;
                };
                let list = |v: &std::collections::BTreeSet<usize>| {
                    v.iter()
                        .map(|i| i.to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                };
                let dropped = match (c.plan.attn.is_empty(), c.plan.mlp.is_empty()) {
                    (true, true) => "-".to_string(),
                    _ => format!("attn [{}] mlp [{}]", list(&c.plan.attn), list(&c.plan.mlp)),
                };
                let ppl = c
                    .ppl
                    .as_ref()
                    .map_or("-".into(), |p| format!("{:.3}", p.ppl));
                let _ = write!(
                    s,
                    "| {k} | {dropped} | {ppl} | {:.1} |",
                    100.0 * mean_acc(c)
                );
                for t in &c.tasks {
                    let _ = write!(s, " {:.1} ± {:.1} |", 100.0 * t.acc, 100.0 * t.acc_stderr);
                }
                s.push('\n');
            }
            s.push('\n');
        }
        s
    }

    fn column(&self, strategy: &str, k: usize) -> Option<&ModelColumn> {
        self.results.get(&point(strategy, k)).or_else(|| {
            if k == 0 {
                self.results.get("none:0")
            } else {
                None
            }
        })
    }

    /// Line plots: perplexity (log scale) and mean accuracy against k.
    pub fn plots(&self, strategies: &[String], ks: &[usize]) -> (String, String) {
        let ppl = self.series(strategies, ks, |c| c.ppl.as_ref().map(|p| p.ppl.ln()));
        let acc = self.series(strategies, ks, |c| {
            (!c.tasks.is_empty()).then(|| 100.0 * mean_acc(c))
        });
        (
            super::svg::lines("ln(perplexity) vs modules dropped", "k", "ln ppl", &ppl),
            super::svg::lines("mean accuracy (%) vs modules dropped", "k", "acc %", &acc),
        )
    }
}

//! Typed forms of the JSON documents `llmdrop` prints (`--json`) and writes (scores files,
//! sweep results, an exported model's `config.json`), holding the fields the tests check.
//!
//! Fields the tests do not read are ignored rather than refused (no `deny_unknown_fields`):
//! a report may grow without breaking a test, while a field a test reads that is missing or
//! of another type fails the parse.

use std::collections::BTreeMap;
use std::path::Path;

use llmdrop::DropPlan;
use serde::de::DeserializeOwned;
use serde::Deserialize;

/// `text` read as `T`; the text is shown when it is not a `T`.
#[track_caller]
pub fn parse<T: DeserializeOwned>(text: &str) -> T {
    serde_json::from_str(text)
        .unwrap_or_else(|e| panic!("not a {}: {e}\n{text}", std::any::type_name::<T>()))
}

/// The file at `path` read as `T`.
#[track_caller]
pub fn read<T: DeserializeOwned>(path: &Path) -> T {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    parse(&text)
}

/// `llmdrop score --json`, and the scores file (`score --out`, `drop --scores`).
#[derive(Debug, Deserialize)]
pub struct ScoreReport {
    pub schema_version: u32,
    pub model_sha256: String,
    pub data_sha256: String,
    pub table: ScoreTable,
}

/// The similarity table. Every field takes part in equality: the fields the tests name are
/// typed, the others are kept as they are in `rest`.
#[derive(Debug, Deserialize, PartialEq)]
pub struct ScoreTable {
    pub num_layers: usize,
    pub tokens: u64,
    /// One similarity per layer.
    pub attn: Vec<Similarity>,
    /// Row `i`: dropping `i + 1` consecutive blocks, one entry per start layer.
    pub consecutive: Vec<Vec<Similarity>>,
    #[serde(flatten)]
    pub rest: BTreeMap<String, serde_json::Value>,
}

/// A similarity: a number, or `"NaN"` / `"inf"` / `"-inf"` written as a string.
#[derive(Debug, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Similarity {
    Number(f64),
    NonFinite(String),
}

/// `llmdrop drop --json`.
#[derive(Debug, Deserialize)]
pub struct DropReport {
    pub plan: DropPlan,
    /// max |Δlogit| between the reloaded output and the in-memory pruned model.
    pub reload_max_abs_diff: f64,
}

/// `config.json` of an `hf-llmdrop` export (`drop --out`, `export --format hf-llmdrop`).
#[derive(Debug, Deserialize)]
pub struct ExportedConfig {
    pub model_type: String,
    pub drop_attn_list: Vec<usize>,
    pub drop_mlp_list: Vec<usize>,
}

/// `llmdrop generate --json`.
#[derive(Debug, Deserialize)]
pub struct GenerateReport {
    pub text: String,
    pub tokens: Vec<u32>,
    pub threads: usize,
    pub dtype: String,
}

/// `llmdrop eval --json`: one column per variant (the original first).
#[derive(Debug, Deserialize)]
pub struct EvalReport {
    pub columns: Vec<Variant>,
}

/// One evaluated model variant (an eval column, a sweep result).
#[derive(Debug, Deserialize)]
pub struct Variant {
    pub name: String,
    pub plan: Plan,
    pub tasks: Vec<TaskResult>,
    /// With perplexity text only.
    pub ppl: Option<Perplexity>,
}

/// A drop plan as a report lists it (a [`DropPlan`] where the test needs one).
#[derive(Debug, Deserialize, PartialEq)]
pub struct Plan {
    pub attn: Vec<usize>,
    pub mlp: Vec<usize>,
}

#[derive(Debug, Deserialize)]
pub struct TaskResult {
    pub task: String,
    pub examples: u64,
    pub acc: f64,
}

#[derive(Debug, Deserialize)]
pub struct Perplexity {
    pub ppl: f64,
    /// Total negative log-likelihood.
    pub nll: f64,
    pub windows: u64,
}

/// `results.json` of `llmdrop sweep --out`: the variants by `strategy:n`.
#[derive(Debug, Deserialize)]
pub struct SweepResults {
    pub results: BTreeMap<String, Variant>,
}

/// `llmdrop bench --json`.
#[derive(Debug, Deserialize)]
pub struct BenchReport {
    pub dtype: String,
    /// The quantized-matmul kernel (quantized dtypes only).
    pub quant_kernel: Option<String>,
    pub weight_bytes: u64,
    pub results: Vec<BenchResult>,
    /// The unpruned model (with `--compare-original`).
    pub original: Option<Vec<BenchResult>>,
    /// The predicted speedup per context (with `--compare-original`).
    pub ideal: Option<Vec<Ideal>>,
}

/// One context length measured.
#[derive(Debug, Deserialize)]
pub struct BenchResult {
    pub context: usize,
    pub decode_tokens_per_sec: Spread,
    pub kv_cache_bytes: u64,
}

#[derive(Debug, Deserialize)]
pub struct Spread {
    pub min: f64,
    pub median: f64,
    pub max: f64,
}

#[derive(Debug, Deserialize)]
pub struct Ideal {
    pub context: usize,
}

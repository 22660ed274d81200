//! Task readers: lm-eval-style JSON Lines (with templates for common HF dataset exports)
//! and BIG-bench `task.json`.
//!
//! JSON Lines layouts, one example per line (`--tasks LAYOUT:FILE`):
//! - `mc` (default): `{"query": str, "choices": [str], "gold": int}` (`context` or `prompt`
//!   may stand for `query`); continuations are `" " + choice`.
//! - `arc`, `openbookqa`: HF `ai2_arc` / `openbookqa` rows (`question` or `question_stem`,
//!   `choices: {text, label}`, `answerKey`); prompt `Question: {q}\nAnswer:` (arc) or the
//!   stem (openbookqa), as lm-eval.
//! - `hellaswag`: HF rows (`activity_label`, `ctx_a`, `ctx_b`, `endings`, `label`), lm-eval's
//!   preprocessing.
//! - `piqa`: `goal`, `sol1`, `sol2`, `label`; prompt `Question: {goal}\nAnswer:`.
//! - `boolq`: `passage`, `question`, `label` (0/1) or `answer` (bool); choices no / yes.
//! - `winogrande`: `sentence` with `_`, `option1`, `option2`, `answer` ("1"/"2"); the
//!   option fills the context, the rest of the sentence is the shared continuation.

mod bigbench;
mod jsonl;

pub use bigbench::read_bigbench;
pub use jsonl::{read_jsonl, LAYOUTS};

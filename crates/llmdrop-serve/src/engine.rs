//! The model worker: one thread owns the forward passes (the decoder spreads each over
//! rayon's pool), takes jobs from a bounded queue and answers with [`Event`]s.
//!
//! Scoring jobs (`max_tokens` 0 or 1: lm-eval's log-likelihood requests) run their prompts
//! in groups that share a prefix: the prefix once into a KV cache, the rest of every prompt
//! as one right-padded batch on top of it (a causal model never looks at the padding), as
//! `llmdrop eval` scores the choices of one question. Generation runs prompt by prompt with
//! the KV cache.

use std::sync::Arc;

use candle_core::Tensor;
use llmdrop::{Decoder, Logits, NoProbe};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::mpsc;

use crate::error::ApiError;
use crate::model::Model;

/// Positions per forward pass of a long prompt (bounds the logits held at once).
const PREFILL_CHUNK: usize = 256;
/// Most prompts run as one batch on a shared prefix.
const MAX_GROUP: usize = 64;
/// Most logits (floats) one batched pass may produce.
const MAX_BATCH_LOGITS: usize = 32 << 20;

/// How the next token is chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampling {
    /// 0: greedy (the first of equal maxima, as torch.argmax).
    pub temperature: f64,
    /// Nucleus: the smallest set of most likely tokens whose probability reaches `top_p`.
    pub top_p: f64,
    /// Only the `top_k` most likely tokens (0: all).
    pub top_k: usize,
    /// Prompt i of a request samples with seed `seed + i`.
    pub seed: u64,
}

/// What one job runs on every prompt.
#[derive(Debug, Clone)]
pub struct Params {
    pub max_tokens: usize,
    /// Send the prompt's tokens (with their log-probabilities when `logprobs`).
    pub echo: bool,
    /// Top log-probabilities per position (0: only the token's own).
    pub logprobs: Option<usize>,
    pub sampling: Sampling,
    pub stop: Vec<String>,
    /// Token ids that end generation (the model's EOS unless `ignore_eos`); not part of the text.
    pub stop_ids: Vec<u32>,
    pub skip_special: bool,
}

/// A job: prompts (token ids, each within the model's positions and vocabulary).
pub struct Job {
    pub prompts: Vec<Vec<u32>>,
    pub params: Params,
    pub events: mpsc::UnboundedSender<Event>,
}

/// A token with its log-probability and the most likely alternatives at its position.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenInfo {
    pub id: u32,
    /// The token decoded alone (special tokens kept).
    pub text: String,
    /// None for the first prompt token (nothing predicts it) or when not asked.
    pub logprob: Option<f64>,
    /// Most likely first: (id, text, log-probability).
    pub top: Vec<(u32, String, f64)>,
}

/// Why a choice ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// EOS, a stop token or a stop string.
    Stop,
    /// `max_tokens`, or the end of the model's positions.
    Length,
}

impl Finish {
    pub fn as_str(self) -> &'static str {
        match self {
            Finish::Stop => "stop",
            Finish::Length => "length",
        }
    }
}

/// What the worker reports, per prompt (`index`) in order: `Prompt` (with echo), `Token`s,
/// `Done`. `Failed` ends the job.
#[derive(Debug, Clone)]
pub enum Event {
    Prompt {
        index: usize,
        tokens: Vec<TokenInfo>,
    },
    Token {
        index: usize,
        /// New text this token releases ("" while a stop string may be starting, or a
        /// character is incomplete).
        text: String,
        token: TokenInfo,
    },
    Done {
        index: usize,
        finish: Finish,
        prompt_tokens: usize,
        completion_tokens: usize,
    },
    Failed(ApiError),
}

/// Runs jobs until every sender of `rx` is gone.
pub fn run_worker(model: Arc<Model>, mut rx: mpsc::Receiver<Job>) {
    while let Some(job) = rx.blocking_recv() {
        let events = job.events.clone();
        if events.is_closed() {
            continue; // the client left while the job waited
        }
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_job(&model, &job)));
        let failure = match r {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e),
            Err(p) => {
                let what = p
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| p.downcast_ref::<&str>().copied())
                    .unwrap_or("a panic");
                Some(ApiError::internal(format!("the model failed: {what}")))
            }
        };
        if let Some(e) = failure {
            let _ = events.send(Event::Failed(e));
        }
    }
}

/// The client went away: stop working on its job.
struct Gone;

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(format!("the model failed: {e}"))
}

fn run_job(model: &Model, job: &Job) -> Result<(), ApiError> {
    let r = if job.params.max_tokens <= 1 {
        score_job(model, job)
    } else {
        generate_job(model, job)
    };
    match r {
        Ok(()) | Err(Err(Gone)) => Ok(()),
        Err(Ok(e)) => Err(e),
    }
}

/// An error to report, or the client gone.
type Step<T> = Result<T, Result<ApiError, Gone>>;

fn send(job: &Job, e: Event) -> Step<()> {
    job.events.send(e).map_err(|_| Err(Gone))
}

fn fail<T>(e: impl std::fmt::Display) -> Step<T> {
    Err(Ok(internal(e)))
}

/// Log-softmax of one row of logits, with the most likely ids.
struct Row<'a> {
    row: &'a [f32],
    max: f64,
    lse: f64,
}

impl<'a> Row<'a> {
    fn new(row: &'a [f32]) -> Self {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let sum: f64 = row.iter().map(|&x| (x as f64 - max).exp()).sum();
        Self {
            row,
            max,
            lse: sum.ln(),
        }
    }

    /// `log_softmax(row)[i]` in f64 (as `llmdrop eval` sums it).
    fn logprob(&self, i: u32) -> f64 {
        self.row[i as usize] as f64 - self.max - self.lse
    }

    /// The `n` most likely ids, most likely first (lower id first on ties).
    fn top(&self, n: usize) -> Vec<u32> {
        if n == 0 {
            return vec![];
        }
        let by = |a: &u32, b: &u32| {
            self.row[*b as usize]
                .total_cmp(&self.row[*a as usize])
                .then(a.cmp(b))
        };
        if n == 1 {
            return vec![argmax(self.row)];
        }
        let mut ids: Vec<u32> = (0..self.row.len() as u32).collect();
        let n = n.min(ids.len());
        if n < ids.len() {
            ids.select_nth_unstable_by(n - 1, by);
            ids.truncate(n);
        }
        ids.sort_by(by);
        ids
    }
}

fn token_text(model: &Model, id: u32) -> String {
    model.tokenizer.decode(&[id], true).unwrap_or_default()
}

/// `id` as predicted by `row`, with `top` alternatives (None: no log-probabilities).
fn info(model: &Model, row: &[f32], id: u32, top: Option<usize>) -> TokenInfo {
    let text = token_text(model, id);
    let Some(n) = top else {
        return TokenInfo {
            id,
            text,
            logprob: None,
            top: vec![],
        };
    };
    let r = Row::new(row);
    TokenInfo {
        id,
        text,
        logprob: Some(r.logprob(id)),
        top: r
            .top(n)
            .into_iter()
            .map(|t| (t, token_text(model, t), r.logprob(t)))
            .collect(),
    }
}

/// The infos of `targets[i]` as predicted by `rows[i]`, rows spread over rayon's pool (a
/// log-softmax over the vocabulary each).
fn infos(model: &Model, rows: &[Vec<f32>], targets: &[u32], top: usize) -> Vec<TokenInfo> {
    use rayon::prelude::*;
    rows.par_iter()
        .zip(targets.par_iter())
        .map(|(row, &t)| info(model, row, t, Some(top)))
        .collect()
}

/// The first prompt token: nothing predicts it.
fn first_info(model: &Model, id: u32) -> TokenInfo {
    TokenInfo {
        id,
        text: token_text(model, id),
        logprob: None,
        top: vec![],
    }
}

fn ids_tensor(dec: &Decoder, rows: Vec<Vec<u32>>) -> Step<Tensor> {
    Tensor::new(rows, dec.device()).or_else(fail)
}

/// What a prefill keeps of its logits.
#[derive(Clone, Copy, PartialEq)]
enum Keep {
    /// Every token's info (log-probabilities with this many alternatives) and the last row.
    Infos(usize),
    /// Only the last row.
    Last,
    /// Nothing (the cache is what is wanted).
    Nothing,
}

/// Runs `ids` into `cache` in chunks. Returns the infos of `ids[1..]` (for
/// [`Keep::Infos`]) and the last position's logits (unless [`Keep::Nothing`]).
fn prefill(
    model: &Model,
    cache: &mut llmdrop::KvCache,
    ids: &[u32],
    keep: Keep,
) -> Step<(Vec<TokenInfo>, Vec<f32>)> {
    let dec = &model.decoder;
    let mut infos = Vec::new();
    let mut last = Vec::new();
    let mut start = 0;
    while start < ids.len() {
        let end = (start + PREFILL_CHUNK).min(ids.len());
        let is_last = end == ids.len();
        let which = match keep {
            Keep::Infos(_) => Logits::All,
            Keep::Last if is_last => Logits::Last,
            _ => Logits::None,
        };
        let t = ids_tensor(dec, vec![ids[start..end].to_vec()])?;
        let out = dec
            .forward(&t, Some(cache), &mut NoProbe, which)
            .or_else(fail)?;
        if let Some(out) = out {
            let rows = out
                .squeeze(0)
                .and_then(|o| o.to_vec2::<f32>())
                .or_else(fail)?;
            if let Keep::Infos(n) = keep {
                // row r predicts ids[start + r + 1]
                let targets = &ids[(start + 1).min(ids.len())..(end + 1).min(ids.len())];
                infos.extend(self::infos(model, &rows[..targets.len()], targets, n));
            }
            if is_last {
                last = rows.into_iter().next_back().unwrap_or_default();
            }
        }
        start = end;
    }
    Ok((infos, last))
}

/// What scoring one prompt gives: its tokens' infos (echo) and the next-token logits.
#[derive(Default)]
struct Scored {
    infos: Vec<TokenInfo>,
    last: Vec<f32>,
}

/// A group of prompts run together: `shared` leading tokens common to all (0: run alone).
struct Group {
    members: Vec<usize>,
    shared: usize,
}

fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// Groups prompts that share a prefix, when running the prefix once and the rest as one
/// padded batch costs no more positions than running each prompt alone. Every member keeps
/// at least one token beyond the shared prefix.
fn plan_groups(prompts: &[Vec<u32>], vocab: usize) -> Vec<Group> {
    let mut order: Vec<usize> = (0..prompts.len()).collect();
    order.sort_by(|&a, &b| prompts[a].cmp(&prompts[b]));
    let mut groups: Vec<Group> = Vec::new();
    let mut cur = Group {
        members: vec![],
        shared: 0,
    };
    for &i in &order {
        if cur.members.is_empty() {
            cur.members.push(i);
            continue;
        }
        // sorted: the first and the newest member share the group's shortest prefix
        let first = &prompts[cur.members[0]];
        let min_len = cur
            .members
            .iter()
            .map(|&m| prompts[m].len())
            .chain([prompts[i].len()])
            .min()
            .unwrap_or(0);
        let shared = common_prefix(first, &prompts[i]).min(min_len.saturating_sub(1));
        let n = cur.members.len() + 1;
        let lens = cur
            .members
            .iter()
            .map(|&m| prompts[m].len())
            .chain([prompts[i].len()]);
        let alone: usize = lens.clone().sum();
        let width = lens.map(|l| l - shared).max().unwrap_or(0);
        let fits = n <= MAX_GROUP && n * width * vocab <= MAX_BATCH_LOGITS;
        if shared >= 1 && shared + n * width <= alone && fits {
            cur.members.push(i);
            cur.shared = shared;
        } else {
            groups.push(std::mem::replace(
                &mut cur,
                Group {
                    members: vec![i],
                    shared: 0,
                },
            ));
        }
    }
    if !cur.members.is_empty() {
        groups.push(cur);
    }
    groups
}

/// Scores every prompt: infos of its tokens when `top` is Some, the next-token logits
/// when `need_last`.
fn score_prompts(
    model: &Model,
    job: &Job,
    top: Option<usize>,
    need_last: bool,
) -> Step<Vec<Scored>> {
    let prompts = &job.prompts;
    let mut out: Vec<Scored> = prompts.iter().map(|_| Scored::default()).collect();
    if top.is_none() && !need_last {
        return Ok(out);
    }
    let dec = &model.decoder;
    for g in plan_groups(prompts, model.vocab_size()) {
        if job.events.is_closed() {
            return Err(Err(Gone));
        }
        if g.members.len() == 1 || g.shared == 0 {
            for &m in &g.members {
                let p = &prompts[m];
                let mut cache = dec.new_cache();
                let keep = match top {
                    Some(n) => Keep::Infos(n),
                    None => Keep::Last,
                };
                let (infos, last) = prefill(model, &mut cache, p, keep)?;
                out[m] = Scored { infos, last };
            }
            continue;
        }
        let l = g.shared;
        let first = &prompts[g.members[0]];
        let mut cache = dec.new_cache();
        let keep = match top {
            Some(n) => Keep::Infos(n),
            None => Keep::Nothing,
        };
        let (prefix_infos, prefix_last) = prefill(model, &mut cache, &first[..l], keep)?;
        let width = g
            .members
            .iter()
            .map(|&m| prompts[m].len() - l)
            .max()
            .unwrap_or(0);
        let rows: Vec<Vec<u32>> = g
            .members
            .iter()
            .map(|&m| {
                let mut r = prompts[m][l..].to_vec();
                r.resize(width, 0);
                r
            })
            .collect();
        let mut batch_cache = cache.repeat_batch(g.members.len()).or_else(fail)?;
        let logits = dec
            .forward(
                &ids_tensor(dec, rows)?,
                Some(&mut batch_cache),
                &mut NoProbe,
                Logits::All,
            )
            .or_else(fail)?
            .ok_or_else(|| Ok(internal("no logits")))?;
        for (b, &m) in g.members.iter().enumerate() {
            let p = &prompts[m];
            let rows = logits
                .get(b)
                .and_then(|t| t.narrow(0, 0, p.len() - l))
                .and_then(|t| t.to_vec2::<f32>())
                .or_else(fail)?;
            let mut s = Scored::default();
            // row k predicts p[l + k + 1]; the last row, the next token
            if let Some(n) = top {
                s.infos = prefix_infos.clone();
                s.infos.push(info(model, &prefix_last, p[l], Some(n)));
                s.infos
                    .extend(infos(model, &rows[..rows.len() - 1], &p[l + 1..], n));
            }
            if need_last {
                s.last = rows.into_iter().next_back().unwrap_or_default();
            }
            out[m] = s;
        }
    }
    Ok(out)
}

/// The prompt's echo: its first token, then the scored ones.
fn echo_tokens(model: &Model, prompt: &[u32], scored: Vec<TokenInfo>) -> Vec<TokenInfo> {
    if scored.is_empty() {
        return prompt.iter().map(|&id| first_info(model, id)).collect();
    }
    let mut v = Vec::with_capacity(prompt.len());
    v.push(first_info(model, prompt[0]));
    v.extend(scored);
    v
}

/// `max_tokens` 0 or 1: score the prompts (grouped by shared prefixes), echo, and pick one
/// token from each prompt's last logits.
fn score_job(model: &Model, job: &Job) -> Step<()> {
    let p = &job.params;
    let top = if p.echo { p.logprobs } else { None };
    let max_len = model.max_model_len();
    let need_last = p.max_tokens == 1;
    let scored = score_prompts(model, job, top, need_last)?;
    for (i, (prompt, s)) in job.prompts.iter().zip(scored).enumerate() {
        if p.echo {
            send(
                job,
                Event::Prompt {
                    index: i,
                    tokens: echo_tokens(model, prompt, s.infos),
                },
            )?;
        }
        let mut completion = 0;
        let mut finish = Finish::Length;
        if need_last && prompt.len() < max_len {
            let mut rng = StdRng::seed_from_u64(p.sampling.seed.wrapping_add(i as u64));
            let id = sample(&s.last, &p.sampling, &mut rng);
            let mut text = TextState::new(model, p);
            let (delta, f) = text.push(id, true);
            send(
                job,
                Event::Token {
                    index: i,
                    text: delta,
                    token: info(model, &s.last, id, p.logprobs),
                },
            )?;
            completion = 1;
            finish = f.unwrap_or(Finish::Length);
        }
        send(
            job,
            Event::Done {
                index: i,
                finish,
                prompt_tokens: prompt.len(),
                completion_tokens: completion,
            },
        )?;
    }
    Ok(())
}

/// `max_tokens` > 1: each prompt into its own KV cache, then one token at a time.
fn generate_job(model: &Model, job: &Job) -> Step<()> {
    let p = &job.params;
    let dec = &model.decoder;
    let max_len = model.max_model_len();
    for (i, prompt) in job.prompts.iter().enumerate() {
        let mut cache = dec.new_cache();
        let keep = match (p.echo, p.logprobs) {
            (true, Some(n)) => Keep::Infos(n),
            _ => Keep::Last,
        };
        let (infos, mut row) = prefill(model, &mut cache, prompt, keep)?;
        if p.echo {
            send(
                job,
                Event::Prompt {
                    index: i,
                    tokens: echo_tokens(model, prompt, infos),
                },
            )?;
        }
        let max_new = p.max_tokens.min(max_len.saturating_sub(prompt.len()));
        let mut rng = StdRng::seed_from_u64(p.sampling.seed.wrapping_add(i as u64));
        let mut text = TextState::new(model, p);
        let mut finish = Finish::Length;
        let mut n = 0;
        while n < max_new {
            let id = sample(&row, &p.sampling, &mut rng);
            n += 1;
            let (delta, f) = text.push(id, n == max_new);
            send(
                job,
                Event::Token {
                    index: i,
                    text: delta,
                    token: info(model, &row, id, p.logprobs),
                },
            )?;
            if let Some(f) = f {
                finish = f;
                break;
            }
            if n == max_new {
                break;
            }
            let t = ids_tensor(dec, vec![vec![id]])?;
            row = dec
                .forward(&t, Some(&mut cache), &mut NoProbe, Logits::Last)
                .or_else(fail)?
                .ok_or_else(|| Ok(internal("no logits")))?
                .flatten_all()
                .and_then(|t| t.to_vec1::<f32>())
                .or_else(fail)?;
        }
        send(
            job,
            Event::Done {
                index: i,
                finish,
                prompt_tokens: prompt.len(),
                completion_tokens: n,
            },
        )?;
    }
    Ok(())
}

/// The generated text so far, released as it becomes final: a stop string ends it (and is
/// not part of it); text that may be the start of a stop string, or an incomplete
/// character, waits for the next token.
struct TextState<'a> {
    model: &'a Model,
    params: &'a Params,
    ids: Vec<u32>,
    /// Bytes of the text already released.
    sent: usize,
}

impl<'a> TextState<'a> {
    fn new(model: &'a Model, params: &'a Params) -> Self {
        Self {
            model,
            params,
            ids: Vec::new(),
            sent: 0,
        }
    }

    fn decode(&self, ids: &[u32]) -> String {
        self.model
            .tokenizer
            .decode(ids, !self.params.skip_special)
            .unwrap_or_default()
    }

    fn release(&mut self, text: &str, end: usize) -> String {
        let piece = text.get(self.sent..end).unwrap_or("").to_string();
        if end > self.sent {
            self.sent = end;
        }
        piece
    }

    /// Adds `id`; returns the new text and, when generation ends here, why. `last`: no
    /// token follows (release everything).
    fn push(&mut self, id: u32, last: bool) -> (String, Option<Finish>) {
        if self.params.stop_ids.contains(&id) {
            let text = self.decode(&self.ids);
            let end = text.len();
            self.ids.push(id);
            return (self.release(&text, end), Some(Finish::Stop));
        }
        self.ids.push(id);
        let text = self.decode(&self.ids);
        let hit = self
            .params
            .stop
            .iter()
            .filter_map(|s| text.find(s.as_str()))
            .min();
        if let Some(at) = hit {
            return (self.release(&text, at), Some(Finish::Stop));
        }
        if last {
            let end = text.len();
            return (self.release(&text, end), None);
        }
        let base = text.trim_end_matches('\u{FFFD}').len();
        let mut end = base;
        for s in &self.params.stop {
            // the longest proper prefix of `s` that the text ends with
            let held = s
                .char_indices()
                .map(|(i, _)| i)
                .skip(1)
                .filter(|&k| text[..base].ends_with(&s[..k]))
                .max()
                .unwrap_or(0);
            end = end.min(base - held);
        }
        (self.release(&text, end), None)
    }
}

/// The index of the largest value (the first of equal maxima).
fn argmax(row: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in row.iter().enumerate() {
        if x > row[best] {
            best = i;
        }
    }
    best as u32
}

/// Picks the next token from `row` as `s` says.
fn sample(row: &[f32], s: &Sampling, rng: &mut StdRng) -> u32 {
    if s.temperature <= 0.0 || row.is_empty() {
        return argmax(row);
    }
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let mut cand: Vec<(u32, f64)> = row
        .iter()
        .enumerate()
        .map(|(i, &x)| (i as u32, ((x as f64 - max) / s.temperature).exp()))
        .collect();
    if s.top_k > 0 || s.top_p < 1.0 {
        cand.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        if s.top_k > 0 {
            cand.truncate(s.top_k);
        }
        if s.top_p < 1.0 {
            let total: f64 = cand.iter().map(|c| c.1).sum();
            let mut acc = 0.0;
            let mut keep = cand.len();
            for (j, c) in cand.iter().enumerate() {
                acc += c.1;
                if acc >= s.top_p * total {
                    keep = j + 1;
                    break;
                }
            }
            cand.truncate(keep);
        }
    }
    let total: f64 = cand.iter().map(|c| c.1).sum();
    let mut r = rng.random::<f64>() * total;
    for &(i, w) in &cand {
        if r < w {
            return i;
        }
        r -= w;
    }
    cand.last().map_or(0, |c| c.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_share_prefixes_only_when_cheaper() {
        let p = vec![
            vec![1, 2, 3, 4, 5, 6],
            vec![9, 9],
            vec![1, 2, 3, 4, 5, 7, 8],
            vec![1, 2, 3, 4, 5],
        ];
        let g = plan_groups(&p, 10);
        assert_eq!(g.len(), 2);
        let shared = g.iter().find(|g| g.members.len() == 3).unwrap();
        // the shortest member keeps one token beyond the prefix
        assert_eq!(shared.shared, 4);
        // nothing in common: alone
        assert_eq!(plan_groups(&[vec![1, 2], vec![3, 4]], 10).len(), 2);
    }

    #[test]
    fn top_and_logprob() {
        let row = [0.0f32, 2.0, 1.0, 2.0];
        let r = Row::new(&row);
        assert_eq!(r.top(3), vec![1, 3, 2]);
        let z: f64 = row.iter().map(|&x| (x as f64).exp()).sum();
        assert!((r.logprob(2) - (1.0 - z.ln())).abs() < 1e-12);
    }

    #[test]
    fn sampling_is_seeded_and_nucleus_narrows() {
        let row: Vec<f32> = (0..50).map(|i| (i as f32 * 0.37).sin()).collect();
        let s = Sampling {
            temperature: 1.0,
            top_p: 1.0,
            top_k: 0,
            seed: 7,
        };
        let draw = |s: &Sampling| {
            let mut rng = StdRng::seed_from_u64(s.seed);
            (0..20)
                .map(|_| sample(&row, s, &mut rng))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(&s), draw(&s));
        let narrow = Sampling { top_p: 1e-9, ..s };
        assert!(draw(&narrow).iter().all(|&t| t == argmax(&row)));
        let k1 = Sampling { top_k: 1, ..s };
        assert!(draw(&k1).iter().all(|&t| t == argmax(&row)));
    }
}

//! Scoring: prompts in groups that share a prefix, the prefix once into a KV cache and the
//! rest of every prompt as one right-padded batch on top of it (a causal model never looks
//! at the padding), as `llmdrop eval` scores the choices of one question.

use std::collections::VecDeque;

use llmdrop::{KvCache, Logits, NoProbe};
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::generate::{sample, TextState};
use super::groups::{plan_merged, Group};
use super::logprobs::{first_info, info, infos};
use super::prefill::{Keep, Prefill};
use super::{fail, ids_tensor, internal, send, Event, Finish, Gone, Job, Step, TokenInfo};
use crate::model::Model;

/// What scoring one prompt gives: its tokens' infos (echo) and the next-token logits.
#[derive(Default)]
struct Scored {
    infos: Vec<TokenInfo>,
    last: Vec<f32>,
}

/// One task of a scoring set: a prompt run alone, or a group's shared prefix run once and
/// the rest of its members as one right-padded batch on top.
enum Task {
    Alone(usize),
    Shared(Group),
}

/// The task under way: its prompt (or prefix) prefilled so far.
struct Current {
    task: Task,
    cache: KvCache,
    prefill: Prefill,
}

/// Scoring jobs that [`mergeable`] admits together, run in bounded pieces
/// ([`ScoreSet::work`]) so that generation goes on between them. Their groups of prompts
/// sharing a prefix are joined where the prefix is the same ([`plan_merged`]: the prefix's
/// pass is shared, the answers are the bits each request gets alone); the pieces run the
/// same passes in the same order as the set run at once, so the bits are the same. Once
/// every prompt is scored each job is answered with its own prompts' results, in its own
/// order. A client that left does not stop the others; the passes stop once every client
/// has left.
pub(super) struct ScoreSet {
    jobs: Vec<Job>,
    prompts: Vec<Vec<u32>>,
    /// Top log-probabilities of the echoed tokens; whether the next-token logits are needed.
    top: Option<usize>,
    need_last: bool,
    tasks: VecDeque<Task>,
    current: Option<Current>,
    out: Vec<Scored>,
}

impl ScoreSet {
    /// `jobs`: at least one, all [`mergeable`] with the first.
    pub(super) fn new(model: &Model, jobs: Vec<Job>) -> Self {
        let (top, need_last) = needs(&jobs[0]);
        let prompts: Vec<Vec<u32>> = jobs.iter().flat_map(|j| j.prompts.clone()).collect();
        let sizes: Vec<usize> = jobs.iter().map(|j| j.prompts.len()).collect();
        let mut tasks = VecDeque::new();
        if top.is_some() || need_last {
            for g in plan_merged(&prompts, &sizes, model.vocab_size()) {
                if g.members.len() == 1 || g.shared == 0 {
                    tasks.extend(g.members.into_iter().map(Task::Alone));
                } else {
                    tasks.push_back(Task::Shared(g));
                }
            }
        }
        let out = prompts.iter().map(|_| Scored::default()).collect();
        Self {
            jobs,
            prompts,
            top,
            need_last,
            tasks,
            current: None,
            out,
        }
    }

    pub(super) fn jobs(&self) -> &[Job] {
        &self.jobs
    }

    /// Runs the next passes, whole, while they fit `budget` positions (at least one pass):
    /// a prefill chunk, or a group's batched pass. Returns whether every prompt is scored.
    /// Stops (`Gone`) once no client waits any more.
    pub(super) fn work(&mut self, model: &Model, budget: usize) -> Step<bool> {
        let mut left = budget;
        let mut ran = false;
        loop {
            if self.jobs.iter().all(|j| j.events.is_closed()) {
                return Err(Err(Gone));
            }
            let mut c = match self.current.take() {
                Some(c) => c,
                None => match self.tasks.pop_front() {
                    Some(task) => Current {
                        prefill: Prefill::new(self.keep(&task)),
                        cache: model.decoder.new_cache(),
                        task,
                    },
                    None => return Ok(true),
                },
            };
            let cost = self.cost(&c);
            if ran && cost > left {
                self.current = Some(c);
                return Ok(false);
            }
            left = left.saturating_sub(cost);
            ran = true;
            let ids = task_ids(&self.prompts, &c.task);
            if c.prefill.next_len(ids) > 0 {
                c.prefill.chunk(model, &mut c.cache, ids)?;
                if c.prefill.next_len(ids) > 0 || matches!(c.task, Task::Shared(_)) {
                    self.current = Some(c);
                    continue;
                }
            }
            match c.task {
                Task::Alone(m) => {
                    let (infos, last) = c.prefill.finish();
                    self.out[m] = Scored { infos, last };
                }
                Task::Shared(g) => self.batched(model, &g, c.cache, c.prefill)?,
            }
        }
    }

    /// What the prefill of `task` keeps.
    fn keep(&self, task: &Task) -> Keep {
        match (self.top, task) {
            (Some(n), _) => Keep::Infos(n),
            (None, Task::Alone(_)) => Keep::Last,
            (None, Task::Shared(_)) => Keep::Nothing,
        }
    }

    /// Positions the next pass of `c` runs.
    fn cost(&self, c: &Current) -> usize {
        let n = c.prefill.next_len(task_ids(&self.prompts, &c.task));
        match &c.task {
            Task::Shared(g) if n == 0 => g.members.len() * self.width(g),
            _ => n,
        }
    }

    /// The longest rest of a member of `g` after the shared prefix.
    fn width(&self, g: &Group) -> usize {
        g.members
            .iter()
            .map(|&m| self.prompts[m].len() - g.shared)
            .max()
            .unwrap_or(0)
    }

    /// The rest of every member of `g` as one right-padded batch on the prefix in `cache`.
    fn batched(&mut self, model: &Model, g: &Group, cache: KvCache, prefix: Prefill) -> Step<()> {
        let dec = &model.decoder;
        let (l, width) = (g.shared, self.width(g));
        let (prefix_infos, prefix_last) = prefix.finish();
        let rows: Vec<Vec<u32>> = g
            .members
            .iter()
            .map(|&m| {
                let mut r = self.prompts[m][l..].to_vec();
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
            let p = &self.prompts[m];
            let rows = logits
                .get(b)
                .and_then(|t| t.narrow(0, 0, p.len() - l))
                .and_then(|t| t.to_vec2::<f32>())
                .or_else(fail)?;
            let mut s = Scored::default();
            // row k predicts p[l + k + 1]; the last row, the next token
            if let Some(n) = self.top {
                s.infos = prefix_infos.clone();
                s.infos.push(info(model, &prefix_last, p[l], Some(n)));
                s.infos
                    .extend(infos(model, &rows[..rows.len() - 1], &p[l + 1..], n));
            }
            if self.need_last {
                s.last = rows.into_iter().next_back().unwrap_or_default();
            }
            self.out[m] = s;
        }
        Ok(())
    }

    /// Answers every job once [`Self::work`] has scored every prompt.
    pub(super) fn finish(&mut self, model: &Model) -> Result<(), super::ApiError> {
        let mut scored = std::mem::take(&mut self.out).into_iter();
        for job in &self.jobs {
            let mine: Vec<Scored> = scored.by_ref().take(job.prompts.len()).collect();
            match answer(model, job, mine) {
                Ok(()) | Err(Err(Gone)) => {}
                Err(Ok(e)) => return Err(e),
            }
        }
        Ok(())
    }
}

/// The tokens `task` prefills: its prompt, or its group's shared prefix.
fn task_ids<'a>(prompts: &'a [Vec<u32>], task: &Task) -> &'a [u32] {
    match task {
        Task::Alone(m) => &prompts[*m],
        Task::Shared(g) => &prompts[g.members[0]][..g.shared],
    }
}

/// The prompt's echo: its first token, then the scored ones.
pub(super) fn echo_tokens(model: &Model, prompt: &[u32], scored: Vec<TokenInfo>) -> Vec<TokenInfo> {
    if scored.is_empty() {
        return prompt.iter().map(|&id| first_info(model, id)).collect();
    }
    let mut v = Vec::with_capacity(prompt.len());
    v.push(first_info(model, prompt[0]));
    v.extend(scored);
    v
}

/// A scoring job: `max_tokens` 0 or 1 (lm-eval's log-likelihood requests).
pub(super) fn is_scoring(job: &Job) -> bool {
    job.params.max_tokens <= 1
}

/// What a scoring job asks of the forward passes: (top log-probabilities of the echoed
/// tokens, whether the next-token logits are needed). Jobs that ask the same can share
/// their passes.
fn needs(job: &Job) -> (Option<usize>, bool) {
    let p = &job.params;
    (if p.echo { p.logprobs } else { None }, p.max_tokens == 1)
}

/// Whether `b` can run in the same forward passes as `a` (both scoring, same needs).
pub(super) fn mergeable(a: &Job, b: &Job) -> bool {
    is_scoring(a) && is_scoring(b) && needs(a) == needs(b)
}

/// Echoes each prompt and picks one token from its last logits, as `job` asked.
fn answer(model: &Model, job: &Job, scored: Vec<Scored>) -> Step<()> {
    let p = &job.params;
    let max_len = model.max_model_len();
    let need_last = p.max_tokens == 1;
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

#[cfg(test)]
#[path = "score_tests.rs"]
mod tests;

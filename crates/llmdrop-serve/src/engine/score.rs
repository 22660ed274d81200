//! Scoring: prompts in groups that share a prefix, the prefix once into a KV cache and the
//! rest of every prompt as one right-padded batch on top of it (a causal model never looks
//! at the padding), as `llmdrop eval` scores the choices of one question.

use llmdrop::{Logits, NoProbe};
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::generate::{sample, TextState};
use super::groups::plan_merged;
use super::logprobs::{first_info, info, infos};
use super::prefill::{prefill, Keep};
use super::{fail, ids_tensor, internal, send, Event, Finish, Gone, Job, Step, TokenInfo};
use crate::model::Model;

/// What scoring one prompt gives: its tokens' infos (echo) and the next-token logits.
#[derive(Default)]
struct Scored {
    infos: Vec<TokenInfo>,
    last: Vec<f32>,
}

/// Scores every prompt: infos of its tokens when `top` is Some, the next-token logits
/// when `need_last`. `sizes`: how many of the prompts each request holds, in order.
/// Stops (`Gone`) once `gone()` says no client waits any more.
fn score_prompts(
    model: &Model,
    prompts: &[Vec<u32>],
    sizes: &[usize],
    top: Option<usize>,
    need_last: bool,
    gone: impl Fn() -> bool,
) -> Step<Vec<Scored>> {
    let mut out: Vec<Scored> = prompts.iter().map(|_| Scored::default()).collect();
    if top.is_none() && !need_last {
        return Ok(out);
    }
    let dec = &model.decoder;
    for g in plan_merged(prompts, sizes, model.vocab_size()) {
        if gone() {
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

/// Scoring jobs that [`mergeable`] admits together: their groups of prompts sharing a
/// prefix joined where the prefix is the same ([`plan_merged`]: the prefix's pass is
/// shared, the answers are the bits each request gets alone), then each job answered with
/// its own prompts' results, in its own order. A client that left does not
/// stop the others; the passes stop once every client has left.
pub(super) fn score_jobs(model: &Model, jobs: &[&Job]) -> Result<(), super::ApiError> {
    let (top, need_last) = needs(jobs[0]);
    let prompts: Vec<Vec<u32>> = jobs.iter().flat_map(|j| j.prompts.clone()).collect();
    let sizes: Vec<usize> = jobs.iter().map(|j| j.prompts.len()).collect();
    let gone = || jobs.iter().all(|j| j.events.is_closed());
    let mut scored = match score_prompts(model, &prompts, &sizes, top, need_last, gone) {
        Ok(s) => s.into_iter(),
        Err(Err(Gone)) => return Ok(()),
        Err(Ok(e)) => return Err(e),
    };
    for job in jobs {
        let mine: Vec<Scored> = scored.by_ref().take(job.prompts.len()).collect();
        match answer(model, job, mine) {
            Ok(()) | Err(Err(Gone)) => {}
            Err(Ok(e)) => return Err(e),
        }
    }
    Ok(())
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

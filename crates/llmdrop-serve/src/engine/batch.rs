//! Generation with continuous batching: the prompts of the generation jobs that are
//! running advance together, one decode step of all of them as one forward pass
//! ([`llmdrop::Decoder::decode_step`]: the weights read once per step, each sequence on its
//! own KV cache, each row the bits of that sequence alone). A prompt joins after its own
//! prefill and leaves when it ends; jobs join and leave between steps.
//!
//! A prompt's prefill is spread over steps: each step runs at most [`PREFILL_CHUNK`]
//! prompt tokens, in whole chunks, before the decode pass, so a running sequence gets a
//! token at least every chunk plus one decode step however long the prompts that join.
//! The chunks are those of a prefill run at once ([`super::prefill`]), so are the bits.

use std::cell::Cell;
use std::collections::VecDeque;
use std::rc::Rc;

use llmdrop::KvCache;
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::generate::{sample, TextState};
use super::logprobs::info;
use super::prefill::{Keep, Prefill, PREFILL_CHUNK};
use super::score::echo_tokens;
use super::{internal, panic_message, ApiError, Event, Finish, Gone, Job, Step};
use crate::model::Model;

/// Sequences that advance together at most, the one being prefilled included.
pub(super) const MAX_SEQS: usize = 16;

/// A generation job while its prompts run.
struct Running {
    job: Job,
    /// The job failed or its client left: its prompts stop.
    over: Cell<bool>,
}

impl Running {
    fn send(&self, e: Event) -> Step<()> {
        self.job.events.send(e).map_err(|_| Err(Gone))
    }

    /// Ends the job: `Failed` with `e`, or quietly when the client left.
    fn end(&self, e: Result<ApiError, Gone>) {
        if !self.over.replace(true) {
            if let Ok(e) = e {
                let _ = self.job.events.send(Event::Failed(e));
            }
        }
    }
}

/// One prompt being generated.
struct Seq<'m> {
    run: Rc<Running>,
    index: usize,
    cache: KvCache,
    /// The logits the next token is chosen from.
    row: Vec<f32>,
    rng: StdRng,
    text: TextState<'m>,
    /// Tokens generated, and at most.
    n: usize,
    max_new: usize,
    prompt_len: usize,
}

impl Seq<'_> {
    /// Chooses and sends the next token; returns it while the sequence goes on, None
    /// when it ended (`Done` sent).
    fn emit(&mut self, model: &Model) -> Step<Option<u32>> {
        let p = &self.run.job.params;
        let id = sample(&self.row, &p.sampling, &mut self.rng);
        self.n += 1;
        let last = self.n == self.max_new;
        let (text, finish) = self.text.push(id, last);
        let token = info(model, &self.row, id, p.logprobs);
        let index = self.index;
        self.run.send(Event::Token { index, text, token })?;
        let finish = match finish {
            Some(f) => f,
            None if last => Finish::Length,
            None => return Ok(Some(id)),
        };
        self.run.send(Event::Done {
            index,
            finish,
            prompt_tokens: self.prompt_len,
            completion_tokens: self.n,
        })?;
        Ok(None)
    }
}

/// A prompt whose prefill is under way: the chunks that ran are in its cache.
struct Prefilling {
    run: Rc<Running>,
    index: usize,
    cache: KvCache,
    prefill: Prefill,
}

impl Prefilling {
    fn ids(&self) -> &[u32] {
        &self.run.job.prompts[self.index]
    }
}

/// The generation jobs admitted: prompts waiting to start, the one being prefilled, and
/// the running sequences.
pub(super) struct Batch<'m> {
    model: &'m Model,
    waiting: VecDeque<(Rc<Running>, usize)>,
    /// At most one prompt's prefill spans steps: a step's prefill work goes to this prompt
    /// first, and a waiting prompt starts only in a step whose work the previous prompt's
    /// last chunk left room for.
    prefilling: Option<Prefilling>,
    active: Vec<Seq<'m>>,
}

impl<'m> Batch<'m> {
    pub(super) fn new(model: &'m Model) -> Self {
        Self {
            model,
            waiting: VecDeque::new(),
            prefilling: None,
            active: Vec::new(),
        }
    }

    /// Sequences running or being prefilled.
    fn seqs(&self) -> usize {
        self.active.len() + usize::from(self.prefilling.is_some())
    }

    /// Whether another job may join: every admitted prompt started, room for more.
    pub(super) fn has_room(&self) -> bool {
        self.waiting.is_empty() && self.seqs() < MAX_SEQS
    }

    pub(super) fn is_idle(&self) -> bool {
        self.waiting.is_empty() && self.seqs() == 0
    }

    /// Admits a generation job: its prompts start as room allows, in order.
    pub(super) fn admit(&mut self, job: Job) {
        let n = job.prompts.len();
        let run = Rc::new(Running {
            job,
            over: Cell::new(false),
        });
        self.waiting.extend((0..n).map(|i| (run.clone(), i)));
    }

    /// The step's prefill work ([`Self::prefill`]), then one token of every sequence and
    /// the step that computes the next logits of those that go on. A failure of the model
    /// fails every job in the step; a job's own failure (or its client leaving) ends only
    /// that job.
    pub(super) fn step(&mut self) {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.prefill();
            let ids = self.emit();
            self.advance(&ids)
        }));
        let e = match r {
            Ok(Ok(())) => return,
            Ok(Err(e)) => e,
            Err(p) => internal(panic_message(p.as_ref())),
        };
        for s in self.active.drain(..) {
            s.run.end(Ok(e.clone()));
        }
        if let Some(p) = self.prefilling.take() {
            p.run.end(Ok(e.clone()));
        }
        for (run, _) in self.waiting.drain(..) {
            run.end(Ok(e.clone()));
        }
    }

    /// Up to [`PREFILL_CHUNK`] prompt tokens of prefill, in whole chunks: the prompt under
    /// way, then waiting prompts in order while there is room; a prompt whose prefill ends
    /// joins the running sequences. The budget is in tokens, not chunks, so that short
    /// prompts joining together start in one step (as one chunk of their total length
    /// would), while a long prompt takes one full chunk per step.
    fn prefill(&mut self) {
        let mut budget = PREFILL_CHUNK;
        loop {
            let mut p = match self.prefilling.take() {
                Some(p) => p,
                None if self.active.len() < MAX_SEQS => match self.waiting.pop_front() {
                    Some((run, index)) => self.begin(run, index),
                    None => break,
                },
                None => break,
            };
            if p.run.over.get() || p.run.job.events.is_closed() {
                p.run.end(Err(Gone)); // its cache goes with it
                continue;
            }
            let n = p.prefill.next_len(p.ids());
            if n > budget {
                self.prefilling = Some(p);
                break;
            }
            budget -= n;
            if n > 0 {
                let Prefilling {
                    run,
                    index,
                    cache,
                    prefill,
                } = &mut p;
                if let Err(e) = prefill.chunk(self.model, cache, &run.job.prompts[*index]) {
                    p.run.end(e);
                    continue;
                }
            }
            if p.prefill.next_len(p.ids()) > 0 {
                self.prefilling = Some(p);
                continue;
            }
            let run = p.run.clone();
            match self.join(p) {
                Ok(Some(seq)) => self.active.push(seq),
                Ok(None) => {}
                Err(e) => run.end(e),
            }
        }
    }

    /// Prompt `index` of `run`, before its first chunk: echoed (with log-probabilities)
    /// when asked.
    fn begin(&self, run: Rc<Running>, index: usize) -> Prefilling {
        let p = &run.job.params;
        let keep = match (p.echo, p.logprobs) {
            (true, Some(n)) => Keep::Infos(n),
            _ => Keep::Last,
        };
        Prefilling {
            cache: self.model.decoder.new_cache(),
            prefill: Prefill::new(keep),
            run,
            index,
        }
    }

    /// A prompt whose prefill ended (echoed when asked) as a running sequence; None when
    /// no token fits after it (`Done` sent).
    fn join(&self, done: Prefilling) -> Step<Option<Seq<'m>>> {
        let model = self.model;
        let Prefilling {
            run,
            index: i,
            cache,
            prefill,
        } = done;
        let (p, prompt) = (&run.job.params, &run.job.prompts[i]);
        let (infos, row) = prefill.finish();
        if p.echo {
            let tokens = echo_tokens(model, prompt, infos);
            run.send(Event::Prompt { index: i, tokens })?;
        }
        let max_new = p
            .max_tokens
            .min(model.max_model_len().saturating_sub(prompt.len()));
        if max_new == 0 {
            run.send(Event::Done {
                index: i,
                finish: Finish::Length,
                prompt_tokens: prompt.len(),
                completion_tokens: 0,
            })?;
            return Ok(None);
        }
        Ok(Some(Seq {
            rng: StdRng::seed_from_u64(p.sampling.seed.wrapping_add(i as u64)),
            text: TextState::new(model, p),
            n: 0,
            max_new,
            prompt_len: prompt.len(),
            run,
            index: i,
            cache,
            row,
        }))
    }

    /// One token of every running sequence; the ones that end (or whose job is over)
    /// leave. Returns the tokens of those that go on, in order.
    fn emit(&mut self) -> Vec<u32> {
        let mut ids = Vec::with_capacity(self.active.len());
        let mut kept = Vec::with_capacity(self.active.len());
        for mut s in std::mem::take(&mut self.active) {
            if s.run.over.get() {
                continue;
            }
            match s.emit(self.model) {
                Ok(Some(id)) => {
                    ids.push(id);
                    kept.push(s);
                }
                Ok(None) => {}
                Err(e) => s.run.end(e),
            }
        }
        self.active = kept;
        ids
    }

    /// The next logits of every running sequence, in one pass.
    fn advance(&mut self, ids: &[u32]) -> Result<(), ApiError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut caches: Vec<&mut KvCache> = self.active.iter_mut().map(|s| &mut s.cache).collect();
        let rows = self
            .model
            .decoder
            .decode_step(ids, &mut caches)
            .and_then(|t| Ok(t.to_vec2::<f32>()?))
            .map_err(internal)?;
        for (s, row) in self.active.iter_mut().zip(rows) {
            s.row = row;
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "batch_tests.rs"]
mod tests;

//! The batch driven step by step on the tiny llama (real files, with room for prompts of
//! several chunks): a long prompt's prefill is spread over steps while a running sequence
//! gets a token every step, and every answer is the bits of the request alone.

use super::{Batch, MAX_SEQS, PREFILL_CHUNK};
use crate::engine::prefill::{Keep, Prefill};
use crate::engine::score::echo_tokens;
use crate::engine::test_model::{drain, greedy, job, long_prompt, tiny_long_model, tokens};
use crate::engine::{Event, Params};
use crate::model::Model;

/// A job's events when it runs alone.
fn alone(model: &Model, prompts: Vec<Vec<u32>>, params: Params) -> Vec<String> {
    let mut b = Batch::new(model);
    let (j, mut rx) = job(prompts, params);
    b.admit(j);
    while !b.is_idle() {
        b.step();
    }
    drain(&mut rx)
}

#[test]
fn a_long_prompt_prefills_over_steps_while_a_stream_gets_a_token_each_step() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_long_model(dir.path());
    let short = vec![1, 5, 9, 30];
    let long = long_prompt(700); // chunks of 256, 256 and 188
    let want_short = alone(&model, vec![short.clone()], greedy(40, None));
    let want_long = alone(&model, vec![long.clone()], greedy(8, Some(2)));
    assert_eq!(tokens(&want_short), 40);
    assert_eq!(tokens(&want_long), 8);

    // the long prompt's echo is the prefill run at once (the chunks back to back)
    let mut cache = model.decoder.new_cache();
    let mut at_once = Prefill::new(Keep::Infos(2));
    while at_once.next_len(&long) > 0 {
        let r = at_once.chunk(&model, &mut cache, &long);
        assert!(r.is_ok(), "the prefill failed");
    }
    let (infos, _) = at_once.finish();
    let echo = Event::Prompt {
        index: 0,
        tokens: echo_tokens(&model, &long, infos),
    };
    assert_eq!(want_long[0], format!("{echo:?}"));

    let mut b = Batch::new(&model);
    let (a, mut rx_a) = job(vec![short], greedy(40, None));
    b.admit(a);
    b.step();
    b.step();
    let mut got_short = drain(&mut rx_a);
    assert_eq!(tokens(&got_short), 2);
    let (l, mut rx_l) = job(vec![long.clone()], greedy(8, Some(2)));
    b.admit(l);
    let mut got_long = Vec::new();
    let mut in_cache = Vec::new();
    while got_long.is_empty() {
        b.step();
        in_cache.push(b.prefilling.as_ref().map(|p| p.prefill.done()));
        let new = drain(&mut rx_a);
        assert_eq!(tokens(&new), 1, "the stream missed a step: {in_cache:?}");
        got_short.extend(new);
        got_long = drain(&mut rx_l);
    }
    // one chunk a step; the step of the last chunk also gives the first token
    assert_eq!(in_cache, [Some(256), Some(512), None]);
    assert_eq!(tokens(&got_long), 1);
    while !b.is_idle() {
        b.step();
        got_short.extend(drain(&mut rx_a));
        got_long.extend(drain(&mut rx_l));
    }
    assert_eq!(got_short, want_short);
    assert_eq!(got_long, want_long);
}

#[test]
fn short_prompts_start_together_and_waiting_ones_keep_their_order() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_long_model(dir.path());
    let mut b = Batch::new(&model);
    // four short prompts fit one step's prefill work: all run after one step
    let shorts: Vec<Vec<u32>> = (0..4).map(|i| vec![1, 10 + i, 20 + i]).collect();
    let (s, mut rx_s) = job(shorts, greedy(50, None));
    b.admit(s);
    b.step();
    assert_eq!(b.active.len(), 4);
    assert_eq!(tokens(&drain(&mut rx_s)), 4);
    // a long prompt, then a short one: the short one waits for the long one's prefill
    let (l, mut rx_l) = job(vec![long_prompt(3 * PREFILL_CHUNK)], greedy(4, None));
    let (c, mut rx_c) = job(vec![vec![1, 2, 3]], greedy(4, None));
    b.admit(l);
    b.admit(c);
    for _ in 0..2 {
        b.step();
        assert_eq!(b.waiting.len(), 1);
        assert!(drain(&mut rx_c).is_empty());
        assert_eq!(tokens(&drain(&mut rx_s)), 4);
    }
    // the long prompt's last chunk fills the step: the short one starts in the next
    b.step();
    assert_eq!(tokens(&drain(&mut rx_l)), 1);
    assert!(drain(&mut rx_c).is_empty());
    assert!(b.waiting.is_empty());
    assert_eq!(b.prefilling.as_ref().map(|p| p.prefill.done()), Some(0));
    b.step();
    assert_eq!(tokens(&drain(&mut rx_c)), 1);
    assert_eq!(b.active.len(), 6);
}

#[test]
fn a_prompt_being_prefilled_counts_as_a_sequence_and_its_client_may_leave() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_long_model(dir.path());
    let mut b = Batch::new(&model);
    let many: Vec<Vec<u32>> = (0..MAX_SEQS as u32 - 1).map(|i| vec![1, 40 + i]).collect();
    let (m, mut rx_m) = job(many, greedy(30, None));
    b.admit(m);
    b.step();
    assert_eq!(b.active.len(), MAX_SEQS - 1);
    assert!(b.has_room());
    let (l, rx_l) = job(vec![long_prompt(600)], greedy(4, None));
    b.admit(l);
    b.step();
    assert!(b.prefilling.is_some());
    assert!(!b.has_room(), "the prefilling prompt takes the last place");
    let (c, mut rx_c) = job(vec![vec![1, 2]], greedy(4, None));
    b.admit(c);
    drain(&mut rx_m);
    // the long prompt's client leaves mid-prefill: its place (and cache) go at once
    drop(rx_l);
    b.step();
    assert!(b.prefilling.is_none());
    assert_eq!(b.active.len(), MAX_SEQS);
    assert_eq!(tokens(&drain(&mut rx_m)), MAX_SEQS - 1);
    assert_eq!(tokens(&drain(&mut rx_c)), 1);
}

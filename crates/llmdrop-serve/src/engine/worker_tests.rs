//! The worker loop on the tiny llama (real files, with room for prompts of several prefill
//! chunks): a scoring set that arrives while a stream runs goes in pieces, a token of the
//! stream between two pieces.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::test_model::{drain, greedy, job, long_prompt, tiny_long_model};
use super::{run_worker, Params};

#[test]
fn a_scoring_set_that_arrives_behind_a_stream_lets_it_go_on_between_pieces() {
    let dir = tempfile::tempdir().unwrap();
    let model = Arc::new(tiny_long_model(dir.path()));
    // both jobs report on one channel, so their events are in the order the worker sent them
    let (g, mut events) = job(vec![vec![1, 5, 9, 30]], greedy(20, None));
    let scoring = Params {
        max_tokens: 0,
        ..greedy(0, Some(1))
    };
    let (mut s, _) = job(vec![long_prompt(700)], scoring);
    s.events = g.events.clone();
    let (tx, rx) = mpsc::channel(4);
    tx.try_send(g).unwrap_or_else(|_| panic!("queue"));
    tx.try_send(s).unwrap_or_else(|_| panic!("queue"));
    drop(tx);
    let worker = std::thread::spawn(move || run_worker(model, rx));
    worker.join().unwrap();
    let all = drain(&mut events);
    let first_answer = all.iter().position(|e| e.starts_with("Prompt")).unwrap();
    let before = &all[..first_answer];
    // the stream's first step (the queue waits until its prompt has started), then the
    // set's pieces of 256, 256 and 188 positions with a step between two (the whole set
    // between two steps would leave only the first)
    assert_eq!(before.len(), 3, "{before:?}");
    assert!(before.iter().all(|e| e.starts_with("Token")));
    assert_eq!(all.iter().filter(|e| e.starts_with("Token")).count(), 20);
    assert_eq!(all.iter().filter(|e| e.starts_with("Done")).count(), 2);
}

//! A scoring set run in pieces, with generation steps between them, on the tiny llama
//! (real files, with room for prompts of several prefill chunks): each piece is bounded,
//! and every answer is the bits of the set run at once.

use super::super::batch::Batch;
use super::{ScoreSet, Task};
use crate::engine::prefill::PREFILL_CHUNK;
use crate::engine::test_model::{drain, greedy, job, long_prompt, tiny_long_model, tokens};
use crate::engine::Job;
use crate::model::Model;

/// Two scoring requests asking the same (echo with 2 alternatives, one token): a long
/// prompt alone, and four prompts on a shared prefix of 300 tokens.
fn requests() -> Vec<Vec<Vec<u32>>> {
    let prefix: Vec<u32> = (0..300).map(|i| (i * 13 + 5) % 256).collect();
    let shared = (0..4)
        .map(|k| {
            let mut p = prefix.clone();
            p.extend((0..3 + k).map(|i| (i * 7 + k * 31) % 256));
            p
        })
        .collect();
    vec![vec![long_prompt(700)], shared]
}

/// The jobs of [`requests`], and their event receivers.
fn jobs() -> (
    Vec<Job>,
    Vec<tokio::sync::mpsc::UnboundedReceiver<crate::engine::Event>>,
) {
    requests()
        .into_iter()
        .map(|prompts| job(prompts, greedy(1, Some(2))))
        .unzip()
}

/// Every job's events once the set has run at once.
fn at_once(model: &Model) -> Vec<Vec<String>> {
    let (jobs, mut rxs) = jobs();
    let mut set = ScoreSet::new(model, jobs);
    assert!(matches!(set.work(model, usize::MAX), Ok(true)));
    assert!(set.finish(model).is_ok());
    rxs.iter_mut().map(drain).collect()
}

#[test]
fn a_scoring_set_runs_in_bounded_pieces_between_generation_steps() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_long_model(dir.path());
    let want = at_once(&model);
    // each prompt echoed, then its one token and its end
    assert_eq!(want[0].len(), 3);
    assert_eq!(want[1].len(), 12);

    let (jobs, mut rxs) = jobs();
    let mut set = ScoreSet::new(&model, jobs);
    let shared = |t: &Task| matches!(t, Task::Shared(g) if g.shared == 300);
    assert!(
        set.tasks.iter().any(shared),
        "the four prompts share their prefix's pass"
    );
    let mut gen = Batch::new(&model);
    let (g, mut rx_g) = job(vec![vec![1, 5, 9, 30]], greedy(30, None));
    gen.admit(g);
    gen.step();
    assert_eq!(tokens(&drain(&mut rx_g)), 1);
    let mut pieces = 0;
    loop {
        let over = match set.work(&model, PREFILL_CHUNK) {
            Ok(over) => over,
            Err(_) => panic!("the scoring failed"),
        };
        pieces += 1;
        assert!(rxs.iter_mut().all(|rx| drain(rx).is_empty()));
        gen.step();
        assert_eq!(tokens(&drain(&mut rx_g)), 1, "the stream missed a step");
        if over {
            break;
        }
    }
    // whole passes within PREFILL_CHUNK positions: 700 = 256 + 256 + 188; the prefix
    // 300 = 256 + 44, which leaves room for the batched pass of 4 x 6
    assert_eq!(pieces, 5);
    assert!(set.finish(&model).is_ok());
    let got: Vec<Vec<String>> = rxs.iter_mut().map(drain).collect();
    assert_eq!(got, want);
}

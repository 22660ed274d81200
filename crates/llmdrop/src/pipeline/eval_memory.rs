//! How an evaluation runs a model within the memory policy: held when the model with the
//! widest task pass (and the perplexity window) fits, else layer-streamed, each task and
//! the perplexity cut into groups and head slices that fit.

use crate::budget::{self, Largest, McNeed, MemoryChoice, MemoryPolicy, Need, PplNeed, ScoreMode};
use crate::error::{Error, Result};
use crate::eval::mc_plan::{passes, plan_example};
use crate::eval::ppl::Windows;
use crate::eval::{PplOptions, StreamShape, Task};
use crate::io::source::ModelSource;
use crate::io::tokenizer::Tokenizer;
use crate::quant::Precision;

/// How each task and the perplexity run when streamed (all default when held).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EvalShapes {
    pub tasks: Vec<StreamShape>,
    pub ppl: StreamShape,
}

/// The memory choice for evaluating `tasks` (and the perplexity of `ppl`) on `src` at
/// `precision` within `policy`, and the streamed shapes.
pub(crate) fn eval_memory(
    src: &ModelSource,
    precision: Precision,
    tok: &Tokenizer,
    tasks: &[Task],
    ppl: Option<(&[u32], &PplOptions)>,
    policy: &MemoryPolicy,
) -> Result<(MemoryChoice, EvalShapes)> {
    let lanes = rayon::current_num_threads();
    let max_len = src.config().max_position_embeddings;
    let pad = tok.eos.first().copied().unwrap_or(0);
    let mut needs = Vec::with_capacity(tasks.len());
    for t in tasks {
        let mut tokens = Vec::new();
        let mut examples = Vec::with_capacity(t.examples.len());
        for ex in &t.examples {
            let parts = plan_example(tok, ex, max_len)
                .map_err(|e| Error::context(format!("task {}", t.name), e))?;
            examples.push(passes(&parts, pad, &mut tokens));
        }
        tokens.sort_unstable();
        tokens.dedup();
        needs.push(McNeed::estimate(
            src,
            precision,
            &examples,
            tokens.len(),
            lanes,
        ));
    }
    let ppl_need = ppl
        .map(|(ids, o)| ppl_need(src, precision, ids, o))
        .transpose()?;
    let budget = budget::budget(policy);
    let fit = |n: &dyn Fn(u64) -> StreamShape| {
        budget
            .as_ref()
            .map_or(StreamShape::default(), |(b, _)| n(*b))
    };
    let mut shapes = EvalShapes {
        tasks: needs.iter().map(|n| fit(&|b| n.shape_within(b))).collect(),
        ppl: ppl_need
            .as_ref()
            .map_or(StreamShape::default(), |n| fit(&|b| n.shape_within(b))),
    };
    let shaped: Vec<McNeed> = needs
        .iter()
        .zip(&shapes.tasks)
        .map(|(n, s)| n.shaped(*s))
        .collect();
    let ppl_shaped = ppl_need.map(|n| n.shaped(shapes.ppl));
    let all: Vec<&dyn Need> = shaped
        .iter()
        .map(|n| n as &dyn Need)
        .chain(ppl_shaped.iter().map(|n| n as &dyn Need))
        .collect();
    let choice = budget::choose(&Largest(all), policy)?;
    if choice.mode == ScoreMode::InMemory {
        shapes = EvalShapes::default();
    }
    Ok((choice, shapes))
}

/// The perplexity estimate for the windows `opts` cuts `ids` into, all at once.
pub(crate) fn ppl_need(
    src: &ModelSource,
    precision: Precision,
    ids: &[u32],
    opts: &PplOptions,
) -> Result<PplNeed> {
    let windows = Windows::cut(ids, opts)?;
    let mut seen: Vec<u32> = windows.wins.iter().flatten().copied().collect();
    seen.sort_unstable();
    seen.dedup();
    let n = windows.wins.len();
    Ok(PplNeed::estimate(
        src,
        precision,
        n,
        n,
        opts.seq_len,
        seen.len(),
        rayon::current_num_threads(),
    ))
}

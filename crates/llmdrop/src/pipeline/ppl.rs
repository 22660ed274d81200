//! Perplexity of a model on a text, with the model held or its layers streamed as the
//! memory policy allows.

use candle_core::Device;

use super::events::{Event, Observer};
use crate::budget::{self, MemoryChoice, MemoryPolicy, PplNeed, ScoreMode};
use crate::error::Result;
use crate::eval::ppl::Windows;
use crate::eval::{perplexity, perplexity_streamed, PplOptions, PplResult};
use crate::io::source::ModelSource;
use crate::model::LayerStream;
use crate::plan::DropPlan;
use crate::quant::Precision;

/// A perplexity run: the result, and how the model was run.
#[derive(Debug, Clone)]
pub struct PplRun {
    pub result: PplResult,
    pub memory: MemoryChoice,
    /// Layer-streamed: the windows run through the layers at once (all of them unless the
    /// budget holds fewer).
    pub group: Option<usize>,
}

/// Perplexity of `src` with `plan` at `precision` on `text`, cut as `opts` says (its
/// `bos` is the tokenizer's): held in memory when it fits `memory` (and streaming is not
/// forced), else layer-streamed ([`perplexity_streamed`], the same bits), in groups of
/// windows when the budget holds only some. Says the mode ([`Event::PplMode`]) before any
/// weight is read.
pub fn ppl_model(
    src: &ModelSource,
    precision: Precision,
    plan: &DropPlan,
    text: &str,
    opts: &PplOptions,
    memory: &MemoryPolicy,
    obs: &mut dyn Observer,
) -> Result<PplRun> {
    let tok = src.tokenizer()?;
    let ids = tok.encode(text)?;
    let opts = PplOptions {
        bos: tok.sequence_bos(),
        ..opts.clone()
    };
    drop(tok);
    obs.event(Event::Freed);
    let windows = Windows::cut(&ids, &opts)?;
    let mut seen: Vec<u32> = windows.wins.iter().flatten().copied().collect();
    seen.sort_unstable();
    seen.dedup();
    let n = windows.wins.len();
    drop(windows);
    let need = PplNeed::estimate(
        src,
        precision,
        n,
        n,
        opts.seq_len,
        seen.len(),
        rayon::current_num_threads(),
    );
    let group = budget::budget(memory).and_then(|(b, _)| need.group_within(b));
    let need = need.with_group(group.unwrap_or(n) as u64);
    let memory = budget::choose(&need, memory)?;
    let group = (memory.mode == ScoreMode::Streamed).then(|| group.unwrap_or(n));
    obs.event(Event::PplMode {
        choice: memory,
        group,
    });
    let result = match memory.mode {
        ScoreMode::InMemory => {
            let dec = src.load_decoder(plan, precision, &Device::Cpu)?;
            obs.event(Event::Freed);
            perplexity(&dec, &ids, &opts, obs)?
        }
        ScoreMode::Streamed => {
            let stream = LayerStream::open(src, plan, precision, &Device::Cpu)?;
            perplexity_streamed(&stream, &ids, &opts, group, obs)?
        }
    };
    Ok(PplRun {
        result,
        memory,
        group,
    })
}

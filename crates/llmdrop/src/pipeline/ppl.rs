//! Perplexity of a model on a text, with the model held or its layers streamed as the
//! memory policy allows.

use candle_core::Device;

use super::events::{Event, Observer};
use crate::budget::{self, MemoryChoice, MemoryPolicy, ScoreMode};
use crate::error::Result;
use crate::eval::{perplexity, perplexity_streamed, PplOptions, PplResult, StreamShape};
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
    /// Layer-streamed: the output head's vocabulary rows held at once (all of them unless
    /// the budget holds fewer).
    pub head_rows: Option<usize>,
}

/// Perplexity of `src` with `plan` at `precision` on `text`, cut as `opts` says (its
/// `bos` is the tokenizer's): held in memory when it fits `memory` (and streaming is not
/// forced), else layer-streamed ([`perplexity_streamed`], the same bits), in groups of
/// windows and slices of the output head when the budget holds only some. Says the mode
/// ([`Event::PplMode`]) before any weight is read.
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
    let (memory, shape) = ppl_memory(src, precision, &ids, &opts, memory)?;
    obs.event(Event::PplMode {
        choice: memory,
        group: shape.group,
        head_rows: shape.head_rows,
    });
    let result = match memory.mode {
        ScoreMode::InMemory => {
            let dec = src.load_decoder(plan, precision, &Device::Cpu)?;
            obs.event(Event::Freed);
            perplexity(&dec, &ids, &opts, obs)?
        }
        ScoreMode::Streamed => {
            let stream = LayerStream::open(src, plan, precision, &Device::Cpu)?;
            perplexity_streamed(&stream, &ids, &opts, shape, obs)?
        }
    };
    Ok(PplRun {
        result,
        memory,
        group: shape.group,
        head_rows: shape.head_rows,
    })
}

/// How perplexity of `ids` runs within `memory`: the choice, and layer-streamed, the
/// windows at once and head rows at once (both None when held).
pub(crate) fn ppl_memory(
    src: &ModelSource,
    precision: Precision,
    ids: &[u32],
    opts: &PplOptions,
    memory: &MemoryPolicy,
) -> Result<(MemoryChoice, StreamShape)> {
    let need = super::eval_memory::ppl_need(src, precision, ids, opts)?;
    let shape =
        budget::budget(memory).map_or(StreamShape::default(), |(b, _)| need.shape_within(b));
    let need = need.shaped(shape);
    let memory = budget::choose(&need, memory)?;
    let shape = match memory.mode {
        ScoreMode::Streamed => StreamShape {
            group: Some(shape.group.unwrap_or(need.windows as usize)),
            head_rows: Some(shape.head_rows.unwrap_or(src.config().vocab_size)),
        },
        ScoreMode::InMemory => StreamShape::default(),
    };
    Ok((memory, shape))
}

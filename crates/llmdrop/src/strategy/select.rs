//! Selection: one shot from the unpruned model's scores, consecutive runs, or iterative
//! re-scoring.

use super::rank::{allowed_layers, apply, not_finite, ranked};
use super::{SelectOptions, Strategy};
use crate::error::{Error, Result, StrategyError};
use crate::plan::DropPlan;
use crate::score::ScoreTable;

/// One-shot selection from the unpruned model's scores. A module whose similarity is not
/// finite is never dropped: it ranks last, and asking for more modules than have finite
/// similarities is an error.
pub fn select(table: &ScoreTable, strategy: Strategy, o: &SelectOptions) -> Result<DropPlan> {
    table.validate()?;
    let allowed = allowed_layers(table.num_layers, o)?;
    if strategy == Strategy::Consecutive {
        return select_consecutive(table, &allowed, o);
    }
    let cands = ranked(table, strategy, &allowed, &DropPlan::empty());
    if o.n > cands.len() {
        return Err(too_many(strategy, o.n, cands.len()));
    }
    let mut plan = DropPlan::empty();
    for &(v, kind, layer) in &cands[..o.n] {
        if !v.is_finite() {
            return Err(not_finite(strategy, v, kind, layer));
        }
        apply(&mut plan, kind, layer);
    }
    Ok(plan)
}

fn too_many(strategy: Strategy, n: usize, available: usize) -> Error {
    StrategyError::TooMany {
        strategy: strategy.to_string(),
        n,
        available,
    }
    .into()
}

/// Layers i..i+n-1 for the allowed i maximising cos(h_i, h_{i+n}); ties to the lower i.
/// Starts whose similarity is not finite are never chosen; if no start has a finite one,
/// an error.
fn select_consecutive(
    table: &ScoreTable,
    allowed: &[usize],
    o: &SelectOptions,
) -> Result<DropPlan> {
    let s = table
        .consecutive
        .as_ref()
        .ok_or_else(|| Error::from(StrategyError::NoConsecutiveScores))?;
    if o.n == 0 {
        return Ok(DropPlan::empty());
    }
    let (lo, hi) = match (allowed.first(), allowed.last()) {
        (Some(&a), Some(&b)) => (a, b + 1),
        _ => return Err(too_many(Strategy::Consecutive, o.n, 0)),
    };
    if o.n > hi - lo {
        return Err(too_many(Strategy::Consecutive, o.n, hi - lo));
    }
    let mut best: Option<(f64, usize)> = None;
    for (i, row) in s.iter().enumerate().take(hi - o.n + 1).skip(lo) {
        let v = row[o.n - 1];
        if v.is_finite() && best.is_none_or(|(b, _)| v > b) {
            best = Some((v, i));
        }
    }
    let Some((_, i)) = best else {
        return Err(StrategyError::NoFiniteRun { n: o.n }.into());
    };
    Ok(DropPlan::new(i..i + o.n, i..i + o.n))
}

/// Iterative drop: drop the single most redundant module, re-score the pruned model with
/// `rescore`, repeat `o.n` times. Unlike LLM-Drop, the surviving sibling of a half-dropped
/// layer keeps running and keeps its score. Returns the plan and the score table of each
/// step (the first from the unpruned model).
pub fn select_iterative(
    strategy: Strategy,
    o: &SelectOptions,
    num_layers: usize,
    rescore: &mut dyn FnMut(&DropPlan) -> Result<ScoreTable>,
) -> Result<(DropPlan, Vec<ScoreTable>)> {
    if strategy == Strategy::Consecutive {
        return Err(StrategyError::IterativeConsecutive.into());
    }
    let allowed = allowed_layers(num_layers, o)?;
    let mut plan = DropPlan::empty();
    let available = ranked(
        &ScoreTable {
            num_layers,
            tokens: 0,
            residual: true,
            block: vec![0.0; num_layers],
            attn: vec![0.0; num_layers],
            mlp: vec![0.0; num_layers],
            consecutive: None,
        },
        strategy,
        &allowed,
        &plan,
    )
    .len();
    if o.n > available {
        return Err(too_many(strategy, o.n, available));
    }
    let mut tables = Vec::with_capacity(o.n);
    for _ in 0..o.n {
        let table = rescore(&plan)?;
        if table.num_layers != num_layers {
            return Err(StrategyError::Rescored {
                got: table.num_layers,
                num_layers,
            }
            .into());
        }
        table.validate()?;
        let (v, kind, layer) = ranked(&table, strategy, &allowed, &plan)[0];
        if !v.is_finite() {
            return Err(not_finite(strategy, v, kind, layer));
        }
        apply(&mut plan, kind, layer);
        tables.push(table);
    }
    Ok((plan, tables))
}

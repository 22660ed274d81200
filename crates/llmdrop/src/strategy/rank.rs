//! Ranking candidates: which modules may go (the protected layers aside), most redundant
//! first, and how a chosen one enters the plan.

use super::{SelectOptions, Strategy};
use crate::error::{Error, Result, StrategyError};
use crate::plan::DropPlan;
use crate::score::table::redundancy_order;
use crate::score::ScoreTable;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Kind {
    Attn,
    Mlp,
    Block,
}

/// Candidates of one step, each (similarity, kind, layer), most redundant first; ties go
/// to the lower layer, then attention before MLP. A similarity that is not finite (NaN or
/// infinite: an overflow in the scored model) ranks below every finite one, as the least
/// redundant: it says nothing about the module, and the callers refuse to drop it.
pub(super) fn ranked(
    table: &ScoreTable,
    strategy: Strategy,
    allowed: &[usize],
    done: &DropPlan,
) -> Vec<(f64, Kind, usize)> {
    let mut c = Vec::new();
    for &i in allowed {
        let attn_left = !done.drops_attn(i);
        let mlp_left = !done.drops_mlp(i);
        match strategy {
            Strategy::Attn | Strategy::Joint if attn_left => c.push((table.attn[i], Kind::Attn, i)),
            _ => {}
        }
        match strategy {
            Strategy::Mlp | Strategy::Joint if mlp_left => c.push((table.mlp[i], Kind::Mlp, i)),
            Strategy::Block if attn_left || mlp_left => c.push((table.block[i], Kind::Block, i)),
            _ => {}
        }
    }
    c.sort_by(|a, b| {
        redundancy_order(b.0, a.0)
            .then(a.2.cmp(&b.2))
            .then(a.1.cmp(&b.1))
    });
    c
}

/// The error for a step whose next most redundant candidate has no finite similarity.
pub(super) fn not_finite(strategy: Strategy, value: f64, kind: Kind, layer: usize) -> Error {
    let what = match kind {
        Kind::Attn => "attention layer",
        Kind::Mlp => "MLP layer",
        Kind::Block => "block",
    };
    StrategyError::NotFinite {
        strategy: strategy.to_string(),
        module: what,
        layer,
        value,
    }
    .into()
}

pub(super) fn allowed_layers(num_layers: usize, o: &SelectOptions) -> Result<Vec<usize>> {
    if o.keep_first + o.keep_last > num_layers {
        return Err(StrategyError::Protected {
            keep_first: o.keep_first,
            keep_last: o.keep_last,
            num_layers,
        }
        .into());
    }
    Ok((o.keep_first..num_layers - o.keep_last).collect())
}

pub(super) fn apply(plan: &mut DropPlan, kind: Kind, layer: usize) {
    match kind {
        Kind::Attn => {
            plan.attn.insert(layer);
        }
        Kind::Mlp => {
            plan.mlp.insert(layer);
        }
        Kind::Block => {
            plan.attn.insert(layer);
            plan.mlp.insert(layer);
        }
    }
}

//! Strategies: a [`ScoreTable`] (or a re-scoring loop) -> a [`DropPlan`].

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::plan::DropPlan;
use crate::score::table::redundancy_order;
use crate::score::ScoreTable;

/// What is ranked and dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// The k blocks with the highest block similarity.
    Block,
    /// k consecutive blocks i..i+k-1 where cos(h_i, h_{i+k}) is highest (Gromov et al.).
    Consecutive,
    /// The k most similar attention layers.
    Attn,
    /// The k most similar MLP layers.
    Mlp,
    /// Attention and MLP layers ranked together; the k most similar.
    Joint,
}

impl FromStr for Strategy {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "block" => Strategy::Block,
            "consecutive" => Strategy::Consecutive,
            "attn" => Strategy::Attn,
            "mlp" => Strategy::Mlp,
            "joint" => Strategy::Joint,
            other => {
                return Err(Error::Input(format!(
                    "unknown strategy `{other}` (block, consecutive, attn, mlp, joint)"
                )))
            }
        })
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Strategy::Block => "block",
            Strategy::Consecutive => "consecutive",
            Strategy::Attn => "attn",
            Strategy::Mlp => "mlp",
            Strategy::Joint => "joint",
        };
        f.write_str(s)
    }
}

/// How many modules to drop and which layers are protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelectOptions {
    pub n: usize,
    /// Never drop anything in the first `keep_first` layers.
    pub keep_first: usize,
    /// Never drop anything in the last `keep_last` layers.
    pub keep_last: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Attn,
    Mlp,
    Block,
}

/// Candidates of one step, each (similarity, kind, layer), most redundant first; ties go
/// to the lower layer, then attention before MLP. A similarity that is not finite (NaN or
/// infinite: an overflow in the scored model) ranks below every finite one, as the least
/// redundant: it says nothing about the module, and the callers refuse to drop it.
fn ranked(
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
fn not_finite(strategy: Strategy, value: f64, kind: Kind, layer: usize) -> Error {
    let what = match kind {
        Kind::Attn => "attention layer",
        Kind::Mlp => "MLP layer",
        Kind::Block => "block",
    };
    Error::Input(format!(
        "cannot drop more with strategy {strategy}: the next candidate, {what} {layer}, has similarity {value}, which is not finite (the model overflows or has non-finite weights); only modules with finite similarities are dropped"
    ))
}

fn allowed_layers(num_layers: usize, o: &SelectOptions) -> Result<Vec<usize>> {
    if o.keep_first + o.keep_last > num_layers {
        return Err(Error::Input(format!(
            "--keep-first {} and --keep-last {} protect more than the model's {num_layers} layers",
            o.keep_first, o.keep_last
        )));
    }
    Ok((o.keep_first..num_layers - o.keep_last).collect())
}

fn apply(plan: &mut DropPlan, kind: Kind, layer: usize) {
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
    Error::Input(format!(
        "cannot drop {n} with strategy {strategy}: only {available} candidates (after --keep-first/--keep-last)"
    ))
}

/// Layers i..i+n-1 for the allowed i maximising cos(h_i, h_{i+n}); ties to the lower i.
/// Starts whose similarity is not finite are never chosen; if no start has a finite one,
/// an error.
fn select_consecutive(
    table: &ScoreTable,
    allowed: &[usize],
    o: &SelectOptions,
) -> Result<DropPlan> {
    let s = table.consecutive.as_ref().ok_or_else(|| {
        Error::Input("these scores have no consecutive matrix; score again with it".into())
    })?;
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
        return Err(Error::Input(format!(
            "cannot drop {} consecutive layers: no allowed start has a finite similarity (the model overflows or has non-finite weights)",
            o.n
        )));
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
        return Err(Error::Input(
            "--iterative does not apply to the consecutive strategy".into(),
        ));
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
            return Err(Error::Input(format!(
                "re-scoring gave {} layers, the model has {num_layers}",
                table.num_layers
            )));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn table(block: &[f64], attn: &[f64], mlp: &[f64]) -> ScoreTable {
        let l = attn.len();
        // consecutive[i][n-1]: a made-up matrix where gap n starting at i scores 1 - (i + n) / 100
        // except that layers 2..4 (n = 2, i = 2) are the most similar pair
        let consecutive = (0..l)
            .map(|i| {
                (1..=l - i)
                    .map(|n| {
                        if (i, n) == (2, 2) {
                            0.99
                        } else {
                            0.9 - 0.01 * (i + n) as f64
                        }
                    })
                    .collect()
            })
            .collect();
        ScoreTable {
            num_layers: l,
            tokens: 1,
            residual: true,
            block: block.to_vec(),
            attn: attn.to_vec(),
            mlp: mlp.to_vec(),
            consecutive: Some(consecutive),
        }
    }

    fn o(n: usize) -> SelectOptions {
        SelectOptions {
            n,
            keep_first: 0,
            keep_last: 0,
        }
    }

    fn t() -> ScoreTable {
        table(
            &[0.80, 0.85, 0.90, 0.95, 0.70],
            &[0.50, 0.97, 0.90, 0.97, 0.99],
            &[0.60, 0.70, 0.98, 0.65, 0.80],
        )
    }

    #[test]
    fn attn_mlp_block_pick_the_most_similar_ties_to_lower_index() {
        assert_eq!(
            select(&t(), Strategy::Attn, &o(2)).unwrap(),
            DropPlan::new([4, 1], [])
        );
        assert_eq!(
            select(&t(), Strategy::Attn, &o(3)).unwrap(),
            DropPlan::new([1, 3, 4], [])
        );
        assert_eq!(
            select(&t(), Strategy::Mlp, &o(2)).unwrap(),
            DropPlan::new([], [2, 4])
        );
        assert_eq!(
            select(&t(), Strategy::Block, &o(2)).unwrap(),
            DropPlan::new([2, 3], [2, 3])
        );
    }

    #[test]
    fn joint_ranks_attention_and_mlp_together() {
        // 0.99 attn4, 0.98 mlp2, 0.97 attn1, 0.97 attn3
        assert_eq!(
            select(&t(), Strategy::Joint, &o(2)).unwrap(),
            DropPlan::new([4], [2])
        );
        assert_eq!(
            select(&t(), Strategy::Joint, &o(4)).unwrap(),
            DropPlan::new([1, 3, 4], [2])
        );
    }

    #[test]
    fn protected_layers_and_counts() {
        let k = SelectOptions {
            n: 2,
            keep_first: 2,
            keep_last: 1,
        };
        assert_eq!(
            select(&t(), Strategy::Attn, &k).unwrap(),
            DropPlan::new([2, 3], [])
        );
        let e = select(&t(), Strategy::Attn, &SelectOptions { n: 3, ..k }).unwrap_err();
        assert!(e.to_string().contains("only 2 candidates"), "{e}");
        assert!(select(&t(), Strategy::Joint, &o(10)).is_ok());
        assert!(select(&t(), Strategy::Joint, &o(11)).is_err());
        assert!(select(
            &t(),
            Strategy::Attn,
            &SelectOptions {
                n: 0,
                keep_first: 3,
                keep_last: 3
            }
        )
        .is_err());
    }

    #[test]
    fn consecutive_drops_the_run_with_the_most_similar_ends() {
        // gap 2 is best at i = 2: drop layers 2 and 3 (not 2..4: the gap is the count)
        assert_eq!(
            select(&t(), Strategy::Consecutive, &o(2)).unwrap(),
            DropPlan::new([2, 3], [2, 3])
        );
        // gap 1: 0.9 - 0.01 (i + 1) is largest at i = 0
        assert_eq!(
            select(&t(), Strategy::Consecutive, &o(1)).unwrap(),
            DropPlan::new([0], [0])
        );
        let keep = SelectOptions {
            n: 2,
            keep_first: 3,
            keep_last: 0,
        };
        assert_eq!(
            select(&t(), Strategy::Consecutive, &keep).unwrap(),
            DropPlan::new([3, 4], [3, 4])
        );
        assert!(select(&t(), Strategy::Consecutive, &o(6)).is_err());
    }

    #[test]
    fn iterative_rescores_and_can_differ_from_one_shot() {
        // once attention 4 is gone, attention 1 and 3 look less redundant; 2 becomes best
        let mut calls = Vec::new();
        let mut rescore = |plan: &DropPlan| -> Result<ScoreTable> {
            calls.push(plan.clone());
            let mut s = t();
            if plan.drops_attn(4) {
                s.attn = vec![0.5, 0.6, 0.95, 0.6, 1.0];
            }
            Ok(s)
        };
        let (plan, tables) = select_iterative(Strategy::Attn, &o(2), 5, &mut rescore).unwrap();
        assert_eq!(plan, DropPlan::new([2, 4], []));
        assert_eq!(tables.len(), 2);
        assert_eq!(calls, vec![DropPlan::empty(), DropPlan::new([4], [])]);
        assert_eq!(
            select(&t(), Strategy::Attn, &o(2)).unwrap(),
            DropPlan::new([1, 4], [])
        );
        // a dropped module is never picked again even if it still scores highest
        let mut same = |_: &DropPlan| Ok(t());
        let (plan, _) = select_iterative(Strategy::Joint, &o(3), 5, &mut same).unwrap();
        assert_eq!(plan, DropPlan::new([1, 4], [2]));
        assert!(select_iterative(Strategy::Consecutive, &o(1), 5, &mut same).is_err());
    }

    #[test]
    fn non_finite_similarities_rank_last_and_are_never_dropped() {
        let nan = f64::NAN;
        // a NaN (either sign) or +inf would sort first under a plain total order
        let s = table(
            &[nan, 0.85, f64::INFINITY, 0.95, 0.70],
            &[-nan, 0.97, 0.90, nan, 0.99],
            &[0.60, f64::NEG_INFINITY, 0.98, 0.65, nan],
        );
        assert_eq!(
            select(&s, Strategy::Attn, &o(3)).unwrap(),
            DropPlan::new([1, 2, 4], [])
        );
        assert_eq!(
            select(&s, Strategy::Block, &o(3)).unwrap(),
            DropPlan::new([1, 3, 4], [1, 3, 4])
        );
        assert_eq!(
            select(&s, Strategy::Joint, &o(4)).unwrap(),
            DropPlan::new([1, 2, 4], [2])
        );
        // asking for a module with no finite similarity is refused, naming it
        let e = select(&s, Strategy::Attn, &o(4)).unwrap_err().to_string();
        assert!(
            e.contains("attention layer 0") && e.contains("not finite"),
            "{e}"
        );
        let e = select(&s, Strategy::Mlp, &o(4)).unwrap_err().to_string();
        assert!(e.contains("MLP layer 1"), "{e}");
        assert_eq!(
            ScoreTable::ranks(&s.attn),
            vec![4, 2, 3, 5, 1],
            "non-finite values rank last, ties to the lower index"
        );
        // iterative: the same rule at every step
        let mut same = |_: &DropPlan| Ok(s.clone());
        let (plan, _) = select_iterative(Strategy::Attn, &o(3), 5, &mut same).unwrap();
        assert_eq!(plan, DropPlan::new([1, 2, 4], []));
        assert!(select_iterative(Strategy::Attn, &o(4), 5, &mut same).is_err());
        // consecutive: a NaN start is never chosen, even at the lowest allowed start
        let mut c = t();
        c.consecutive.as_mut().unwrap()[0][0] = nan;
        c.consecutive.as_mut().unwrap()[1][0] = f64::INFINITY;
        assert_eq!(
            select(&c, Strategy::Consecutive, &o(1)).unwrap(),
            DropPlan::new([2], [2])
        );
        for row in c.consecutive.as_mut().unwrap() {
            row[0] = nan;
        }
        assert!(select(&c, Strategy::Consecutive, &o(1)).is_err());
    }

    #[test]
    fn a_table_with_missing_values_is_an_error_not_a_panic() {
        let mut s = t();
        s.attn.pop();
        let e = select(&s, Strategy::Attn, &o(1)).unwrap_err().to_string();
        assert!(e.contains("`attn` has 4 values for 5 layers"), "{e}");
        let mut s = t();
        s.consecutive.as_mut().unwrap()[3].clear();
        assert!(select(&s, Strategy::Consecutive, &o(1)).is_err());
    }

    #[test]
    fn parse_strategy() {
        assert_eq!("joint".parse::<Strategy>().unwrap(), Strategy::Joint);
        assert!("attention"
            .parse::<Strategy>()
            .unwrap_err()
            .to_string()
            .contains("unknown strategy"));
    }
}

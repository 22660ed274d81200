//! Selection tests on hand-made score tables.

use super::*;
use crate::plan::DropPlan;
use crate::score::ScoreTable;

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

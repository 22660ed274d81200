//! [`ScoreTable`]: similarities of every block, attention and MLP layer.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::json_f64;

/// Mean per-token cosine similarities (importance = 1 − similarity; high = redundant).
/// Serialized with every value kept, NaN and the infinities included (as the strings
/// `"NaN"`, `"inf"` and `"-inf"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreTable {
    pub num_layers: usize,
    /// Calibration tokens the means are over.
    pub tokens: u64,
    /// Whether attention / MLP similarities include the residual (the paper's default).
    pub residual: bool,
    /// cos(X_i, Z_i): layer input vs output.
    #[serde(with = "json_f64::vec")]
    pub block: Vec<f64>,
    /// cos(X_i, Y_i) (or cos(LN1 X, Attn(LN1 X)) without residual); 1 for a dropped module.
    #[serde(with = "json_f64::vec")]
    pub attn: Vec<f64>,
    /// cos(Y_i, Z_i) (or cos(LN2 Y, MLP(LN2 Y)) without residual); 1 for a dropped module.
    #[serde(with = "json_f64::vec")]
    pub mlp: Vec<f64>,
    /// `consecutive[i][n-1]` = mean cos(h_i, h_{i+n}) for n = 1..=L-i, where h_i is layer
    /// i's input and h_L the last layer's output before the final norm.
    #[serde(default, with = "json_f64::opt_matrix")]
    pub consecutive: Option<Vec<Vec<f64>>>,
}

impl ScoreTable {
    /// Rank (1 = most redundant) of every value, ties to the lower index; values that are
    /// not finite rank last.
    pub fn ranks(values: &[f64]) -> Vec<usize> {
        let mut order: Vec<usize> = (0..values.len()).collect();
        order.sort_by(|&a, &b| redundancy_order(values[b], values[a]).then(a.cmp(&b)));
        let mut rank = vec![0; values.len()];
        for (r, &i) in order.iter().enumerate() {
            rank[i] = r + 1;
        }
        rank
    }

    /// Checks the table is whole: one block, attention and MLP value per layer, and row `i`
    /// of the consecutive matrix holding `num_layers - i` values (a table read from a file
    /// could say anything).
    pub fn validate(&self) -> Result<()> {
        let l = self.num_layers;
        for (what, v) in [
            ("block", &self.block),
            ("attn", &self.attn),
            ("mlp", &self.mlp),
        ] {
            if v.len() != l {
                return Err(Error::ScoreTable {
                    reason: format!("`{what}` has {} values for {l} layers", v.len()),
                });
            }
        }
        if let Some(c) = &self.consecutive {
            if c.len() != l {
                return Err(Error::ScoreTable {
                    reason: format!("the consecutive matrix has {} rows for {l} layers", c.len()),
                });
            }
            if let Some((i, row)) = c.iter().enumerate().find(|(i, r)| r.len() != l - i) {
                return Err(Error::ScoreTable {
                    reason: format!(
                        "row {i} of the consecutive matrix has {} values, not {}",
                        row.len(),
                        l - i
                    ),
                });
            }
        }
        Ok(())
    }
}

/// Orders similarities by redundancy: finite values by value, and every value that is not
/// finite (NaN or infinite, from an overflow: it says nothing about the module) below every
/// finite one, as the least redundant; non-finite values tie among themselves.
pub fn redundancy_order(a: f64, b: f64) -> Ordering {
    match (a.is_finite(), b.is_finite()) {
        (true, true) => a.total_cmp(&b),
        (x, y) => x.cmp(&y),
    }
}

//! [`ScoreTable`]: similarities of every block, attention and MLP layer.

use serde::{Deserialize, Serialize};

/// Mean per-token cosine similarities (importance = 1 − similarity; high = redundant).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreTable {
    pub num_layers: usize,
    /// Calibration tokens the means are over.
    pub tokens: u64,
    /// Whether attention / MLP similarities include the residual (the paper's default).
    pub residual: bool,
    /// cos(X_i, Z_i): layer input vs output.
    pub block: Vec<f64>,
    /// cos(X_i, Y_i) (or cos(LN1 X, Attn(LN1 X)) without residual); 1 for a dropped module.
    pub attn: Vec<f64>,
    /// cos(Y_i, Z_i) (or cos(LN2 Y, MLP(LN2 Y)) without residual); 1 for a dropped module.
    pub mlp: Vec<f64>,
    /// `consecutive[i][n-1]` = mean cos(h_i, h_{i+n}) for n = 1..=L-i, where h_i is layer
    /// i's input and h_L the last layer's output before the final norm.
    pub consecutive: Option<Vec<Vec<f64>>>,
}

impl ScoreTable {
    /// Rank (1 = most redundant) of every value, ties to the lower index.
    pub fn ranks(values: &[f64]) -> Vec<usize> {
        let mut order: Vec<usize> = (0..values.len()).collect();
        order.sort_by(|&a, &b| values[b].total_cmp(&values[a]).then(a.cmp(&b)));
        let mut rank = vec![0; values.len()];
        for (r, &i) in order.iter().enumerate() {
            rank[i] = r + 1;
        }
        rank
    }
}

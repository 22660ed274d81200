//! Strategies: a [`ScoreTable`](crate::score::ScoreTable) (or a re-scoring loop) -> a
//! [`DropPlan`](crate::plan::DropPlan).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

mod rank;
mod select;

pub use select::{select, select_iterative};

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
                return Err(Error::Unknown {
                    what: "strategy",
                    name: other.into(),
                    expected: "block, consecutive, attn, mlp, joint".into(),
                })
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

#[cfg(test)]
mod tests;

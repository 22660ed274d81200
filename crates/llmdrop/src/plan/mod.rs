//! [`DropPlan`]: the single description of a pruned model.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::error::{Error, PlanError, Result};

/// Which attention and MLP sub-layers are removed. Dropping block i = i in both sets.
///
/// ```
/// use llmdrop::DropPlan;
///
/// // attention of layers 3, 5, 6 and 7; the MLP of layer 5 (so block 5 goes whole)
/// let plan = DropPlan::new(DropPlan::parse_list("3,5-7")?, [5]);
/// assert!(plan.drops_attn(6) && !plan.drops_mlp(6));
/// assert!(plan.drops_block(5));
/// plan.validate(8)?; // fits a model of 8 layers
/// assert!(plan.validate(6).is_err()); // not one of 6
/// assert!(DropPlan::parse_list("3,x").is_err());
/// # Ok::<(), llmdrop::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DropPlan {
    pub attn: BTreeSet<usize>,
    pub mlp: BTreeSet<usize>,
}

/// Layer indices a drop list may name: more than any model has.
pub const MAX_LAYER_INDEX: usize = 1 << 16;

impl DropPlan {
    /// The plan that keeps everything.
    pub fn empty() -> Self {
        Self::default()
    }

    pub fn new(
        attn: impl IntoIterator<Item = usize>,
        mlp: impl IntoIterator<Item = usize>,
    ) -> Self {
        Self {
            attn: attn.into_iter().collect(),
            mlp: mlp.into_iter().collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.attn.is_empty() && self.mlp.is_empty()
    }

    pub fn drops_attn(&self, layer: usize) -> bool {
        self.attn.contains(&layer)
    }

    pub fn drops_mlp(&self, layer: usize) -> bool {
        self.mlp.contains(&layer)
    }

    /// Both plans' drops.
    pub fn union(&self, other: &DropPlan) -> DropPlan {
        DropPlan {
            attn: self.attn.union(&other.attn).copied().collect(),
            mlp: self.mlp.union(&other.mlp).copied().collect(),
        }
    }

    /// Whether layer `i` is dropped whole.
    pub fn drops_block(&self, i: usize) -> bool {
        self.drops_attn(i) && self.drops_mlp(i)
    }

    /// Checks every index against the model's layer count.
    pub fn validate(&self, num_layers: usize) -> Result<()> {
        for (kind, set) in [("attention", &self.attn), ("MLP", &self.mlp)] {
            if let Some(&bad) = set.iter().find(|&&i| i >= num_layers) {
                return Err(PlanError::NoSuchLayer {
                    module: kind,
                    layer: bad,
                    num_layers,
                }
                .into());
            }
        }
        Ok(())
    }

    /// Parses a comma-separated list of layer indices (`"3,5,7"`, also ranges `"20-23"`).
    pub fn parse_list(s: &str) -> Result<BTreeSet<usize>> {
        let mut out = BTreeSet::new();
        // checked before a range is expanded: no model has this many layers
        let in_range = |i: usize| {
            if i < MAX_LAYER_INDEX {
                Ok(i)
            } else {
                Err(Error::from(PlanError::BeyondAnyModel {
                    layer: i,
                    max: MAX_LAYER_INDEX,
                }))
            }
        };
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let bad = || {
                Error::from(PlanError::NotALayerList {
                    part: part.to_string(),
                })
            };
            match part.split_once('-') {
                Some((a, b)) => {
                    let a: usize = in_range(a.trim().parse().map_err(|_| bad())?)?;
                    let b: usize = in_range(b.trim().parse().map_err(|_| bad())?)?;
                    if a > b {
                        return Err(bad());
                    }
                    out.extend(a..=b);
                }
                None => {
                    out.insert(in_range(part.parse().map_err(|_| bad())?)?);
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_validate() {
        let s = DropPlan::parse_list("3, 5,20-22").unwrap();
        assert_eq!(s.into_iter().collect::<Vec<_>>(), vec![3, 5, 20, 21, 22]);
        assert!(DropPlan::parse_list("3,x").is_err());
        assert!(DropPlan::parse_list("5-3").is_err());
        let e = DropPlan::parse_list("0-18446744073709551615").unwrap_err();
        assert!(e.to_string().contains("beyond any model"), "{e}");
        let p = DropPlan::new([1], [4]);
        assert!(p.validate(5).is_ok());
        let e = p.validate(4).unwrap_err().to_string();
        assert!(e.contains("MLP layer 4 does not exist"), "{e}");
    }
}

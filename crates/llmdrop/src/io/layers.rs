//! The layer count a header states, checked against the tensors the file holds, before
//! anything is sized from it (a 589 KB file may claim 2^40 layers).

use std::collections::BTreeSet;
use std::path::Path;

use super::names::split_layer_name;
use super::WeightSource;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::plan::DropPlan;

/// Every layer `0..cfg.num_layers` must hold at least one tensor, or be dropped whole by
/// the `stored` plan (whose lists are in the file too). `key` is the header field that
/// states the count (`num_hidden_layers`, `llama.block_count`) and `prefix` how the file
/// names a layer's tensors (`model.layers.`, `blk.`), both named in the error.
pub fn check_layers(
    src: &dyn WeightSource,
    path: &Path,
    key: &str,
    prefix: &str,
    cfg: &Config,
    stored: &DropPlan,
) -> Result<()> {
    let n = cfg.num_layers;
    let with_tensors: BTreeSet<usize> = src
        .tensors()
        .iter()
        .filter_map(|t| split_layer_name(&t.name).map(|(i, _)| i))
        .filter(|&i| i < n)
        .collect();
    let found = with_tensors.len();
    let mut covered = with_tensors;
    covered.extend(stored.attn.intersection(&stored.mlp).filter(|&&i| i < n));
    if covered.len() == n {
        return Ok(());
    }
    // the first gap is at most covered.len(): the search is bounded by what the file holds
    let missing = (0..n).find(|i| !covered.contains(i)).unwrap_or(n);
    Err(Error::BadConfig {
        path: path.into(),
        reason: format!(
            "`{key}` = {n}, but the tensors of layer {missing} (`{prefix}{missing}.*`) are missing (the file holds tensors of {found} layers)"
        ),
    })
}

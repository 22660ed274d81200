//! Which GGUF files of a family whose layer kinds llama.cpp derives from the layer index
//! (Gemma 3: layer `j` runs global attention iff `j % 6 == 5`, every other layer sliding)
//! llama.cpp runs as llmdrop evaluated them. A block drop renumbers the kept layers, so
//! it is writable only when every kept layer keeps its kind at its new index: the number
//! of layers dropped before each kept layer is a multiple of the period (six consecutive
//! layers, say, or any trailing ones). llama.cpp's graph has no attention- or MLP-free
//! layer for these families, and llmdrop copies a GGUF source's blocks, norms (stored
//! `w + 1`) and SentencePiece vocabulary as they are, so the source must be a GGUF file.
//! Checked by running llama.cpp on the exports: `scripts/cross/check_gemma_gguf.py`.

use super::tensors::block_renumbering;
use crate::config::layers::pattern_layers;
use crate::error::{Error, Result};
use crate::io::source::ModelSource;
use crate::plan::DropPlan;

/// Refuses, before anything is written, a GGUF export that llama.cpp would run with other
/// layer kinds than the pruned model has (or cannot run at all). `plan` includes what the
/// source already drops. Families with one kind of layer pass.
pub(crate) fn refuse_index_kinds(src: &ModelSource, plan: &DropPlan) -> Result<()> {
    let cfg = src.config();
    let Some(period) = cfg.arch.gguf_sliding_pattern else {
        return Ok(());
    };
    let name = cfg.arch.name;
    let refuse = |why: String| Err(Error::unsupported("format `gguf`", why));
    if plan.attn != plan.mlp {
        return refuse(format!(
            "llama.cpp's `{}` graph has no layer without attention or without MLP: drop \
             whole blocks, or export as hf-llmdrop",
            cfg.arch.gguf_arch.unwrap_or(name)
        ));
    }
    // what llama.cpp runs at each index of the file (the same rule its GGUF reader uses)
    let llama_cpp = pattern_layers(cfg.num_layers, period);
    for (old, new) in block_renumbering(cfg.num_layers, plan)
        .into_iter()
        .enumerate()
    {
        let Some(new) = new else { continue };
        let (has, runs) = (cfg.attn_kind(old), llama_cpp[new]);
        if has != runs {
            return refuse(format!(
                "layer {old} ({}) would be layer {new} of the file, which llama.cpp runs with \
                 {} (every {period}th layer is global): drop a multiple of {period} layers \
                 before each kept one (e.g. {period} consecutive layers, or trailing layers), \
                 or export as hf / hf-llmdrop",
                has.hf_name(),
                runs.hf_name()
            ));
        }
    }
    if src.gguf().is_none() {
        return refuse(format!(
            "llmdrop writes `{name}` GGUF files from a GGUF source only (its blocks, norms \
             and vocabulary copied as stored); export this model as hf or hf-llmdrop"
        ));
    }
    Ok(())
}

//! Writing pruned models. Every output is staged next to its destination and renamed into
//! place; an input is never written to.

pub(crate) mod gguf;
pub(crate) mod gguf_layout;
pub(crate) mod gguf_tensors;
pub(crate) mod gguf_write;
pub(crate) mod hf;
pub(crate) mod hf_config;
pub(crate) mod nemotron;
mod reload;
pub(crate) mod st_write;
pub(crate) mod tensors;
pub(crate) mod tokenizer_files;

use std::str::FromStr;

use crate::dest::Staging;
/// nemotron-nas: the Python files every export carries (name, contents), the `auto_map` of
/// its config.json that names them, and the plans vLLM cannot run.
pub use crate::formats::nemotron::{
    auto_map as nemotron_auto_map, first_attn_hazard, PY_FILES as NEMOTRON_PY_FILES,
};
pub use gguf::parse_quant;
pub use hf::ExportInfo;
use hf::{write_hf_blocks, write_hf_llmdrop};
pub use nemotron::ffn_mult_to_intermediate;
use nemotron::write_nemotron_nas;
pub use reload::{compare_reload, Reference};
pub use tokenizer_files::write_tokenizer_files;

use crate::error::{Error, Result};

/// The export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExportFormat {
    /// HF directory with LLM-Drop's drop lists (no renumbering).
    HfLlmdrop,
    /// Standard HF checkpoint, whole blocks removed and layers renumbered.
    Hf,
    /// NVIDIA's DeciLM layout with per-layer no-op attention / FFN.
    NemotronNas,
    /// GGUF: renumbered blocks, or arch `deci` for attention / MLP drops.
    Gguf,
}

impl FromStr for ExportFormat {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "hf-llmdrop" => Self::HfLlmdrop,
            "hf" => Self::Hf,
            "nemotron-nas" => Self::NemotronNas,
            "gguf" => Self::Gguf,
            other => {
                return Err(Error::Unknown {
                    what: "format",
                    name: other.into(),
                    expected: "hf-llmdrop, hf, nemotron-nas, gguf".into(),
                })
            }
        })
    }
}

impl ExportFormat {
    /// What the export writes: a GGUF file or a model folder.
    pub fn dest_kind(self) -> crate::dest::Kind {
        match self {
            Self::Gguf => crate::dest::Kind::GgufFile,
            _ => crate::dest::Kind::ModelDir,
        }
    }
}

/// What an export wrote and how it reloaded.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ExportResult {
    pub path: std::path::PathBuf,
    pub format: ExportFormat,
    pub plan: crate::plan::DropPlan,
    /// max |Δlogit| of the reloaded export against the pruned model (for a quantized
    /// export: with its weights rounded in memory as the file stores them); above 1e-4 is
    /// an error.
    pub reload_max_abs_diff: f32,
    /// Positions where the reloaded export and the (unrounded) pruned model give the same
    /// top token: what quantizing costs, reported.
    pub reload_argmax_agreement: f64,
    /// Whether the export stores the weights exactly (else rounded: f16 or quantized).
    pub lossless: bool,
    /// Staging that interrupted runs left beside the destination, removed before writing.
    pub stale_removed: Vec<std::path::PathBuf>,
    /// Whether the reload check ran both models layer by layer (else both were held).
    pub reload_streamed: bool,
}

/// Everything one [`export`] needs: the model and plan to write, where and how, and what
/// the reloaded output is checked against.
#[derive(Clone, Copy)]
pub struct ExportRequest<'a> {
    /// The model the plan is applied to.
    pub source: &'a crate::ModelSource,
    /// Its tokenizer (written beside the weights; GGUF exports embed it).
    pub tokenizer: &'a crate::io::Tokenizer,
    /// The modules to drop.
    pub plan: &'a crate::plan::DropPlan,
    pub format: ExportFormat,
    /// GGUF only: the type to store matrices in (None: as the source stores them).
    pub quant: Option<candle_core::quantized::GgmlDType>,
    /// Provenance written into the export.
    pub info: &'a ExportInfo,
    /// The file or directory to write.
    pub dest: &'a std::path::Path,
    /// Replace an earlier llmdrop output at `dest` (never anything else).
    pub force: bool,
    /// What the reloaded export must match: the in-memory pruned model, or the source
    /// with the plan run layer by layer (for models larger than memory).
    pub reference: Reference<'a>,
    /// Token ids both are run on for that check.
    pub probe: &'a [u32],
    /// nemotron-nas only: write a plan whose first kept layer has no attention, which vLLM
    /// cannot run ([`crate::PlanError::FirstAttentionDropped`]).
    pub allow_first_attn_drop: bool,
}

/// Writes `req.plan` applied to `req.source` as `req.format` to `req.dest` (staged,
/// renamed into place), after reloading the staged output and comparing its logits on
/// `req.probe` with `req.reference` (the pruned model, held or layer-streamed): they must
/// match to 1e-4, a quantized export with the pruned model whose weights are rounded in
/// memory as the file stores them ([`rounds`]). The tensors are read and written one at a time: memory
/// holds one tensor's bytes (a GGUF output: a few slices of rows), never the model.
pub fn export(req: &ExportRequest<'_>) -> Result<ExportResult> {
    let &ExportRequest {
        source: src,
        tokenizer: tok,
        plan,
        format,
        quant,
        info,
        dest,
        force,
        reference,
        probe,
        allow_first_attn_drop,
    } = req;
    refuse_plan(src, plan, format, allow_first_attn_drop)?;
    let staging = Staging::new(
        dest,
        format.dest_kind(),
        &crate::dest::Inputs::of_model(src.path()),
        force,
    )?;
    let shard = tensors::DEFAULT_SHARD_BYTES;
    let written = staging.path();
    match format {
        ExportFormat::HfLlmdrop => write_hf_llmdrop(src, tok, plan, info, &written, shard)?,
        ExportFormat::Hf => write_hf_blocks(src, tok, plan, info, &written, shard)?,
        ExportFormat::NemotronNas => write_nemotron_nas(src, tok, plan, info, &written, shard)?,
        ExportFormat::Gguf => gguf::write_gguf(src, tok, plan, quant, &written)?,
    }
    let rounds = rounds(src, format, quant);
    let stored = match rounds {
        true => reload::Stored::Rounded(quant),
        false => reload::Stored::Exact,
    };
    let full_plan = plan.union(src.stored_plan());
    let check = reload::check(&written, reference, src, plan, probe, stored)?;
    let reloaded_plan = {
        let s = crate::ModelSource::open(&written)?;
        s.stored_plan().clone()
    };
    let renumbered = matches!(format, ExportFormat::Hf)
        || (format == ExportFormat::Gguf && !gguf::needs_deci(&full_plan));
    if !renumbered && reloaded_plan != full_plan {
        return Err(Error::ReloadMismatch(format!(
            "the export reloads with plan {reloaded_plan:?}, not {full_plan:?}"
        )));
    }
    let diff = check.max_abs_diff;
    if diff.is_nan() || diff > 1e-4 {
        let what = match rounds {
            true => "the pruned model with its weights rounded as the file stores them",
            false => "the pruned model",
        };
        return Err(Error::ReloadMismatch(format!(
            "the export does not reload as {what}: max |Δlogit| {diff}"
        )));
    }
    let stale_removed = staging.stale_removed().to_vec();
    let path = staging.commit()?;
    Ok(ExportResult {
        path,
        stale_removed,
        format,
        plan: full_plan,
        reload_max_abs_diff: diff,
        reload_argmax_agreement: check.argmax_agreement,
        lossless: !rounds,
        reload_streamed: matches!(reference, Reference::Streamed),
    })
}

/// Whether an export of `src` as `format` rounds the weights: a GGUF written from a float
/// model in anything but f32. Its reload check then runs the source a third time, its
/// weights rounded in memory as the file stores them.
pub fn rounds(
    src: &crate::ModelSource,
    format: ExportFormat,
    quant: Option<candle_core::quantized::GgmlDType>,
) -> bool {
    format == ExportFormat::Gguf
        && src.gguf().is_none()
        && !crate::formats::gguf_types::exact(quant)
}

/// Refuses, before anything is written, a plan (joined with what `src` already drops) that
/// leaves nothing, a model the format cannot hold ([`refuse_unwritable`]), and a plan the
/// format's engines cannot run: a nemotron-nas export whose first kept layer has no
/// attention, unless `allow_first_attn_drop`.
pub(crate) fn refuse_plan(
    src: &crate::ModelSource,
    plan: &crate::plan::DropPlan,
    format: ExportFormat,
    allow_first_attn_drop: bool,
) -> Result<()> {
    let layers = src.config().num_layers;
    if (0..layers).all(|i| plan.drops_attn(i) && plan.drops_mlp(i)) {
        return Err(crate::PlanError::RemovesEverything { layers }.into());
    }
    refuse_unwritable(src.config(), format)?;
    if format == ExportFormat::Gguf {
        gguf_layout::refuse_index_kinds(src, &plan.union(src.stored_plan()))?;
    }
    if format == ExportFormat::NemotronNas && !allow_first_attn_drop {
        let full = plan.union(src.stored_plan());
        if let Some(layer) = crate::formats::nemotron::first_attn_hazard(&full, layers) {
            return Err(crate::PlanError::FirstAttentionDropped { layer }.into());
        }
    }
    Ok(())
}

/// Refuses, before anything is written, a model whose family the format cannot hold as
/// llmdrop evaluated it: nemotron-nas is a llama-family format; GGUF refuses families whose
/// layout llama.cpp derives from layer indices (Gemma 3: a renumbered layer would change
/// from sliding to global attention or back).
fn refuse_unwritable(cfg: &crate::Config, format: ExportFormat) -> Result<()> {
    let name = cfg.arch.name;
    if format == ExportFormat::NemotronNas && (name != "llama" || !cfg.layer_types.is_empty()) {
        return Err(Error::unsupported(
            "format `nemotron-nas`",
            format!("is for llama-family models; this one is `{name}`"),
        ));
    }
    if format == ExportFormat::Gguf && !cfg.arch.gguf_writable {
        return Err(Error::unsupported(
            "format `gguf`",
            format!(
                "llmdrop cannot write `{name}` as GGUF yet: llama.cpp decides each layer's \
                 attention kind (sliding or global) by its index, which a drop would change; \
                 export as hf or hf-llmdrop instead"
            ),
        ));
    }
    Ok(())
}

//! The reload check: the written export is read back and its logits on a probe compared
//! with the pruned model's, either both held in memory or both run layer by layer
//! ([`LayerStream`]: one layer, then the output head, held at a time; the same bits as
//! held).

use candle_core::quantized::GgmlDType;
use candle_core::{DType, Device, Tensor};

use crate::error::{Error, Result};
use crate::io::source::ModelSource;
use crate::model::{LayerStream, Outputs};
use crate::plan::DropPlan;
use crate::probe::NoProbe;
use crate::progress::NoProgress;

/// What the reloaded export is compared with.
#[derive(Clone, Copy)]
pub enum Reference<'a> {
    /// This in-memory pruned model; the export is loaded whole beside it.
    Held(&'a crate::Decoder),
    /// The source with the plan, run layer by layer in f32, as is the export: memory holds
    /// one layer (or the output head) at a time, whatever the model's size.
    Streamed,
}

/// What the export stores: the source's weights exactly, or rounded as a GGUF export of a
/// float model with this `quant` rounds them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stored {
    Exact,
    Rounded(Option<GgmlDType>),
}

/// The reload check's numbers.
pub(super) struct Reload {
    /// max |Δlogit| of the export against what it must give: the pruned model, with its
    /// weights rounded as stored ([`Stored::Rounded`]).
    pub max_abs_diff: f32,
    /// Share of positions where the export and the (unrounded) pruned model agree on the
    /// next token.
    pub argmax_agreement: f64,
}

/// Runs the export at `path` and `reference` (for [`Reference::Streamed`]: `src` with
/// `plan`) on `probe`, and, for a rounded export, the source rounded as stored.
pub(super) fn check(
    path: &std::path::Path,
    reference: Reference<'_>,
    src: &ModelSource,
    plan: &DropPlan,
    probe: &[u32],
    stored: Stored,
) -> Result<Reload> {
    let rounded = || -> Result<Option<ModelSource>> {
        match stored {
            Stored::Exact => Ok(None),
            Stored::Rounded(q) => Ok(Some(ModelSource::open(src.path())?.requantized(q)?)),
        }
    };
    let (a, b, r) = match reference {
        Reference::Held(d) => {
            let b = held_logits(&load_held(path, d.dtype(), d.device())?, probe)?;
            let r = match rounded()? {
                Some(s) => Some(held_logits(
                    &s.load_decoder(plan, d.dtype(), d.device())?,
                    probe,
                )?),
                None => None,
            };
            (held_logits(d, probe)?, b, r)
        }
        Reference::Streamed => {
            let a = streamed_logits(src, plan, probe)?;
            let b = streamed_logits(&ModelSource::open(path)?, &DropPlan::empty(), probe)?;
            let r = match rounded()? {
                Some(s) => Some(streamed_logits(&s, plan, probe)?),
                None => None,
            };
            (a, b, r)
        }
    };
    let (diff, agree) = compare(&a, &b)?;
    let max_abs_diff = match r {
        Some(r) => compare(&r, &b)?.0,
        None => diff,
    };
    Ok(Reload {
        max_abs_diff,
        argmax_agreement: agree,
    })
}

/// Logits (`[t, vocab]`, f32) of `probe` through `src` with `plan`, layer by layer.
fn streamed_logits(src: &ModelSource, plan: &DropPlan, probe: &[u32]) -> Result<Tensor> {
    let stream = LayerStream::open(src, plan, DType::F32, &Device::Cpu)?;
    let mut states = stream.embed(&[probe.to_vec()], Outputs::Logits)?;
    stream.run(&mut states, &mut [NoProbe], 1, &mut NoProgress)?;
    let head = stream.head()?;
    let logits = head.logits(&states[0])?.squeeze(0)?;
    drop(head);
    stream.release_head();
    Ok(logits)
}

/// (max |a - b|, share of rows with the same argmax) of two `[t, vocab]` logit tensors.
fn compare(a: &Tensor, b: &Tensor) -> Result<(f32, f64)> {
    let diff = (a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
    let (a, b) = (a.to_vec2::<f32>()?, b.to_vec2::<f32>()?);
    let same = a
        .iter()
        .zip(&b)
        .filter(|(x, y)| crate::generate::argmax(x) == crate::generate::argmax(y))
        .count();
    Ok((diff, same as f64 / a.len().max(1) as f64))
}

/// Loads `path` and compares its logits on `probe` with `reference`: (max |Δ|, share of
/// positions with the same argmax).
pub fn compare_reload(
    path: &std::path::Path,
    reference: &crate::Decoder,
    probe: &[u32],
) -> Result<(f32, f64)> {
    let d = load_held(path, reference.dtype(), reference.device())?;
    compare(&held_logits(reference, probe)?, &held_logits(&d, probe)?)
}

/// The model at `path`, loaded whole.
fn load_held(path: &std::path::Path, dtype: DType, device: &Device) -> Result<crate::Decoder> {
    ModelSource::open(path)?.load_decoder(&DropPlan::empty(), dtype, device)
}

/// Logits (`[t, vocab]`) of `probe` through the held `dec`.
fn held_logits(dec: &crate::Decoder, probe: &[u32]) -> Result<Tensor> {
    let ids = Tensor::new(probe, dec.device())?.unsqueeze(0)?;
    // a decoder loaded for hidden states only has no head to compare
    let no_head = || Error::unsupported("the reload check", "needs a decoder with its output head");
    Ok(dec
        .forward(&ids, None, &mut NoProbe, crate::Logits::All)?
        .ok_or_else(no_head)?
        .squeeze(0)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A q8_0 GGUF reloads as the source rounded through q8_0 (to 1e-4), and visibly not
    /// as the unrounded source nor as the source rounded through another type: the check
    /// tells a right file from a wrong one.
    #[test]
    fn the_rounded_check_tells_the_stored_type() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/tiny/qwen2");
        let src = ModelSource::open(&dir).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("q8.gguf");
        let tok = src.tokenizer().unwrap();
        let plan = DropPlan::empty();
        super::super::gguf::write_gguf(&src, &tok, &plan, Some(GgmlDType::Q8_0), &path).unwrap();
        let probe: Vec<u32> = (0..40).map(|i| (i * 29 + 11) % 256).collect();
        let diff = |stored| {
            check(&path, Reference::Streamed, &src, &plan, &probe, stored)
                .unwrap()
                .max_abs_diff
        };
        let right = diff(Stored::Rounded(Some(GgmlDType::Q8_0)));
        let unrounded = diff(Stored::Exact);
        let other = diff(Stored::Rounded(Some(GgmlDType::Q4_0)));
        assert!(right <= 1e-4, "q8_0 file vs q8_0 rounding: {right}");
        assert!(unrounded > 1e-4 && other > 1e-4, "{unrounded} {other}");
    }
}

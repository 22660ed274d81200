//! The tensors of a GGUF export, and their data made one tensor at a time: a GGUF input's
//! blocks copied as stored, a safetensors input's tensors quantized a slice of rows at a
//! time (rows quantize independently, so the slices' blocks are the whole tensor's), the
//! zero FFNs llama.cpp's deci graph needs. Memory holds a few slices, never a tensor.

use std::io::Write;

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Device};
use rayon::prelude::*;

use super::gguf_write::TensorSpec;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::io::gguf::permute_qk;
use crate::io::names::hf_to_gguf;
use crate::io::source::ModelSource;

/// f32 bytes of one slice of rows quantized at once (each thread quantizes one).
const SLICE_BYTES: usize = 16 << 20;

/// Where a tensor's data comes from.
pub(crate) enum Data {
    /// The input GGUF's tensor `stored` (HF name `hf`), copied as stored.
    Copy { stored: String, hf: String },
    /// The safetensors tensor of this HF name, converted to the spec's type; q/k rows
    /// permuted to GGUF's order per head (`heads`).
    Convert { name: String, heads: Option<usize> },
    /// f32 of one value throughout (deci's stand-in FFN: zeros, its norm ones).
    Fill(f32),
}

/// The spec and data source of the kept tensor `old` (HF name in the input), written as
/// `new` (HF name in the export). `quant` applies to safetensors inputs (default f16;
/// norms and biases stay f32, as llama.cpp's converter keeps them).
pub(crate) fn tensor(
    src: &ModelSource,
    new: &str,
    old: &str,
    quant: Option<GgmlDType>,
) -> Result<(TensorSpec, Data)> {
    let cfg = src.config();
    let name = hf_to_gguf(cfg.arch, new).ok_or_else(|| {
        Error::unsupported("GGUF export", format!("no GGUF name for tensor {new}"))
    })?;
    if let Some(g) = src.gguf() {
        let stored = hf_to_gguf(cfg.arch, old).expect("read from GGUF names");
        let info = g.content().tensor_infos.get(&stored).ok_or_else(|| {
            Error::unsupported("GGUF export", format!("no tensor {stored} in the input"))
        })?;
        let spec = TensorSpec {
            name,
            shape: info.shape.dims().to_vec(),
            dtype: info.ggml_dtype,
        };
        return Ok((
            spec,
            Data::Copy {
                stored,
                hf: old.into(),
            },
        ));
    }
    let shape = src.weights().shape(old).unwrap_or_default();
    let cols = shape.last().copied().unwrap_or(1);
    let dt = crate::formats::gguf_types::stored_type(&shape, quant);
    if !cols.is_multiple_of(dt.block_size()) {
        return Err(Error::argument(
            "quant",
            format!(
                "does not fit tensor {old}: its {cols} columns are not a multiple of \
                 {dt:?}'s block of {}; choose another",
                dt.block_size()
            ),
        ));
    }
    let heads = match cfg.arch.gguf_qk_permuted {
        true if old.ends_with("q_proj.weight") => Some(cfg.num_heads),
        true if old.ends_with("k_proj.weight") => Some(cfg.num_kv_heads),
        _ => None,
    };
    let spec = TensorSpec {
        name,
        shape,
        dtype: dt,
    };
    Ok((
        spec,
        Data::Convert {
            name: old.into(),
            heads,
        },
    ))
}

/// Writes the data of `spec` from `data` into `w`.
pub(crate) fn write_data(
    src: &ModelSource,
    spec: &TensorSpec,
    data: &Data,
    w: &mut dyn Write,
) -> Result<()> {
    let put = |w: &mut dyn Write, b: &[u8]| w.write_all(b).map_err(|e| Error::io(src.path(), e));
    match data {
        Data::Copy { stored, hf } => {
            let g = src.gguf().expect("copies come from a GGUF input");
            put(w, &g.raw_tensor(stored)?.data()?)?;
            src.weights().release(std::slice::from_ref(hf));
        }
        Data::Fill(v) => {
            let t = candle_core::Tensor::full(*v, spec.shape.as_slice(), &Device::Cpu)?;
            put(w, &QTensor::quantize(&t, spec.dtype)?.data()?)?;
        }
        Data::Convert { name, heads } => {
            convert(src, spec, name, *heads, SLICE_BYTES, w)?;
            src.weights().release(std::slice::from_ref(name));
        }
    }
    Ok(())
}

/// Quantizes `name` to `spec.dtype` a slice of rows (about `slice_bytes` of f32, whole
/// heads for q/k) at a time, the slices of a round in parallel, written in row order.
fn convert(
    src: &ModelSource,
    spec: &TensorSpec,
    name: &str,
    heads: Option<usize>,
    slice_bytes: usize,
    w: &mut dyn Write,
) -> Result<()> {
    let put = |w: &mut dyn Write, b: &[u8]| w.write_all(b).map_err(|e| Error::io(src.path(), e));
    let weights = src.weights();
    let &[rows, cols] = spec.shape.as_slice() else {
        let t = weights.load(name, DType::F32, &Device::Cpu)?;
        return put(w, &QTensor::quantize(&t, spec.dtype)?.data()?);
    };
    // q/k rows are permuted within each head: slices hold whole heads
    let unit = match heads {
        Some(h) if h > 0 && rows.is_multiple_of(h) => rows / h,
        Some(h) => {
            return Err(Error::unsupported(
                "GGUF export",
                format!("tensor {name}: {rows} rows do not split into {h} heads"),
            ))
        }
        None => 1,
    };
    let step = (slice_bytes / (4 * cols.max(1)) / unit).max(1) * unit;
    let starts: Vec<usize> = (0..rows).step_by(step).collect();
    let threads = rayon::current_num_threads().max(1);
    for round in starts.chunks(threads) {
        let parts: Vec<Vec<u8>> = round
            .par_iter()
            .map(|&s| -> Result<Vec<u8>> {
                let ids: Vec<usize> = (s..(s + step).min(rows)).collect();
                let mut t = weights.load_rows(name, &ids, DType::F32, &Device::Cpu)?;
                if heads.is_some() {
                    t = permute_qk(&t, ids.len() / unit)?;
                }
                Ok(QTensor::quantize(&t, spec.dtype)?.data()?.into_owned())
            })
            .collect::<Result<_>>()?;
        for p in &parts {
            put(w, p)?;
        }
    }
    Ok(())
}

/// The stand-in FFN of a deci layer whose MLP is dropped and attention kept (llama.cpp
/// treats `feed_forward_length` 0 as a missing layer): a norm of ones and zero matrices
/// of width `width`, which add exactly nothing.
pub(crate) fn zero_ffn(cfg: &Config, layer: usize, width: usize) -> Vec<(TensorSpec, Data)> {
    let h = cfg.hidden_size;
    let spec = |part: &str, shape: Vec<usize>| TensorSpec {
        name: format!("blk.{layer}.{part}.weight"),
        shape,
        dtype: GgmlDType::F32,
    };
    vec![
        (spec("ffn_norm", vec![h]), Data::Fill(1.0)),
        (spec("ffn_gate", vec![width, h]), Data::Fill(0.0)),
        (spec("ffn_up", vec![width, h]), Data::Fill(0.0)),
        (spec("ffn_down", vec![h, width]), Data::Fill(0.0)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Slices of one head (q/k, permuted per slice) or of one row give the bytes of the
    /// whole tensor permuted and quantized at once.
    #[test]
    fn slices_quantize_as_the_whole_tensor() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/tiny/llama");
        let src = ModelSource::open(&dir).unwrap();
        let cfg = src.config().clone();
        for (name, heads) in [
            (
                "model.layers.1.self_attn.q_proj.weight",
                Some(cfg.num_heads),
            ),
            (
                "model.layers.1.self_attn.k_proj.weight",
                Some(cfg.num_kv_heads),
            ),
            ("model.layers.0.mlp.down_proj.weight", None),
        ] {
            for dt in [GgmlDType::Q8_0, GgmlDType::Q4_0, GgmlDType::F16] {
                let (mut spec, data) = tensor(&src, name, name, Some(dt)).unwrap();
                spec.dtype = dt;
                let Data::Convert { heads: h, .. } = data else {
                    panic!("{name}: not converted")
                };
                assert_eq!(h, heads, "{name}");
                let mut whole = src.weights().load(name, DType::F32, &Device::Cpu).unwrap();
                if let Some(h) = heads {
                    whole = permute_qk(&whole, h).unwrap();
                }
                let want = QTensor::quantize(&whole, dt)
                    .unwrap()
                    .data()
                    .unwrap()
                    .into_owned();
                for slice in [1, 4 * spec.shape[1] * 3, 1 << 20] {
                    let mut got = Vec::new();
                    convert(&src, &spec, name, heads, slice, &mut got).unwrap();
                    assert_eq!(got, want, "{name} {dt:?} slices of {slice} bytes");
                }
            }
        }
    }
}

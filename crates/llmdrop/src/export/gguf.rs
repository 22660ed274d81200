//! GGUF exports: blocks removed and renumbered in the input's architecture, or llama.cpp's
//! `deci` architecture with per-layer head counts and FFN lengths (0 = module absent) for
//! attention / MLP drops. Quantized tensors of a GGUF input are copied byte for byte.

use std::path::Path;

use candle_core::quantized::gguf_file::Value;
use candle_core::quantized::GgmlDType;

use super::gguf_tensors;
use super::gguf_write::{self, TensorSpec};
use super::hf::require_blocks;
use super::tensors::{block_renumbering, kept_tensors};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::formats::deci_gguf;
use crate::io::source::ModelSource;
use crate::io::tokenizer::Tokenizer;
use crate::plan::DropPlan;

/// Storage type for tensors of a non-GGUF input.
pub fn parse_quant(s: &str) -> Result<GgmlDType> {
    Ok(match s {
        "f32" => GgmlDType::F32,
        "f16" => GgmlDType::F16,
        "q8_0" => GgmlDType::Q8_0,
        "q6_k" => GgmlDType::Q6K,
        "q5_0" => GgmlDType::Q5_0,
        "q4_k" => GgmlDType::Q4K,
        "q4_1" => GgmlDType::Q4_1,
        "q4_0" => GgmlDType::Q4_0,
        other => {
            return Err(Error::Unknown {
                what: "GGUF quantization",
                name: other.into(),
                expected: "f32, f16, q8_0, q6_k, q5_0, q4_k, q4_1, q4_0".into(),
            })
        }
    })
}

fn u32v(x: usize) -> Value {
    Value::U32(x as u32)
}

pub use crate::formats::deci_gguf::{needs_deci, ZERO_FFN_WIDTH};

/// Writes the GGUF file `path` for `plan`. `quant` applies to non-GGUF inputs (default f16).
pub fn write_gguf(
    src: &ModelSource,
    tok: &Tokenizer,
    plan: &DropPlan,
    quant: Option<GgmlDType>,
    path: &Path,
) -> Result<()> {
    let cfg = src.config();
    let plan = plan.union(src.stored_plan());
    plan.validate(cfg.num_layers)?;
    let deci = needs_deci(&plan);
    if deci && cfg.arch.name != deci_gguf::FAMILY {
        return Err(Error::unsupported(
            "GGUF export",
            format!(
                "attention / MLP drops go to GGUF arch `deci`, which is llama-family only; \
                 this model is `{}` (drop whole blocks, or use hf-llmdrop)",
                cfg.arch.name
            ),
        ));
    }
    if !deci {
        require_blocks(&plan, "gguf")?;
    }
    // a GGUF source's metadata is copied, RoPE and window keys included; families whose
    // layer kinds follow the index were checked by `gguf_layout` (GGUF sources only)
    let copied_layout = gguf_in_has_layout(src);
    if !copied_layout && (cfg.rope_scaling.is_some() || cfg.sliding_window.is_some()) {
        return Err(Error::unsupported(
            "GGUF export",
            "models with RoPE scaling or a sliding window are not supported yet",
        ));
    }
    let gguf_in = src.gguf();
    if gguf_in.is_some() && quant.is_some() {
        return Err(Error::argument(
            "quant",
            "applies to safetensors inputs; GGUF tensors are copied as they are",
        ));
    }
    let (renumber, layers) = if deci {
        (None, cfg.num_layers)
    } else {
        let map = block_renumbering(cfg.num_layers, &plan);
        let kept = map.iter().flatten().count();
        (Some(map), kept)
    };
    let arch = if deci {
        deci_gguf::ARCH
    } else {
        cfg.arch.gguf_arch.unwrap_or(cfg.arch.name)
    };

    // metadata
    let mut meta: Vec<(String, Value)> = Vec::new();
    match gguf_in {
        Some(g) => {
            let old = g.arch_name().to_string();
            let mut keys: Vec<&String> = g.content().metadata.keys().collect();
            keys.sort();
            for k in keys {
                if k == "general.alignment" {
                    continue; // the writer aligns to 32
                }
                let v = g.content().metadata[k].clone();
                let k = match k.strip_prefix(&format!("{old}.")) {
                    Some(rest) => format!("{arch}.{rest}"),
                    None => k.clone(),
                };
                meta.push((k, v));
            }
            meta.retain(|(k, _)| k != "general.architecture");
            meta.push(("general.architecture".into(), Value::String(arch.into())));
        }
        None => {
            meta.extend(base_metadata(cfg, arch));
            meta.extend(tokenizer_metadata(tok)?);
        }
    }
    let set = |meta: &mut Vec<(String, Value)>, k: String, v: Value| {
        meta.retain(|(x, _)| *x != k);
        meta.push((k, v));
    };
    set(&mut meta, format!("{arch}.block_count"), u32v(layers));
    if deci {
        let shape = deci_gguf::Shape {
            num_layers: cfg.num_layers,
            num_heads: cfg.num_heads,
            num_kv_heads: cfg.num_kv_heads,
            intermediate_size: cfg.intermediate_size,
        };
        for (k, v) in deci_gguf::metadata(shape, &plan) {
            set(&mut meta, k, v);
        }
    }
    set(
        &mut meta,
        "general.name".into(),
        Value::String(format!("{} (llmdrop)", file_stem(src.path()))),
    );

    // tensors: specs first (the header needs every offset), then the data one at a time
    let names = kept_tensors(
        src.config().arch,
        src.weights(),
        &plan,
        cfg.tie_word_embeddings,
        renumber.as_deref(),
    );
    let mut tensors = names
        .iter()
        .map(|(new, old)| gguf_tensors::tensor(src, new, old, quant))
        .collect::<Result<Vec<_>>>()?;
    if deci {
        for i in (0..cfg.num_layers).filter(|&i| plan.drops_mlp(i) && !plan.drops_attn(i)) {
            tensors.extend(gguf_tensors::zero_ffn(cfg, i, ZERO_FFN_WIDTH));
        }
    }
    let specs: Vec<TensorSpec> = tensors.iter().map(|(s, _)| s.clone()).collect();
    gguf_write::write_file(path, &meta, &specs, |i, w| {
        let (spec, data) = &tensors[i];
        gguf_tensors::write_data(src, spec, data, w)
    })
}

/// A GGUF source of a family whose layer kinds llama.cpp derives from the index.
fn gguf_in_has_layout(src: &ModelSource) -> bool {
    src.gguf().is_some() && src.config().arch.gguf_sliding_pattern.is_some()
}

fn file_stem(p: &Path) -> String {
    p.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Shape metadata for a model read from safetensors.
fn base_metadata(cfg: &Config, arch: &str) -> Vec<(String, Value)> {
    let k = |s: &str| format!("{arch}.{s}");
    vec![
        ("general.architecture".into(), Value::String(arch.into())),
        (k("context_length"), u32v(cfg.max_position_embeddings)),
        (k("embedding_length"), u32v(cfg.hidden_size)),
        (k("feed_forward_length"), u32v(cfg.intermediate_size)),
        (k("attention.head_count"), u32v(cfg.num_heads)),
        (k("attention.head_count_kv"), u32v(cfg.num_kv_heads)),
        (k("attention.key_length"), u32v(cfg.head_dim)),
        (k("attention.value_length"), u32v(cfg.head_dim)),
        (k("rope.dimension_count"), u32v(cfg.head_dim)),
        (k("rope.freq_base"), Value::F32(cfg.rope_theta as f32)),
        (
            k("attention.layer_norm_rms_epsilon"),
            Value::F32(cfg.rms_norm_eps as f32),
        ),
        (k("vocab_size"), u32v(cfg.vocab_size)),
    ]
}

/// GGUF tokenizer metadata from an HF byte-level BPE tokenizer.
fn tokenizer_metadata(tok: &Tokenizer) -> Result<Vec<(String, Value)>> {
    let hf = tok
        .hf()
        .ok_or_else(|| Error::unsupported("GGUF export", "needs a BPE tokenizer"))?;
    let v: serde_json::Value =
        serde_json::from_str(&hf.to_string(false).map_err(|source| Error::Context {
            what: "writing the tokenizer as JSON".into(),
            source,
        })?)
        .map_err(|e| Error::context("reading the tokenizer's JSON", e))?;
    let model = &v["model"];
    if model["type"] != "BPE" {
        return Err(Error::unsupported("GGUF export", "needs a BPE tokenizer"));
    }
    let vocab = model["vocab"]
        .as_object()
        .ok_or_else(|| Error::unsupported("GGUF export", "the tokenizer has no vocab"))?;
    let mut tokens = vec![String::new(); vocab.len()];
    for (t, id) in vocab {
        let id = id.as_u64().unwrap_or(0) as usize;
        if id < tokens.len() {
            tokens[id] = t.clone();
        }
    }
    let mut types = vec![1i32; tokens.len()];
    for a in v["added_tokens"].as_array().into_iter().flatten() {
        if let Some(id) = a["id"]
            .as_u64()
            .map(|x| x as usize)
            .filter(|&i| i < types.len())
        {
            types[id] = if a["special"].as_bool() == Some(true) {
                3
            } else {
                4
            };
        }
    }
    let merges: Vec<Value> = model["merges"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| match m {
            serde_json::Value::String(s) => Some(Value::String(s.clone())),
            serde_json::Value::Array(p) => Some(Value::String(format!(
                "{} {}",
                p[0].as_str()?,
                p[1].as_str()?
            ))),
            _ => None,
        })
        .collect();
    let pre = v["pre_tokenizer"].to_string();
    let pre = if pre.contains("\"Digits\"") && pre.contains("\"individual_digits\":true") {
        "smollm"
    } else if pre.contains("\\\\p{N}{1,3}") {
        "llama-bpe"
    } else {
        "gpt2"
    };
    let mut out = vec![
        ("tokenizer.ggml.model".into(), Value::String("gpt2".into())),
        ("tokenizer.ggml.pre".into(), Value::String(pre.into())),
        (
            "tokenizer.ggml.tokens".into(),
            Value::Array(tokens.into_iter().map(Value::String).collect()),
        ),
        (
            "tokenizer.ggml.token_type".into(),
            Value::Array(types.into_iter().map(Value::I32).collect()),
        ),
        (
            "tokenizer.ggml.add_bos_token".into(),
            Value::Bool(tok.add_bos),
        ),
    ];
    if !merges.is_empty() {
        out.push(("tokenizer.ggml.merges".into(), Value::Array(merges)));
    }
    if let Some(b) = tok.bos {
        out.push(("tokenizer.ggml.bos_token_id".into(), Value::U32(b)));
    }
    if let Some(&e) = tok.eos.first() {
        out.push(("tokenizer.ggml.eos_token_id".into(), Value::U32(e)));
    }
    Ok(out)
}

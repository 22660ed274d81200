//! Helpers for llmdrop's tests and examples: fixture paths, reference files, comparisons,
//! checkpoints written as real files. Tiny models are real files (tests/fixtures/tiny/*,
//! saved by transformers).
//!
//! A dev-only crate (`publish = false`): llmdrop and llmdrop-cli take it as a
//! dev-dependency for their integration and doc tests. It uses llmdrop's public API only.

mod deep;

use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};

use llmdrop::model::Outputs;
use llmdrop::probe::{Probe, Site};
use llmdrop::score::ScoreTable;
use llmdrop::{Decoder, DropPlan, KvCache, Logits, ModelSource, NoProbe, Result};

/// What the file-writing helpers return: any error (llmdrop's, candle's, the file system's).
pub type AnyResult<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

pub use deep::write_deep_copy;

/// `tests/fixtures` of the source tree.
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

/// Directory of the tiny checkpoint of `arch` (llama, mistral, qwen2, qwen3).
pub fn tiny_dir(arch: &str) -> PathBuf {
    fixtures_dir().join("tiny").join(arch)
}

/// Reads a little-endian f32 file.
pub fn read_f32_file(path: &std::path::Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Opens a model and loads it in f32 on the CPU with `plan`.
pub fn load(path: &std::path::Path, plan: &DropPlan) -> Result<(ModelSource, Decoder)> {
    let src = ModelSource::open(path)?;
    let dec = src.load_decoder(plan, DType::F32, &Device::Cpu)?;
    Ok((src, dec))
}

/// Opens `path` and loads it in f32 as `llmdrop score` does: hidden states only.
pub fn load_scorer(path: &std::path::Path) -> Result<(ModelSource, Decoder)> {
    let src = ModelSource::open(path)?;
    let dec = src.load_decoder_for(
        &DropPlan::empty(),
        DType::F32,
        &Device::Cpu,
        Outputs::HiddenStates,
    )?;
    Ok((src, dec))
}

/// Every value of a score table (block, attn, mlp, then the consecutive matrix by rows) as
/// bits, for bit-for-bit comparisons.
pub fn score_bits(t: &ScoreTable) -> Vec<u64> {
    let cons = t.consecutive.iter().flatten().flatten();
    t.block
        .iter()
        .chain(&t.attn)
        .chain(&t.mlp)
        .chain(cons)
        .map(|x| x.to_bits())
        .collect()
}

/// Logits of every position for a batch of equal-length id rows, flattened.
pub fn logits(dec: &Decoder, ids: &[Vec<u32>]) -> Result<Vec<f32>> {
    let t = Tensor::new(ids.to_vec(), dec.device())?;
    let l = dec
        .forward(&t, None, &mut NoProbe, Logits::All)?
        .expect("logits requested");
    Ok(l.flatten_all()?.to_vec1::<f32>()?)
}

/// Runs one sequence `ids` through `dec` at the positions after what `cache` holds and
/// returns the logits `which` asks for, flattened.
pub fn cached_logits(
    dec: &Decoder,
    ids: &[u32],
    cache: &mut KvCache,
    which: Logits,
) -> Result<Vec<f32>> {
    let t = Tensor::new(ids, dec.device())?.unsqueeze(0)?;
    let l = dec
        .forward(&t, Some(cache), &mut NoProbe, which)?
        .expect("logits requested");
    Ok(l.flatten_all()?.to_vec1::<f32>()?)
}

/// `n` values in [-1, 1) from `seed`, every 97th scaled by 20: mixed magnitudes with an
/// occasional outlier, as in real activations.
pub fn random_activations(n: usize, seed: u64) -> Vec<f32> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n)
        .map(|i| {
            let x: f32 = rng.random_range(-1.0..1.0);
            if i % 97 == 0 {
                x * 20.0
            } else {
                x
            }
        })
        .collect()
}

/// Largest absolute difference; panics on length mismatch.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// A probe that records (sum, sum of squares) in f64 of X for every layer and of the
/// last layer's output.
#[derive(Default)]
pub struct StatsProbe {
    pub stats: Vec<(f64, f64)>,
    last: Option<(f64, f64)>,
}

impl StatsProbe {
    /// Layer inputs 0..L-1 then the last layer's output (L + 1 entries).
    pub fn finish(mut self) -> Vec<(f64, f64)> {
        self.stats.extend(self.last);
        self.stats
    }
}

fn sums(h: &Tensor) -> Result<(f64, f64)> {
    let v = h.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
    Ok((v.iter().sum(), v.iter().map(|x| x * x).sum()))
}

impl Probe for StatsProbe {
    fn observe(&mut self, _layer: usize, site: Site, h: &Tensor) -> Result<()> {
        match site {
            Site::Input => self.stats.push(sums(h)?),
            Site::AfterMlp => self.last = Some(sums(h)?),
            _ => {}
        }
        Ok(())
    }
}

/// Writes a copy of the HF directory `src` to `dst` (config.json, tokenizer files and one
/// f32 `model.safetensors`), passing every tensor through `edit(name, shape, data)`; the
/// edit may change the shape; return `None` to leave the tensor out of the copy.
pub fn copy_hf_dir_with(
    src: &std::path::Path,
    dst: &std::path::Path,
    mut edit: impl FnMut(&str, &mut Vec<usize>, Vec<f32>) -> Option<Vec<f32>>,
) -> AnyResult<()> {
    std::fs::create_dir_all(dst)?;
    for f in ["config.json", "tokenizer.json", "tokenizer_config.json"] {
        if src.join(f).exists() {
            std::fs::copy(src.join(f), dst.join(f))?;
        }
    }
    let ms = ModelSource::open(src)?;
    let st = ms.weights();
    let mut out: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for meta in st.tensors() {
        let t = st.load(&meta.name, DType::F32, &Device::Cpu)?;
        let data = t.flatten_all()?.to_vec1::<f32>()?;
        let mut shape = meta.shape.clone();
        if let Some(data) = edit(&meta.name, &mut shape, data) {
            let bytes = data.iter().flat_map(|x| x.to_le_bytes()).collect();
            out.push((meta.name.clone(), shape, bytes));
        }
    }
    let views: Vec<(String, safetensors::tensor::TensorView)> = out
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                    .expect("sizes agree"),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, &dst.join("model.safetensors"))?;
    Ok(())
}

/// The cached default model; panics with the setup command when it has not been fetched.
pub fn default_model() -> PathBuf {
    llmdrop::assets::default_model().unwrap_or_else(|e| panic!("{e}"))
}

/// The cached Gemma-3-270M GGUF (`scripts/fetch-assets.sh`); panics naming that command.
pub fn gemma_model() -> PathBuf {
    let p = llmdrop::assets::cache_dir().join("gemma-3-270m-q4_k_m.gguf");
    assert!(
        p.exists(),
        "{} not found: run scripts/fetch-assets.sh",
        p.display()
    );
    p
}

/// The cached docutils documentation (real English text); panics naming the setup command.
pub fn english_text_dir() -> PathBuf {
    let d = llmdrop::assets::cache_dir().join(llmdrop::assets::DOCUTILS_DIR);
    assert!(
        d.join(".complete").exists(),
        "English text not found in {}: run `{}`",
        d.display(),
        llmdrop::assets::SETUP_COMMAND
    );
    d
}

/// Writes the HF directory `src` again as two safetensors shards plus
/// `model.safetensors.index.json`, as transformers does for large checkpoints.
pub fn write_sharded_copy(src: &std::path::Path, dst: &std::path::Path) -> AnyResult<()> {
    copy_hf_dir_with(src, dst, |_, _, d| Some(d))?;
    let single = dst.join("model.safetensors");
    let bytes = std::fs::read(&single)?;
    let st = safetensors::SafeTensors::deserialize(&bytes)?;
    let mut names = st.names();
    names.sort();
    let half = names.len() / 2;
    let mut weight_map = serde_json::Map::new();
    for (k, part) in [&names[..half], &names[half..]].iter().enumerate() {
        let file = format!("model-{:05}-of-00002.safetensors", k + 1);
        let mut views = Vec::new();
        for name in part.iter() {
            weight_map.insert(name.to_string(), file.clone().into());
            views.push((name.to_string(), st.tensor(name)?));
        }
        safetensors::serialize_to_file(views, None, &dst.join(&file))?;
    }
    drop(st);
    std::fs::remove_file(&single)?;
    let index = serde_json::json!({"metadata": {}, "weight_map": weight_map});
    std::fs::write(dst.join("model.safetensors.index.json"), index.to_string())?;
    Ok(())
}

/// Writes a llama-family HF directory as a GGUF v2 file with candle's writer: llama.cpp's
/// tensor names, q/k rows permuted for interleaved RoPE, f32 tensors, no tokenizer.
pub fn write_gguf_v2_from_hf(src: &std::path::Path, dst: &std::path::Path) -> AnyResult<()> {
    write_gguf_from_hf_as(src, dst, |_, _| candle_core::quantized::GgmlDType::F32)
}

/// The default model's layout from an HF checkpoint: every matrix (the embedding, tied
/// head, too) in Q4_1 blocks, the vectors f32.
pub fn write_q4_1_gguf_from_hf(src: &std::path::Path, dst: &std::path::Path) -> AnyResult<()> {
    use candle_core::quantized::GgmlDType;
    write_gguf_from_hf_as(src, dst, |_, shape| match shape.len() {
        2 => GgmlDType::Q4_1,
        _ => GgmlDType::F32,
    })
}

/// As [`write_gguf_v2_from_hf`], each tensor stored as `kind(gguf_name, hf_shape)` says.
pub fn write_gguf_from_hf_as(
    src: &std::path::Path,
    dst: &std::path::Path,
    kind: impl Fn(&str, &[usize]) -> candle_core::quantized::GgmlDType,
) -> AnyResult<()> {
    use candle_core::quantized::{gguf_file, QTensor};
    let ms = ModelSource::open(src)?;
    let c = ms.config().clone();
    let u32v = |x: usize| gguf_file::Value::U32(x as u32);
    let meta: Vec<(&str, gguf_file::Value)> = vec![
        (
            "general.architecture",
            gguf_file::Value::String("llama".into()),
        ),
        ("llama.block_count", u32v(c.num_layers)),
        ("llama.context_length", u32v(c.max_position_embeddings)),
        ("llama.embedding_length", u32v(c.hidden_size)),
        ("llama.feed_forward_length", u32v(c.intermediate_size)),
        ("llama.attention.head_count", u32v(c.num_heads)),
        ("llama.attention.head_count_kv", u32v(c.num_kv_heads)),
        (
            "llama.rope.freq_base",
            gguf_file::Value::F32(c.rope_theta as f32),
        ),
        (
            "llama.attention.layer_norm_rms_epsilon",
            gguf_file::Value::F32(c.rms_norm_eps as f32),
        ),
    ];
    let mut tensors = Vec::new();
    for m in ms.weights().tensors() {
        let Some(g) = hf_to_gguf(&m.name) else {
            continue;
        };
        let mut t = ms.weights().load(&m.name, DType::F32, &Device::Cpu)?;
        if m.name.ends_with("q_proj.weight") {
            t = permute_qk(&t, c.num_heads)?;
        } else if m.name.ends_with("k_proj.weight") {
            t = permute_qk(&t, c.num_kv_heads)?;
        }
        let k = kind(&g, &m.shape);
        tensors.push((g, QTensor::quantize(&t, k)?));
    }
    let mut f = std::fs::File::create(dst)?;
    let meta_refs: Vec<(&str, &gguf_file::Value)> = meta.iter().map(|(k, v)| (*k, v)).collect();
    let t_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    gguf_file::write(&mut f, &meta_refs, &t_refs)?;
    Ok(())
}

/// llama.cpp's GGUF name of an HF tensor (None: the converter writes no such tensor).
/// Written out here, apart from llmdrop's own table, so that a file this kit writes checks
/// llmdrop's reading of the names instead of repeating it.
fn hf_to_gguf(name: &str) -> Option<String> {
    let global = [
        ("model.embed_tokens.weight", "token_embd.weight"),
        ("model.norm.weight", "output_norm.weight"),
        ("lm_head.weight", "output.weight"),
    ];
    if let Some((_, g)) = global.iter().find(|(h, _)| *h == name) {
        return Some(g.to_string());
    }
    let layer = [
        ("input_layernorm.weight", "attn_norm.weight"),
        ("self_attn.q_proj.weight", "attn_q.weight"),
        ("self_attn.q_proj.bias", "attn_q.bias"),
        ("self_attn.k_proj.weight", "attn_k.weight"),
        ("self_attn.k_proj.bias", "attn_k.bias"),
        ("self_attn.v_proj.weight", "attn_v.weight"),
        ("self_attn.v_proj.bias", "attn_v.bias"),
        ("self_attn.o_proj.weight", "attn_output.weight"),
        ("self_attn.o_proj.bias", "attn_output.bias"),
        ("self_attn.q_norm.weight", "attn_q_norm.weight"),
        ("self_attn.k_norm.weight", "attn_k_norm.weight"),
        ("post_attention_layernorm.weight", "ffn_norm.weight"),
        ("mlp.gate_proj.weight", "ffn_gate.weight"),
        ("mlp.up_proj.weight", "ffn_up.weight"),
        ("mlp.down_proj.weight", "ffn_down.weight"),
    ];
    let (idx, suffix) = name.strip_prefix("model.layers.")?.split_once('.')?;
    let idx: usize = idx.parse().ok()?;
    let (_, g) = layer.iter().find(|(h, _)| *h == suffix)?;
    Some(format!("blk.{idx}.{g}"))
}

/// llama.cpp's converter's permutation of q/k rows, HF layout `[heads, 2, half, …]` ->
/// interleaved GGUF layout `[heads, half, 2, …]`.
fn permute_qk(t: &Tensor, heads: usize) -> candle_core::Result<Tensor> {
    let dims = t.dims().to_vec();
    let half = dims[0] / heads / 2;
    let mut shape = vec![heads, 2, half];
    shape.extend(&dims[1..]);
    t.reshape(shape)?
        .transpose(1, 2)?
        .contiguous()?
        .reshape(dims)
}

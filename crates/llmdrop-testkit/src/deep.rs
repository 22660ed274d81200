//! A deeper copy of a tiny checkpoint, for tests that need many layers (a run stopped
//! part way, layer by layer).

use std::path::Path;

use candle_core::{DType, Device};
use llmdrop::ModelSource;

use crate::AnyResult;

/// Writes the HF directory `src` to `dst` with `layers` layers: layer `j` is a copy of
/// layer `j % n` of the `n` in `src`, every other tensor as in `src` (f32 safetensors,
/// config.json with `num_hidden_layers` set, the tokenizer files).
pub fn write_deep_copy(src: &Path, dst: &Path, layers: usize) -> AnyResult<()> {
    std::fs::create_dir_all(dst)?;
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("config.json"))?)?;
    let n = cfg["num_hidden_layers"]
        .as_u64()
        .ok_or("no num_hidden_layers")? as usize;
    cfg["num_hidden_layers"] = layers.into();
    std::fs::write(dst.join("config.json"), cfg.to_string())?;
    for f in ["tokenizer.json", "tokenizer_config.json"] {
        if src.join(f).exists() {
            std::fs::copy(src.join(f), dst.join(f))?;
        }
    }
    let ms = ModelSource::open(src)?;
    let st = ms.weights();
    let mut out: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for meta in st.tensors() {
        let t = st.load(&meta.name, DType::F32, &Device::Cpu)?;
        let bytes: Vec<u8> = (t.flatten_all()?.to_vec1::<f32>()?.iter())
            .flat_map(|x| x.to_le_bytes())
            .collect();
        let layer = meta.name.strip_prefix("model.layers.").and_then(|r| {
            let (i, rest) = r.split_once('.')?;
            Some((i.parse::<usize>().ok()?, rest))
        });
        match layer {
            Some((i, rest)) => {
                for j in (i..layers).step_by(n) {
                    let name = format!("model.layers.{j}.{rest}");
                    out.push((name, meta.shape.clone(), bytes.clone()));
                }
            }
            None => out.push((meta.name.clone(), meta.shape.clone(), bytes)),
        }
    }
    let views: Vec<(String, safetensors::tensor::TensorView)> = out
        .iter()
        .map(|(name, shape, b)| {
            let v = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), b)
                .expect("sizes agree");
            (name.clone(), v)
        })
        .collect();
    safetensors::serialize_to_file(views, None, &dst.join("model.safetensors"))?;
    Ok(())
}

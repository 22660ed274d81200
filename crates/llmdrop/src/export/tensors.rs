//! Which tensors an export keeps (and under which names), and writing them as
//! (possibly sharded) safetensors.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use super::st_write::{self, Planned};

use crate::arch::ArchSpec;
use crate::error::{Error, Result};
use crate::io::names::split_layer_name;
use crate::io::WeightSource;
use crate::plan::DropPlan;

/// Shard size above which safetensors output is split (like transformers' default 5 GB).
pub const DEFAULT_SHARD_BYTES: u64 = 5_000_000_000;

/// (name in the export, name in the source) of every kept HF tensor, sorted by source name.
/// With `renumber`, layer `i` becomes `renumber[i]` (None: the whole layer is gone).
pub fn kept_tensors(
    arch: &ArchSpec,
    src: &dyn WeightSource,
    plan: &DropPlan,
    tied: bool,
    renumber: Option<&[Option<usize>]>,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for t in src.tensors() {
        let name = t.name;
        if plan.drops_tensor(arch, &name) || (tied && name == "lm_head.weight") {
            continue;
        }
        let new = match (split_layer_name(&name), renumber) {
            (Some((i, suffix)), Some(map)) => match map.get(i).copied().flatten() {
                Some(j) => format!("model.layers.{j}.{suffix}"),
                None => continue,
            },
            (Some(_), None) => name.clone(),
            (None, _) if name.starts_with("model.") || name == "lm_head.weight" => name.clone(),
            (None, _) => continue, // e.g. GGUF's rope_freqs: not an HF weight
        };
        out.push((new, name));
    }
    out
}

/// Layer renumbering for a block drop: kept layers in order, dropped ones None.
pub fn block_renumbering(num_layers: usize, plan: &DropPlan) -> Vec<Option<usize>> {
    let mut next = 0;
    (0..num_layers)
        .map(|i| {
            if plan.drops_block(i) {
                None
            } else {
                next += 1;
                Some(next - 1)
            }
        })
        .collect()
}

/// Writes `tensors` ((export name, source name)) into `dir` as `model.safetensors`, or as
/// `model-0000k-of-0000n.safetensors` shards plus `model.safetensors.index.json` when they
/// exceed `shard_bytes`. HF sources keep their bytes; GGUF sources are dequantized to f32.
/// One tensor at a time is read and written ([`super::st_write`]): memory holds a tensor's
/// stored bytes at most, whatever the model's size.
pub fn write_safetensors(
    src: &dyn WeightSource,
    tensors: &[(String, String)],
    dir: &Path,
    shard_bytes: u64,
) -> Result<()> {
    // plan the shards from sizes first, then write one shard, one tensor at a time
    let planned: Vec<Planned> = tensors
        .iter()
        .map(|(_, old)| st_write::plan(src, old))
        .collect::<Result<_>>()?;
    let total: u64 = planned.iter().map(|p| p.bytes).sum();
    let mut shards: Vec<Vec<usize>> = vec![vec![]];
    let mut acc = 0u64;
    for (i, p) in planned.iter().enumerate() {
        if acc > 0 && acc + p.bytes > shard_bytes {
            shards.push(vec![]);
            acc = 0;
        }
        shards.last_mut().expect("one shard").push(i);
        acc += p.bytes;
    }
    let n = shards.len();
    let mut weight_map = BTreeMap::new();
    for (k, shard) in shards.iter().enumerate() {
        let file = if n == 1 {
            "model.safetensors".to_string()
        } else {
            format!("model-{:05}-of-{n:05}.safetensors", k + 1)
        };
        let items: Vec<(&str, &str, &Planned)> = shard
            .iter()
            .map(|&i| (tensors[i].0.as_str(), tensors[i].1.as_str(), &planned[i]))
            .collect();
        for (name, _, _) in &items {
            weight_map.insert(name.to_string(), file.clone());
        }
        st_write::write_file(src, &items, &dir.join(&file))?;
    }
    if n > 1 {
        let index =
            serde_json::json!({"metadata": {"total_size": total}, "weight_map": weight_map});
        write_json(&dir.join("model.safetensors.index.json"), &index)?;
    }
    Ok(())
}

/// Writes `v` as pretty JSON with a final newline.
pub(crate) fn write_json(path: &Path, v: &impl Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(v)
        .map_err(|e| Error::context(format!("serializing {}", path.display()), e))?;
    std::fs::write(path, text + "\n").map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use candle_core::{DType, Device, Tensor};
    use serde_json::Value;

    use super::*;
    use crate::io::ModelSource;
    use crate::model::Logits;
    use crate::probe::NoProbe;

    fn tiny_dir(arch: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/tiny")
            .join(arch)
    }

    fn logits(dir: &Path, plan: &DropPlan, ids: &[u32]) -> Vec<f32> {
        let src = ModelSource::open(dir).unwrap();
        let dec = src.load_decoder(plan, DType::F32, &Device::Cpu).unwrap();
        let t = Tensor::new(ids, &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let l = dec.forward(&t, None, &mut NoProbe, Logits::All).unwrap();
        l.unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap()
    }

    /// A shard limit smaller than the model: several shards and an index that reload as
    /// the pruned model.
    #[test]
    fn sharded_output_reloads() {
        let tmp = tempfile::tempdir().unwrap();
        let model = tiny_dir("qwen3");
        let src = ModelSource::open(&model).unwrap();
        let plan = DropPlan::new([1], []);
        let names = kept_tensors(
            src.config().arch,
            src.weights(),
            &plan,
            src.config().tie_word_embeddings,
            None,
        );
        write_safetensors(src.weights(), &names, tmp.path(), 60_000).unwrap();
        assert!(tmp.path().join("model.safetensors.index.json").exists());
        let shards = std::fs::read_dir(tmp.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .contains("-of-")
            })
            .count();
        assert!(shards > 2, "{shards} shards");
        let mut cfg: Value =
            serde_json::from_str(&std::fs::read_to_string(model.join("config.json")).unwrap())
                .unwrap();
        cfg["drop_attn_list"] = serde_json::json!([1]);
        std::fs::write(tmp.path().join("config.json"), cfg.to_string()).unwrap();
        let ids: Vec<u32> = (0..40).map(|i| (i * 29 + 11) % 256).collect();
        let a = logits(&model, &plan, &ids);
        let b = logits(tmp.path(), &DropPlan::empty(), &ids);
        assert_eq!(a.len(), b.len(), "length mismatch");
        let d = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max);
        assert!(d <= 1e-5, "max |Δlogit| {d}");
    }
}

//! GGUF <-> HF tensor names, as tables: the projections' names are the same in every
//! family; the layer norms' come from the family's [`ArchSpec::norms`] (llama's
//! `ffn_norm` is HF's `post_attention_layernorm`, Gemma's is `pre_feedforward_layernorm`).

use crate::arch::ArchSpec;
use crate::plan::DropPlan;

/// (GGUF suffix, HF suffix) for the projections inside layer `i` (`blk.{i}.` /
/// `model.layers.{i}.`); the norms are the family's.
const LAYER_NAMES: &[(&str, &str)] = &[
    ("attn_q.weight", "self_attn.q_proj.weight"),
    ("attn_q.bias", "self_attn.q_proj.bias"),
    ("attn_k.weight", "self_attn.k_proj.weight"),
    ("attn_k.bias", "self_attn.k_proj.bias"),
    ("attn_v.weight", "self_attn.v_proj.weight"),
    ("attn_v.bias", "self_attn.v_proj.bias"),
    ("attn_output.weight", "self_attn.o_proj.weight"),
    ("attn_output.bias", "self_attn.o_proj.bias"),
    ("attn_q_norm.weight", "self_attn.q_norm.weight"),
    ("attn_k_norm.weight", "self_attn.k_norm.weight"),
    ("ffn_gate.weight", "mlp.gate_proj.weight"),
    ("ffn_up.weight", "mlp.up_proj.weight"),
    ("ffn_down.weight", "mlp.down_proj.weight"),
];

/// (GGUF name, HF name) for tensors outside the layers.
const GLOBAL_NAMES: &[(&str, &str)] = &[
    ("token_embd.weight", "model.embed_tokens.weight"),
    ("output_norm.weight", "model.norm.weight"),
    ("output.weight", "lm_head.weight"),
];

/// (GGUF suffix, HF suffix) of every per-layer tensor of `arch`.
fn layer_names(arch: &ArchSpec) -> impl Iterator<Item = (&'static str, &'static str)> {
    let norms = arch.norms.all().map(|(hf, gguf)| (gguf, hf));
    LAYER_NAMES.iter().copied().chain(norms)
}

/// HF name of a GGUF tensor of a model of family `arch`, or None for tensors llmdrop does
/// not use.
pub fn gguf_to_hf(arch: &ArchSpec, name: &str) -> Option<String> {
    if let Some((_, hf)) = GLOBAL_NAMES.iter().find(|(g, _)| *g == name) {
        return Some(hf.to_string());
    }
    let rest = name.strip_prefix("blk.")?;
    let (idx, suffix) = rest.split_once('.')?;
    let idx: usize = idx.parse().ok()?;
    let (_, hf) = layer_names(arch).find(|(g, _)| *g == suffix)?;
    Some(format!("model.layers.{idx}.{hf}"))
}

/// GGUF name of an HF tensor of a model of family `arch`, or None when GGUF has no name
/// for it.
pub fn hf_to_gguf(arch: &ArchSpec, name: &str) -> Option<String> {
    if let Some((g, _)) = GLOBAL_NAMES.iter().find(|(_, h)| *h == name) {
        return Some(g.to_string());
    }
    let rest = name.strip_prefix("model.layers.")?;
    let (idx, suffix) = rest.split_once('.')?;
    let idx: usize = idx.parse().ok()?;
    let (g, _) = layer_names(arch).find(|(_, h)| *h == suffix)?;
    Some(format!("blk.{idx}.{g}"))
}

/// Layer index and HF suffix of a per-layer HF name (`model.layers.3.mlp.up_proj.weight`
/// -> `(3, "mlp.up_proj.weight")`).
pub fn split_layer_name(name: &str) -> Option<(usize, &str)> {
    let rest = name.strip_prefix("model.layers.")?;
    let (idx, suffix) = rest.split_once('.')?;
    Some((idx.parse().ok()?, suffix))
}

// The plan's reading of HF tensor names lives with the names, so `plan` needs no `io`.
impl DropPlan {
    /// Whether the HF tensor `name` of a model of family `arch` belongs to a module this
    /// plan drops (the module's weights, its pre-norm and its post-norm).
    pub fn drops_tensor(&self, arch: &ArchSpec, name: &str) -> bool {
        let Some((i, suffix)) = split_layer_name(name) else {
            return false;
        };
        // a norm's tensors: `input_layernorm.weight` -> `input_layernorm.*`
        let is = |norm: Option<(&str, &str)>| {
            norm.is_some_and(|(hf, _)| suffix.starts_with(hf.trim_end_matches("weight")))
        };
        let n = arch.norms;
        (self.drops_attn(i)
            && (suffix.starts_with("self_attn.") || is(Some(n.attn_pre)) || is(n.attn_post)))
            || (self.drops_mlp(i)
                && (suffix.starts_with("mlp.") || is(Some(n.mlp_pre)) || is(n.mlp_post)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::arch::ArchSpec;

    #[test]
    fn names_round_trip() {
        let llama = ArchSpec::from_model_type("llama").unwrap();
        let gguf_to_hf = |n: &str| gguf_to_hf(llama, n);
        let hf_to_gguf = |n: &str| hf_to_gguf(llama, n);
        for g in [
            "token_embd.weight",
            "output.weight",
            "blk.0.attn_q.weight",
            "blk.29.ffn_down.weight",
            "blk.7.attn_k_norm.weight",
        ] {
            let h = gguf_to_hf(g).unwrap();
            assert_eq!(hf_to_gguf(&h).unwrap(), g);
        }
        assert_eq!(
            gguf_to_hf("blk.12.ffn_norm.weight").unwrap(),
            "model.layers.12.post_attention_layernorm.weight"
        );
        assert_eq!(gguf_to_hf("rope_freqs.weight"), None);
        assert_eq!(gguf_to_hf("blk.x.attn_q.weight"), None);
    }

    #[test]
    fn gemma_norms_map_by_role() {
        let g = ArchSpec::from_model_type("gemma3_text").unwrap();
        for (gguf, hf) in [
            (
                "blk.3.attn_norm.weight",
                "model.layers.3.input_layernorm.weight",
            ),
            (
                "blk.3.post_attention_norm.weight",
                "model.layers.3.post_attention_layernorm.weight",
            ),
            (
                "blk.3.ffn_norm.weight",
                "model.layers.3.pre_feedforward_layernorm.weight",
            ),
            (
                "blk.3.post_ffw_norm.weight",
                "model.layers.3.post_feedforward_layernorm.weight",
            ),
            (
                "blk.3.attn_q_norm.weight",
                "model.layers.3.self_attn.q_norm.weight",
            ),
        ] {
            assert_eq!(gguf_to_hf(g, gguf).unwrap(), hf);
            assert_eq!(hf_to_gguf(g, hf).unwrap(), gguf);
        }
        // a dropped attention takes its post-norm; a dropped MLP its pre- and post-norm
        let plan = DropPlan::new([3], [5]);
        assert!(plan.drops_tensor(g, "model.layers.3.post_attention_layernorm.weight"));
        assert!(!plan.drops_tensor(g, "model.layers.3.pre_feedforward_layernorm.weight"));
        assert!(plan.drops_tensor(g, "model.layers.5.pre_feedforward_layernorm.weight"));
        assert!(plan.drops_tensor(g, "model.layers.5.post_feedforward_layernorm.weight"));
        assert!(!plan.drops_tensor(g, "model.layers.5.post_attention_layernorm.weight"));
        let llama = ArchSpec::from_model_type("llama").unwrap();
        assert!(!plan.drops_tensor(llama, "model.layers.3.post_attention_layernorm.weight"));
        assert!(plan.drops_tensor(llama, "model.layers.5.post_attention_layernorm.weight"));
    }
}

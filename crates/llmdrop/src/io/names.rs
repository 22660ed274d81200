//! GGUF <-> HF tensor names, as a table.

use crate::plan::DropPlan;

/// (GGUF suffix, HF suffix) for tensors inside layer `i` (`blk.{i}.` / `model.layers.{i}.`).
const LAYER_NAMES: &[(&str, &str)] = &[
    ("attn_norm.weight", "input_layernorm.weight"),
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
    ("ffn_norm.weight", "post_attention_layernorm.weight"),
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

/// HF name of a GGUF tensor, or None for tensors llmdrop does not use.
pub fn gguf_to_hf(name: &str) -> Option<String> {
    if let Some((_, hf)) = GLOBAL_NAMES.iter().find(|(g, _)| *g == name) {
        return Some(hf.to_string());
    }
    let rest = name.strip_prefix("blk.")?;
    let (idx, suffix) = rest.split_once('.')?;
    let idx: usize = idx.parse().ok()?;
    let (_, hf) = LAYER_NAMES.iter().find(|(g, _)| *g == suffix)?;
    Some(format!("model.layers.{idx}.{hf}"))
}

/// GGUF name of an HF tensor, or None when GGUF has no name for it.
pub fn hf_to_gguf(name: &str) -> Option<String> {
    if let Some((g, _)) = GLOBAL_NAMES.iter().find(|(_, h)| *h == name) {
        return Some(g.to_string());
    }
    let rest = name.strip_prefix("model.layers.")?;
    let (idx, suffix) = rest.split_once('.')?;
    let idx: usize = idx.parse().ok()?;
    let (g, _) = LAYER_NAMES.iter().find(|(_, h)| *h == suffix)?;
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
    /// Whether the HF tensor `name` belongs to a module this plan drops (the module's
    /// weights and its pre-norm).
    pub fn drops_tensor(&self, name: &str) -> bool {
        match split_layer_name(name) {
            Some((i, suffix)) => {
                (self.drops_attn(i)
                    && (suffix.starts_with("self_attn.") || suffix.starts_with("input_layernorm.")))
                    || (self.drops_mlp(i)
                        && (suffix.starts_with("mlp.")
                            || suffix.starts_with("post_attention_layernorm.")))
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
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
}

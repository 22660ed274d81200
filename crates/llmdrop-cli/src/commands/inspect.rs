use std::fmt::Write;
use std::process::ExitCode;

use clap::Args;
use llmdrop::io::summarize;

use crate::args::{Ctx, ModelArgs};
use crate::output;

#[derive(Args)]
pub struct InspectArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Skip hashing the files (faster on large models).
    #[arg(long)]
    no_hash: bool,
}

pub fn run(a: InspectArgs, ctx: Ctx) -> anyhow::Result<ExitCode> {
    let src = a.model.open()?;
    let s = summarize(&src, !a.no_hash)?;
    if ctx.json {
        output::print_json("inspect", &s)?;
        return Ok(ExitCode::SUCCESS);
    }
    let c = &s.config;
    let mut t = String::new();
    writeln!(t, "model        {}", s.path)?;
    writeln!(t, "format       {:?}", s.format)?;
    writeln!(t, "architecture {}", c.arch.name)?;
    writeln!(
        t,
        "shape        {} layers, hidden {}, intermediate {}, heads {} (kv {}), head_dim {}, vocab {}",
        c.num_layers, c.hidden_size, c.intermediate_size, c.num_heads, c.num_kv_heads, c.head_dim, c.vocab_size
    )?;
    writeln!(
        t,
        "rope         theta {}{}, max positions {}",
        c.rope_theta,
        c.rope_scaling
            .as_ref()
            .map(|r| format!(", scaling {r:?}"))
            .unwrap_or_default(),
        c.max_position_embeddings
    )?;
    if let Some(w) = c.sliding_window {
        let global: Vec<String> = (0..c.num_layers)
            .filter(|&i| c.layer_window(i).is_none())
            .map(|i| i.to_string())
            .collect();
        let local = c
            .local_rope
            .as_ref()
            .map(|r| format!("; sliding layers rope theta {}", r.theta))
            .unwrap_or_default();
        let global = match global.is_empty() {
            true => "none".to_string(),
            false => global.join(","),
        };
        writeln!(
            t,
            "attention    sliding window {w}, global layers {global}{local}"
        )?;
    }
    writeln!(
        t,
        "mlp          {:?} gated, norms {}",
        c.act,
        if c.arch.norms.attn_post.is_some() {
            "sandwich (pre + post)"
        } else {
            "pre"
        }
    )?;
    writeln!(
        t,
        "embeddings   {}",
        if c.tie_word_embeddings {
            "tied"
        } else {
            "separate lm_head"
        }
    )?;
    writeln!(
        t,
        "parameters   {} ({:.1} M; embedding {:.1} M)",
        s.params,
        s.params as f64 / 1e6,
        s.embedding_params as f64 / 1e6
    )?;
    let dts: Vec<String> = s
        .tensor_dtypes
        .iter()
        .map(|(k, v)| format!("{k} x{v}"))
        .collect();
    writeln!(t, "tensor types {}", dts.join(", "))?;
    writeln!(t, "\nlayer  attn params  mlp params  attn type  mlp type")?;
    for l in &s.layers {
        writeln!(
            t,
            "{:>5}  {:>11}  {:>10}  {:<9}  {}",
            l.layer,
            l.attn_params,
            l.mlp_params,
            l.attn_dtypes.join("/"),
            l.mlp_dtypes.join("/")
        )?;
    }
    writeln!(t, "\nfiles")?;
    for f in &s.files {
        writeln!(
            t,
            "  {}  {} bytes  sha256 {}",
            f.path,
            f.bytes,
            f.sha256.as_deref().unwrap_or("-")
        )?;
    }
    output::print_text(&t)?;
    Ok(ExitCode::SUCCESS)
}

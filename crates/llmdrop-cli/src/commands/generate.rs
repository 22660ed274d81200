use std::process::ExitCode;

use clap::Args;
use llmdrop::generate::{generate, GenerateOptions};
use serde::Serialize;

use crate::args::{threads, Ctx, DropArgs, ModelArgs};
use crate::output;

#[derive(Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    drop: DropArgs,
    /// The prompt, used as is (no chat template).
    #[arg(long, short = 'p')]
    prompt: String,
    /// Tokens to generate at most.
    #[arg(long, default_value_t = 64)]
    max_tokens: usize,
    /// Sampling temperature; 0 = greedy.
    #[arg(long, default_value_t = 0.0)]
    temperature: f64,
    /// Seed for sampling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Keep going past the end-of-sequence token.
    #[arg(long)]
    ignore_eos: bool,
}

#[derive(Serialize)]
struct GenerateReport {
    prompt: String,
    text: String,
    prompt_tokens: usize,
    tokens: Vec<u32>,
    prefill_tokens_per_sec: f64,
    decode_tokens_per_sec: f64,
    threads: usize,
    dtype: String,
    plan: llmdrop::DropPlan,
}

pub fn run(a: GenerateArgs, ctx: Ctx) -> anyhow::Result<ExitCode> {
    if !a.temperature.is_finite() || a.temperature < 0.0 {
        anyhow::bail!("--temperature must be a non-negative number");
    }
    let plan = a.drop.plan();
    let (_src, dec, tok) = a.model.load(&plan, ctx)?;
    let prompt = tok.encode_prompt(&a.prompt)?;
    let opts = GenerateOptions {
        max_tokens: a.max_tokens,
        temperature: a.temperature,
        seed: a.seed,
        stop: if a.ignore_eos {
            vec![]
        } else {
            tok.eos.clone()
        },
    };
    // Stream text as it is generated: decode the whole suffix, print what is new.
    let mut ids = Vec::new();
    let mut shown = 0usize;
    let stream = !ctx.json;
    let mut closed = false;
    let mut on_token = |id: u32| -> llmdrop::Result<()> {
        ids.push(id);
        if stream {
            let text = tok.decode(&ids, false)?;
            if text.len() > shown && text.is_char_boundary(shown) {
                if output::stream_text(&text[shown..]).is_err() {
                    // stdout closed (`| head`): stop generating, quietly
                    closed = true;
                    return Err(llmdrop::Error::context(
                        "stdout closed",
                        std::io::Error::from(std::io::ErrorKind::BrokenPipe),
                    ));
                }
                shown = text.len();
            }
        }
        Ok(())
    };
    let g = match generate(&dec, &prompt, &opts, &mut on_token) {
        Ok(g) => g,
        Err(_) if closed => return Ok(ExitCode::SUCCESS),
        Err(e) => return Err(e.into()),
    };
    let text = tok.decode(&g.tokens, false)?;
    let prefill = if g.prefill_secs > 0.0 {
        g.prompt_tokens as f64 / g.prefill_secs
    } else {
        0.0
    };
    if ctx.json {
        output::print_json(
            "generate",
            &GenerateReport {
                prompt: a.prompt,
                text,
                prompt_tokens: g.prompt_tokens,
                tokens: g.tokens.clone(),
                prefill_tokens_per_sec: prefill,
                decode_tokens_per_sec: g.decode_tokens_per_sec(),
                threads: threads(),
                dtype: a.model.dtype.name().to_string(),
                plan,
            },
        )?;
    } else {
        output::print_text("\n")?;
        if !ctx.quiet {
            eprintln!(
            "{} prompt tokens, {} generated; prefill {:.1} tok/s, decode {:.1} tok/s ({} threads, {})",
            g.prompt_tokens,
            g.tokens.len(),
            prefill,
            g.decode_tokens_per_sec(),
                threads(),
                a.model.dtype.name()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

//! Argument groups shared by the commands, and their validation into checked values.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use llmdrop::io::tokenizer::Tokenizer;
use llmdrop::pipeline::{CalibOptions, ModelOptions};
use llmdrop::quant::Precision;
use llmdrop::{Decoder, DropPlan, ModelSource};

#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// Model: an HF directory (config.json + safetensors) or a GGUF file.
    /// Default: the cached SmolLM2-135M-Instruct (fetched by ./setup.sh).
    #[arg(long, short = 'm')]
    pub model: Option<PathBuf>,
    /// Weights and compute: f32, bf16, f16 (dense), or q8_0, q4_k, q4_1, native (quantized
    /// matrices with f32 activations; native keeps a GGUF's Q8_0/Q4_0/Q4_1/Q4_K blocks as
    /// stored).
    #[arg(long, default_value = "f32")]
    pub dtype: String,
}

#[derive(Args, Debug, Clone, Default)]
pub struct DropArgs {
    /// Attention layers to drop, e.g. `3,5,20-23`.
    #[arg(long, value_name = "LAYERS")]
    pub drop_attn: Option<String>,
    /// MLP layers to drop, e.g. `4`.
    #[arg(long, value_name = "LAYERS")]
    pub drop_mlp: Option<String>,
}

impl DropArgs {
    pub fn plan(&self) -> anyhow::Result<DropPlan> {
        let parse = |s: &Option<String>| -> anyhow::Result<_> {
            Ok(match s {
                Some(s) => DropPlan::parse_list(s)?,
                None => Default::default(),
            })
        };
        Ok(DropPlan {
            attn: parse(&self.drop_attn).context("--drop-attn")?,
            mlp: parse(&self.drop_mlp).context("--drop-mlp")?,
        })
    }
}

impl ModelArgs {
    /// The library's model options (the dtype checked).
    pub fn options(&self) -> anyhow::Result<ModelOptions> {
        Ok(ModelOptions {
            path: self.model.clone(),
            dtype: self.dtype()?,
        })
    }

    pub fn dtype(&self) -> anyhow::Result<Precision> {
        Ok(Precision::parse(&self.dtype)?)
    }

    /// Opens the model files (no tensor data read; the dtype is not looked at).
    pub fn open(&self) -> anyhow::Result<ModelSource> {
        let path = match &self.model {
            Some(p) => p.clone(),
            None => llmdrop::assets::default_model()?,
        };
        Ok(ModelSource::open(&path)?)
    }

    /// Opens and loads the model with `plan`, and its tokenizer.
    pub fn load(&self, plan: &DropPlan) -> anyhow::Result<(ModelSource, Decoder, Tokenizer)> {
        Ok(self.options()?.load(plan)?)
    }
}

/// Threads candle's CPU kernels use.
pub fn threads() -> usize {
    candle_core::utils::get_num_threads()
}

#[derive(Args, Debug, Clone)]
pub struct CalibArgs {
    /// Calibration text: a .txt file, a .jsonl file, or a directory of them.
    /// Default: the cached docutils documentation (fetched by ./setup.sh).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// JSON Lines field holding the text.
    #[arg(long, default_value_t = CalibOptions::default().field)]
    pub field: String,
    /// Calibration blocks.
    #[arg(long, default_value_t = CalibOptions::default().samples)]
    pub samples: usize,
    /// Tokens per block.
    #[arg(long, default_value_t = CalibOptions::default().seq_len)]
    pub seq_len: usize,
    /// Pick the blocks at random (with --seed) instead of the first ones.
    #[arg(long)]
    pub shuffle: bool,
    #[arg(long, default_value_t = CalibOptions::default().seed)]
    pub seed: u64,
    /// Attention / MLP similarity without the residual: cos(LN(x), module(LN(x))).
    #[arg(long)]
    pub no_residual: bool,
}

impl CalibArgs {
    /// The library's calibration options.
    pub fn options(&self) -> CalibOptions {
        CalibOptions {
            data: self.data.clone(),
            field: self.field.clone(),
            samples: self.samples,
            seq_len: self.seq_len,
            shuffle: self.shuffle,
            seed: self.seed,
            residual: !self.no_residual,
        }
    }
}

//! Argument groups shared by the commands, and their validation into checked values.
//!
//! Every enumerated or structured value is parsed by clap, through the library's own
//! parser, before any work starts: a bad value is a usage error (exit 2) that lists the
//! possible values, not a failure halfway through a run.

use std::collections::BTreeSet;
use std::path::PathBuf;

use candle_core::quantized::GgmlDType;
use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::Args;
use llmdrop::export::ExportFormat;
use llmdrop::pipeline::{CalibOptions, ModelOptions};
use llmdrop::quant::Precision;
use llmdrop::strategy::Strategy;
use llmdrop::Tokenizer;
use llmdrop::{Decoder, DropPlan, ModelSource};

/// The flags every command takes (`global`: before or after the command name).
#[derive(Args, Debug, Clone, Copy)]
pub struct GlobalArgs {
    /// Print the result as one JSON document on stdout (with a schema_version); no
    /// progress bars.
    #[arg(long, global = true, help_heading = "Global options")]
    pub json: bool,
    /// No progress bars and no informational lines on stderr; errors still print.
    #[arg(long, short = 'q', global = true, help_heading = "Global options")]
    pub quiet: bool,
    /// Threads for the CPU kernels (default: RAYON_NUM_THREADS, else one per core).
    #[arg(long, global = true, help_heading = "Global options", value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,
}

/// What every command reads of the global flags.
#[derive(Debug, Clone, Copy)]
pub struct Ctx {
    /// `--json`: results as JSON.
    pub json: bool,
    /// `--quiet`: nothing on stderr but errors.
    pub quiet: bool,
}

impl GlobalArgs {
    pub fn ctx(&self) -> Ctx {
        Ctx {
            json: self.json,
            quiet: self.quiet,
        }
    }
}

/// The names `--dtype` takes ([`Precision::parse`] reads each).
pub const DTYPES: [&str; 9] = [
    "f32",
    "bf16",
    "f16",
    "f64",
    "bf16-mixed",
    "q8_0",
    "q4_k",
    "q4_1",
    "native",
];
/// The names `--strategy` takes ([`Strategy`]'s `FromStr` reads each).
pub const STRATEGIES: [&str; 5] = ["block", "consecutive", "attn", "mlp", "joint"];
/// The names `--format` takes ([`ExportFormat`]'s `FromStr` reads each).
pub const FORMATS: [&str; 4] = ["hf-llmdrop", "hf", "nemotron-nas", "gguf"];
/// The names `--quant` takes ([`llmdrop::export::parse_quant`] reads each).
pub const QUANTS: [&str; 8] = ["f32", "f16", "q8_0", "q6_k", "q5_0", "q4_k", "q4_1", "q4_0"];

/// `--dtype`: one of [`DTYPES`], as a [`Precision`].
pub fn dtype_parser() -> impl TypedValueParser<Value = Precision> {
    PossibleValuesParser::new(DTYPES).try_map(|s| Precision::parse(&s))
}

/// `--strategy`: one of [`STRATEGIES`].
pub fn strategy_parser() -> impl TypedValueParser<Value = Strategy> {
    PossibleValuesParser::new(STRATEGIES).try_map(|s| s.parse::<Strategy>())
}

/// `--format`: one of [`FORMATS`].
pub fn format_parser() -> impl TypedValueParser<Value = ExportFormat> {
    PossibleValuesParser::new(FORMATS).try_map(|s| s.parse::<ExportFormat>())
}

/// `--quant`: one of [`QUANTS`], as a GGUF tensor type.
pub fn quant_parser() -> impl TypedValueParser<Value = GgmlDType> {
    PossibleValuesParser::new(QUANTS).try_map(|s| llmdrop::export::parse_quant(&s))
}

/// A layer list (`3,5,20-23`), checked by [`DropPlan::parse_list`].
pub fn layer_list(s: &str) -> Result<BTreeSet<usize>, llmdrop::Error> {
    DropPlan::parse_list(s)
}

#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// Model: an HF directory (config.json + safetensors) or a GGUF file.
    /// Default: the cached SmolLM2-135M-Instruct (fetched by ./setup.sh).
    #[arg(long, short = 'm')]
    pub model: Option<PathBuf>,
    /// Weights and compute: f32, bf16, f16 (dense), bf16-mixed (bf16 layer matrices, f32
    /// activations: products at bf16 speed, the rest exact), or q8_0, q4_k, q4_1, native
    /// (quantized matrices with f32 activations; native keeps a GGUF's Q8_0/Q4_0/Q4_1/Q4_K
    /// blocks as stored), or f64 (the reference precision: every product, norm and
    /// softmax in float64, several times slower than f32; for checking other engines).
    #[arg(long, default_value = "f32", value_parser = dtype_parser())]
    pub dtype: Precision,
}

#[derive(Args, Debug, Clone, Default)]
pub struct DropArgs {
    /// Attention layers to drop, e.g. `3,5,20-23`.
    #[arg(long, value_name = "LAYERS", value_parser = layer_list)]
    pub drop_attn: Option<BTreeSet<usize>>,
    /// MLP layers to drop, e.g. `4`.
    #[arg(long, value_name = "LAYERS", value_parser = layer_list)]
    pub drop_mlp: Option<BTreeSet<usize>>,
}

impl DropArgs {
    /// The plan the two lists give (layers not yet checked against a model).
    pub fn plan(&self) -> DropPlan {
        DropPlan {
            attn: self.drop_attn.clone().unwrap_or_default(),
            mlp: self.drop_mlp.clone().unwrap_or_default(),
        }
    }
}

impl ModelArgs {
    /// The library's model options.
    pub fn options(&self) -> ModelOptions {
        ModelOptions {
            path: self.model.clone(),
            dtype: self.dtype,
        }
    }

    /// Opens the model files (no tensor data read; the dtype is not looked at).
    pub fn open(&self) -> anyhow::Result<ModelSource> {
        let path = match &self.model {
            Some(p) => p.clone(),
            None => llmdrop::assets::default_model()?,
        };
        Ok(ModelSource::open(&path)?)
    }

    /// Opens and loads the model with `plan`, and its tokenizer; says on stderr (unless
    /// `--quiet`) which stored types `--dtype native` requantizes.
    pub fn load(
        &self,
        plan: &DropPlan,
        ctx: Ctx,
    ) -> anyhow::Result<(ModelSource, Decoder, Tokenizer)> {
        let (src, dec, tok) = self.options().load(plan)?;
        self.note_requantized(&src, ctx);
        Ok((src, dec, tok))
    }

    /// Says on stderr which matrices `native` requantizes (unless quiet).
    pub fn note_requantized(&self, src: &llmdrop::ModelSource, ctx: Ctx) {
        let requantized = llmdrop::quant::requantized(src.weights(), self.dtype);
        if !ctx.quiet && !requantized.is_empty() {
            let list: Vec<String> = requantized
                .iter()
                .map(|(t, n)| format!("{n} {t}"))
                .collect();
            eprintln!(
                "native: {} matrices requantized to 8-bit (Q8_0 blocks); the others kept as stored",
                list.join(", ")
            );
        }
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

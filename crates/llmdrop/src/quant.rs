//! How a decoder holds its weights: float, or quantized matrices
//! ([`llmdrop_kernels::quant`]) under one of the [`QuantMode`]s.
//!
//! Quantized kinds are chosen here per matrix; other GGUF types (and float weights under
//! `--dtype q8_0|q4_1`) are quantized from f32. Everything outside the matrix products
//! (norms, RoPE, attention, the KV cache) stays f32. [`QuantMode::Bf16Mixed`] is the same
//! frame with bf16 layer matrices ([`llmdrop_kernels::gemm::bf16`]).

use candle_core::quantized::GgmlDType;
use candle_core::DType;
use llmdrop_kernels::quant::QKind;

use crate::error::{Error, Result};

/// How a decoder holds its weights and computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// Dense weights and activations in one float type.
    Float(DType),
    /// Quantized matrices, f32 activations.
    Quant(QuantMode),
}

/// Which quantized kind each weight matrix is held in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuantMode {
    /// Every matrix 8-bit (GGUF `Q8_0` kept as stored, everything else quantized).
    Q8_0,
    /// Layer matrices 4-bit (`Q4_0` / `Q4_1` kept as stored, everything else quantized);
    /// the embeddings / lm_head 8-bit, as llama.cpp keeps its output matrix at higher
    /// precision.
    Q4_1,
    /// As `Q4_1`, but a matrix quantized here (not already 4-bit in the file) whose rows
    /// are a multiple of 256 is quantized as GGUF's `Q4_K` (ggml's algorithm: 6-bit
    /// scales and offsets per 32 under an f16 pair per 256, fitted to the block); narrower
    /// rows fall back to `Q4_1`.
    Q4K,
    /// As the file stores them: `Q8_0` -> 8-bit, `Q4_0` / `Q4_1` / `Q4_K` -> 4-bit, float
    /// stays dense f32, other GGUF types (`Q6_K`, `Q5_*`, `Q2_K`, `Q3_K`, …) are
    /// requantized to 8-bit.
    Native,
    /// The layer matrices in bf16 (a bf16 checkpoint's values as stored, others rounded to
    /// nearest), each product's input rounded to bf16 with f32 sums (the AMX or AVX-512
    /// BF16 kernels); embeddings and output head, norms, attention and the hidden states
    /// in f32. Where `bf16` runs a PyTorch bf16 model (every tensor bf16, candle's bf16
    /// operations), this runs the products at bf16 speed and keeps the rest exact.
    Bf16Mixed,
}

/// What a matrix is stored as, for [`QuantMode::kind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    Float,
    Q8,
    Q4,
    OtherQuant,
}

impl Stored {
    pub fn of(t: GgmlDType) -> Self {
        match t {
            GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16 => Stored::Float,
            GgmlDType::Q8_0 => Stored::Q8,
            GgmlDType::Q4_0 | GgmlDType::Q4_1 | GgmlDType::Q4K => Stored::Q4,
            _ => Stored::OtherQuant,
        }
    }
}

impl QuantMode {
    /// The kind a matrix stored as `stored` is held in (None: dense f32). `head`: the
    /// embedding / lm_head matrix.
    pub fn kind(self, stored: Stored, head: bool) -> Option<QKind> {
        match (self, stored) {
            (QuantMode::Q8_0, _) => Some(QKind::Q8),
            (QuantMode::Q4_1 | QuantMode::Q4K, _) if head => Some(QKind::Q8),
            (QuantMode::Q4_1 | QuantMode::Q4K, _) => Some(QKind::Q4),
            (QuantMode::Native, Stored::Float) => None,
            (QuantMode::Native, Stored::Q4) => Some(QKind::Q4),
            (QuantMode::Native, _) => Some(QKind::Q8),
            // not quantized: bf16 layer matrices, f32 head
            (QuantMode::Bf16Mixed, _) => None,
        }
    }
}

/// The GGUF types of `src`'s matrices that `precision` (`native`) cannot keep as stored and
/// requantizes to 8-bit (Gemma-3-270M: `Q5_0`, `Q6K`), with how many matrices each; empty
/// for the other precisions, which quantize every matrix by request.
pub fn requantized(
    src: &dyn crate::io::WeightSource,
    precision: Precision,
) -> Vec<(String, usize)> {
    let mut out: Vec<(String, usize)> = Vec::new();
    if precision != Precision::Quant(QuantMode::Native) {
        return out;
    }
    for t in src.tensors() {
        let Some(g) = src.ggml_type(&t.name) else {
            continue;
        };
        let fits = t.shape.len() == 2 && llmdrop_kernels::quant::QMatrix::fits(t.shape[1]);
        if !fits || Stored::of(g) != Stored::OtherQuant {
            continue;
        }
        match out.iter_mut().find(|(n, _)| *n == t.dtype) {
            Some((_, k)) => *k += 1,
            None => out.push((t.dtype.clone(), 1)),
        }
    }
    out.sort();
    out
}

impl Precision {
    /// Parses `f32`, `f64`, `bf16`, `f16`, `bf16-mixed`, `q8_0`, `q4_k`, `q4_1` or `native`.
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "f32" => Precision::Float(DType::F32),
            "f64" => Precision::Float(DType::F64),
            "bf16" => Precision::Float(DType::BF16),
            "f16" => Precision::Float(DType::F16),
            "q8_0" => Precision::Quant(QuantMode::Q8_0),
            "q4_1" => Precision::Quant(QuantMode::Q4_1),
            "q4_k" => Precision::Quant(QuantMode::Q4K),
            "native" => Precision::Quant(QuantMode::Native),
            "bf16-mixed" => Precision::Quant(QuantMode::Bf16Mixed),
            other => {
                return Err(Error::Unknown {
                    what: "dtype",
                    name: other.into(),
                    expected: "f32, f64, bf16, f16, bf16-mixed, q8_0, q4_k, q4_1, native".into(),
                })
            }
        })
    }

    /// The name [`Precision::parse`] reads.
    pub fn name(self) -> &'static str {
        match self {
            Precision::Float(DType::BF16) => "bf16",
            Precision::Float(DType::F16) => "f16",
            Precision::Float(DType::F64) => "f64",
            Precision::Float(_) => "f32",
            Precision::Quant(QuantMode::Q8_0) => "q8_0",
            Precision::Quant(QuantMode::Q4_1) => "q4_1",
            Precision::Quant(QuantMode::Q4K) => "q4_k",
            Precision::Quant(QuantMode::Native) => "native",
            Precision::Quant(QuantMode::Bf16Mixed) => "bf16-mixed",
        }
    }

    /// The dtype activations (and dense weights) use.
    pub fn compute_dtype(self) -> DType {
        match self {
            Precision::Float(d) => d,
            Precision::Quant(_) => DType::F32,
        }
    }

    pub fn quant(self) -> Option<QuantMode> {
        match self {
            Precision::Quant(q) => Some(q),
            Precision::Float(_) => None,
        }
    }
}

impl From<DType> for Precision {
    fn from(d: DType) -> Self {
        Precision::Float(d)
    }
}

//! Quantized matrices and the integer kernels that multiply them.
//!
//! GGUF's `Q8_0`, `Q4_0`, `Q4_1` and `Q4_K` weights are repacked at load into
//! [`QMatrix`]'s interleaved layout without any rounding; float weights are quantized
//! from f32. Activations are quantized per 32-element block to i8 on the fly (as
//! llama.cpp does), dot products are exact in i32, and the block scales are applied in f32.

mod act;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod gated;
mod kernel;
mod matrix;
mod pack;
mod portable;

pub use act::QActs;
pub use gated::gated;
pub use kernel::{matmul, matmul_shared};
pub use matrix::{QKind, QMatrix, BLOCK};

//! Every SIMD kernel and its portable twin, behind one door.
//!
//! The CPU is asked once ([`cpu::caps`]); a caller picks an implementation with one enum
//! ([`Kernel`]) and calls a safe function that checks the bounds its `unsafe` kernel
//! relies on, in release builds too. Nothing here imports the decoder (`crate::model`):
//! the model calls in, never the other way.
//!
//! - [`gemm`]: f32 matrix products on weights packed at load, and the gated pair.
//! - [`quant`]: quantized matrices and their integer products.
//! - [`attention`]: prefill and decode attention as candle ops, and the choice of backend.
//! - [`vexp`]: the vectorized `exp`, softmax and gated SiLU.
//! - [`dot`], [`gram`]: the f32 dot product and the Gram matrix of the similarity scores.
//! - [`peak`]: the machine's FMA limit, the yardstick of speed figures.

pub mod attention;
pub mod cpu;
pub mod dot;
pub mod gemm;
pub mod gram;
pub mod peak;
pub mod quant;
mod shared_out;
mod split;
pub mod vexp;

pub use cpu::{caps, Caps, Kernel};

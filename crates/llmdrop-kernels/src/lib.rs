//! llmdrop's CPU kernels: every SIMD kernel and its portable twin, behind one door.
//!
//! The CPU is asked once: [`caps`] returns this CPU's [`Caps`] (AVX2+FMA, AVX-512 F,
//! AVX-512 VNNI, AVX-512 BF16, each flag covering what its feature implies), detected on first use and
//! kept for the process; nothing else in the crate asks the CPU. A caller picks an
//! implementation with one enum, [`Kernel`]: `Auto` runs the AVX-512 code where [`Caps`]
//! allows, `Portable` runs plain Rust on any CPU with the same operations in the same
//! order, the twin each SIMD kernel is tested against bit for bit.
//!
//! Every public function is safe. Each one checks, in release builds too, the bounds its
//! `unsafe` kernel relies on (lengths, shapes, a [`Caps`] flag) and panics on a caller
//! bug (see its `# Panics`) rather than read or write past a buffer; each `unsafe` kernel
//! behind it documents under `# Safety` which of those checked bounds it needs. Matrices
//! the quantized layout cannot hold, and bf16 data or inputs that do not fit their shape,
//! are refused with an [`Error`]; the candle ops fail with candle's error.
//!
//! - [`gemm`]: f32 matrix products on weights packed at load ([`gemm::PackedMatrix`]),
//!   and the gated pair `silu(x Gᵀ) · (x Uᵀ)` ([`gemm::GatedPair`]); bf16 weights with
//!   activations rounded to bf16 and f32 sums ([`gemm::bf16`]).
//! - [`quant`]: quantized matrices ([`quant::QMatrix`], repacked from GGUF blocks or
//!   quantized from f32) and their integer products.
//! - [`attention`]: prefill and decode attention as candle ops, and the choice of backend.
//! - [`vexp`]: the vectorized `exp`, softmax and gated SiLU.
//! - [`dot`], [`gram`]: the f32 dot product and the Gram matrix of the similarity scores.
//! - [`peak`]: the machine's FMA limit, the yardstick of speed figures; [`machine`]: the
//!   CPU model, cores and caches every speed figure names.
//! - [`awake`]: the pool's other threads kept polling through a forward pass's or a decode
//!   step's many short parallel sections, instead of sleeping between them.
//!
//! This crate knows nothing of models: the `llmdrop` library calls in, never the other way.
//!
//! ```
//! use llmdrop_kernels::gemm::{self, PackedMatrix};
//! use llmdrop_kernels::Kernel;
//!
//! // w: 2 output rows of 3 inputs (row-major, as HF stores a linear layer's weight)
//! let w = PackedMatrix::pack(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 2, 3);
//! let y = gemm::matmul(&w, &[1.0, 1.0, 1.0], Kernel::Auto);
//! assert_eq!(y, [6.0, 15.0]);
//! assert_eq!(y, gemm::matmul(&w, &[1.0, 1.0, 1.0], Kernel::Portable));
//! ```

pub mod add;
pub mod attention;
pub mod awake;
pub mod cpu;
pub mod dot;
pub mod gemm;
pub mod gram;
pub mod machine;
pub mod peak;
pub mod quant;
pub mod steal;
pub mod vexp;
pub mod written;

mod elementwise;
mod error;
mod prefetch;
mod shared_out;
mod split;

pub use cpu::{caps, Caps, Kernel};
pub use error::{Error, Result};

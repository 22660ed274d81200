//! f32 matrix products on weights packed at load time, with an AVX-512 kernel.
//!
//! candle's CPU matmul (the `gemm` crate) uses 256-bit AVX2 on stable Rust, which caps it at
//! half of what a core with 512-bit FMA units does in f32. Linear layers whose weights are
//! f32 are repacked here into panels of 32 output rows ([`PackedMatrix`]) and multiplied
//! by a register-blocked AVX-512 kernel: each step broadcasts one input value per
//! activation row against 32 weights, so up to 12 rows × 32 outputs accumulate in
//! registers. Every output sums the input dimension in blocks of [`SUM_BLOCK`]: a sequential
//! chain of fused multiply-adds per block, the blocks' sums added in order (less rounding
//! than one chain over the whole input), the same whatever the batch size, blocking or
//! thread count: a row's product is bit for bit the same alone (decode) or in a batch
//! (prefill).
//!
//! CPUs without AVX-512 F keep candle's dense matmul ([`Caps::avx512f`] is false there).
//!
//! [`bf16`]: the same blocking for bf16 weights on AVX-512 BF16, activations rounded to
//! bf16 at the product's input and f32 sums.
//!
//! [`Caps::avx512f`]: super::Caps::avx512f

#[cfg(target_arch = "x86_64")]
mod avx512;
pub mod bf16;
pub mod blocking;
mod gated;
mod kernel;
mod packed;
mod tile;
pub mod tune;

pub use blocking::{Blocking, Shape};
pub use gated::GatedPair;
pub use kernel::{matmul, matmul_blocked, MR};
pub use packed::{PackedMatrix, NR};
pub(crate) use tile::Tile;
pub use tile::SUM_BLOCK;

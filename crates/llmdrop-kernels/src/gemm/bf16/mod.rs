//! bf16 matrix products: weights used as bf16 checkpoints store them, activations rounded
//! to bf16 at the product's input, f32 sums and f32 outputs — PyTorch's CPU bf16
//! semantics — on AMX tiles (`tdpbf16ps`: 16 x 16 outputs of 32 inputs an instruction) or
//! AVX-512 BF16 (`vdpbf16ps`: 32 bf16 multiply-adds an instruction), each with a portable
//! twin that gives the same bits.
//!
//! # Two orders
//!
//! The two instructions round in different orders ([`Order`]); [`matmul`] sums in the
//! order of the fastest kernel this CPU has ([`Order::native`]), [`matmul_in`] in the one
//! asked for. Measured on an Intel Xeon with both (family 6 model 167, `cargo bench`):
//! `vdpbf16ps` runs at half the f32 FMA's rate there (one instruction every two cycles),
//! so the chain order's kernel is slower than f32 on prefill shapes, while the tiles run
//! at 1.9-3.5x the f32 kernel. On Zen 4/5 (no AMX) the chain order runs at twice the f32
//! rate. The rules below are the chain's; [`Order::Tiles`] uses the same multiply-add and
//! an addition with the same rules, in blocks (see its docs). On the tiles, a sum that
//! meets an infinity may come out ±∞ where IEEE arithmetic (and the twin) gives NaN:
//! both are non-finite, and finite results are the twin's bit for bit.
//!
//! # What is computed
//!
//! [`matmul`] computes `y[i][j] = Σ_k bf16(x[i][k]) · W[j][k]` for f32 activations `x`
//! (`[m, k]`) and a [`Bf16Matrix`] `W` (`[n, k]`, packed from a checkpoint's bf16 values or
//! rounded from f32). [`round`] is the rounding of the activations: to nearest, ties to
//! even, a NaN to the quiet NaN `0x7FC0` (PyTorch's `c10::BFloat16`).
//!
//! In [`Order::Chain`], every output is one chain over the inputs in ascending order,
//!
//! ```text
//! s = +0;  for k in 0..K { s = mul_add(s, bf16(x[i][k]), W[j][k]) }  // K = k rounded up to even
//! ```
//!
//! where `mul_add` is one half of `vdpbf16ps`: `s + x·w` with the exact product, rounded
//! once to f32, nearest even; a subnormal input (`x`, `w` or `s`) read as a zero of its
//! sign (DAZ); a result under 2^-126 after rounding to 24 bits with an unbounded exponent
//! written as a zero of its sign (FTZ). When `k` is odd the chain ends with one step of
//! `+0 · +0` (the pair's padding), which turns a `-0` sum into `+0`. The order is the same
//! whatever the batch size, blocking or thread count: a row's product is bit for bit the
//! same alone (decode) or in a batch (prefill).
//!
//! Special values: a NaN input gives NaN outputs in its row (payload unspecified),
//! `∞ · 0` a NaN, a sum past f32's range ±∞. These are the instruction's rules (Intel's
//! definition: "FMA with DAZ in, FTZ out and RNE rounding, MXCSR neither consulted nor
//! updated", the product of the upper bf16 halves first); the tests check the portable
//! twin against the CPU's instruction bit for bit.
//!
//! # Layout and kernel
//!
//! `vdpbf16ps` multiplies 16 lanes of two bf16 each and adds both products to the lane's
//! f32 sum, the upper halves' first. [`Bf16Matrix`] stores panels of [`NR`] output rows; a
//! panel's step `p` holds inputs `2p` (upper half) and `2p + 1` (lower half) of each of its
//! rows in one 32-bit lane, `NR` lanes contiguous (two 64-byte loads). The activations are
//! rounded and paired the same way once per product (`x[i][2p]` upper). Each kernel step
//! broadcasts one activation pair per row against the two weight registers: up to
//! [`MR`] rows × [`NR`] outputs accumulate in 24 registers, as in the f32 kernel, with the
//! same panel streaming, chunking and split across threads.
//!
//! CPUs without AVX-512 BF16 run the portable twin ([`Caps::avx512_bf16`] is false there):
//! exact, but scalar and slow.
//!
//! ```
//! use llmdrop_kernels::gemm::bf16::{self, Bf16Matrix};
//! use llmdrop_kernels::Kernel;
//!
//! // w: 2 output rows of 3 inputs, row-major ([out, in]), rounded from f32 to bf16
//! let w = Bf16Matrix::from_f32(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 2, 3)?;
//! // 1.001 rounds to 1.0 in bf16 (8 significant bits)
//! let y = bf16::matmul(&w, &[1.001, 1.0, 1.0], Kernel::Auto)?;
//! assert_eq!(y, [6.0, 15.0]);
//! assert_eq!(y, bf16::matmul(&w, &[1.001, 1.0, 1.0], Kernel::Portable)?);
//! # Ok::<(), llmdrop_kernels::Error>(())
//! ```
//!
//! [`Caps::avx512_bf16`]: crate::Caps::avx512_bf16
//! [`MR`]: crate::gemm::MR
//! [`NR`]: crate::gemm::NR

#[cfg(target_arch = "x86_64")]
pub(crate) mod amx;
mod arith;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod kernel;
mod order;
mod packed;
mod tile;

pub use arith::round;
#[cfg(target_arch = "x86_64")]
pub(crate) use avx512::peak_steps as avx512_peak_steps;
pub use kernel::{matmul, matmul_in};
pub use order::{Order, BLOCK};
pub use packed::Bf16Matrix;

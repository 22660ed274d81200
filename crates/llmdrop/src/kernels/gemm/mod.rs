//! f32 matrix products on weights packed at load time, with an AVX-512 kernel.
//!
//! candle's CPU matmul (the `gemm` crate) uses 256-bit AVX2 on stable Rust, which caps it at
//! half of what a core with 512-bit FMA units does in f32. Linear layers whose weights are
//! f32 are repacked here into panels of 32 output rows ([`PackedMatrix`]) and multiplied
//! by a register-blocked AVX-512 kernel: each step broadcasts one input value per
//! activation row against 32 weights, so up to 12 rows × 32 outputs accumulate in
//! registers. Every output is one sequential chain of fused multiply-adds over the input
//! dimension, in the same order whatever the batch size, blocking or thread count: a row's
//! product is bit for bit the same alone (decode) or in a batch (prefill).
//!
//! CPUs without AVX-512 F keep candle's dense matmul ([`available`] is false there).

#[cfg(target_arch = "x86_64")]
mod avx512;
mod gated;
mod kernel;
mod packed;
mod peak;

pub use gated::GatedPair;
pub(crate) use kernel::Tile;
pub use kernel::{matmul, Kernel, MR};
pub use packed::{PackedMatrix, NR};
pub use peak::fma_peak_gflops;

/// Whether this CPU runs the packed kernel (and llmdrop's other AVX-512 F code: the dot
/// products, the vectorized `exp`, the attention kernels).
///
/// `#[target_feature(enable = "avx512f")]` also enables every feature AVX-512 F implies
/// (AVX2, FMA, F16C, AVX and the SSE levels), and the compiler uses them (`mul_add`
/// becomes `vfmadd`): all of them are checked here, not only AVX-512 F. Checked once per
/// process; every `avx512f` kernel is reached only where this is true.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static YES: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *YES.get_or_init(|| {
            avx2_fma() && is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("f16c")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether this CPU has AVX2 and FMA and what they imply (AVX and the SSE levels): the
/// features an `#[target_feature(enable = "avx2,fma")]` function may use. Checked once
/// per process.
pub(crate) fn avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static YES: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *YES.get_or_init(|| {
            is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("fma")
                && is_x86_feature_detected!("avx")
                && is_x86_feature_detected!("sse4.2")
                && is_x86_feature_detected!("sse4.1")
                && is_x86_feature_detected!("ssse3")
                && is_x86_feature_detected!("sse3")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

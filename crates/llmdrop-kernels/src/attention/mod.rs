//! Attention on f32 CPU tensors as candle ops: [`prefill_attention`] (a block of new
//! positions, on the packed matrix kernel) and [`decode_attention`] (one new position over
//! the KV cache), and [`Backend::choose`], the one place that picks between them and
//! candle's dense ops.

mod decode;
#[cfg(target_arch = "x86_64")]
mod decode_scores;
mod inputs;
mod prefill;

use candle_core::{DType, Device};

pub use decode::decode_attention;
pub use prefill::{prefill_attention, prefill_attention_with, Visibility};

/// Which code computes one attention call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// One query position over the cache: [`decode_attention`].
    Decode,
    /// A block of positions on the packed AVX-512 kernel: [`prefill_attention`] with
    /// [`Kernel::Auto`](super::Kernel::Auto).
    Prefill,
    /// candle's matmul and softmax, in chunks of query positions (any dtype or device):
    /// the caller's own code.
    Dense,
}

impl Backend {
    /// The backend for `positions` query positions of dtype `dtype` on `device`: a single
    /// f32 position decodes; f32 blocks on a CPU with [`Caps::avx512f`] run the prefill
    /// kernel; everything else is dense.
    ///
    /// [`Caps::avx512f`]: super::Caps::avx512f
    pub fn choose(positions: usize, dtype: DType, device: &Device) -> Backend {
        if positions == 1 && dtype == DType::F32 {
            Backend::Decode
        } else if dtype == DType::F32 && super::caps().avx512f() && device.is_cpu() {
            Backend::Prefill
        } else {
            Backend::Dense
        }
    }
}

//! What this CPU can run, detected once, and which implementation a caller asks for.
//!
//! Every choice between an AVX-512 kernel and its portable twin reads [`caps`]; nothing
//! else in the crate asks the CPU. An `unsafe` SIMD kernel is reached only behind a
//! check of the [`Caps`] field its `# Safety` names.

use std::sync::OnceLock;

/// The CPU features llmdrop's kernels are compiled for, each with what it implies.
///
/// `#[target_feature(enable = "avx512f")]` also enables every feature AVX-512 F implies
/// (AVX2, FMA, F16C, AVX and the SSE levels), and the compiler uses them (`mul_add`
/// becomes `vfmadd`): each flag here checks all of them, not only the feature it is
/// named for. The fields are private: a `Caps` comes only from [`caps`], so a `true`
/// always means the CPU has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    avx2_fma: bool,
    avx512f: bool,
    avx512_vnni: bool,
    avx512_bf16: bool,
    amx_bf16: bool,
}

impl Caps {
    /// AVX2 and FMA and what they imply (AVX and the SSE levels): the features an
    /// `#[target_feature(enable = "avx2,fma")]` function may use.
    pub fn avx2_fma(self) -> bool {
        self.avx2_fma
    }

    /// AVX-512 F and what it implies ([`Caps::avx2_fma`], F16C): the packed f32 kernel,
    /// the dot products, the vectorized `exp`, the attention kernels, the Gram blocks.
    pub fn avx512f(self) -> bool {
        self.avx512f
    }

    /// AVX-512 F, BW and VNNI and what they imply ([`Caps::avx512f`]): the quantized
    /// kernels.
    pub fn avx512_vnni(self) -> bool {
        self.avx512_vnni
    }

    /// AVX-512 F, BW and BF16 and what they imply ([`Caps::avx512f`]): the bf16 matrix
    /// product (`vdpbf16ps`) and its conversion of activations to bf16.
    pub fn avx512_bf16(self) -> bool {
        self.avx512_bf16
    }

    /// AMX-TILE and AMX-BF16 (the tile registers and `tdpbf16ps`), enabled for this
    /// process by the operating system, and [`Caps::avx512_bf16`]: the bf16 matrix product
    /// on tiles ([`Order::Tiles`](crate::gemm::bf16::Order::Tiles)).
    pub fn amx_bf16(self) -> bool {
        self.amx_bf16
    }

    #[cfg(target_arch = "x86_64")]
    fn detect() -> Self {
        let avx2_fma = is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("avx")
            && is_x86_feature_detected!("sse4.2")
            && is_x86_feature_detected!("sse4.1")
            && is_x86_feature_detected!("ssse3")
            && is_x86_feature_detected!("sse3");
        let avx512f =
            avx2_fma && is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("f16c");
        let avx512_vnni = avx512f
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512vnni");
        let avx512_bf16 = avx512f
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512bf16");
        let amx_bf16 = avx512_bf16 && crate::gemm::bf16::amx::enable();
        Self {
            avx2_fma,
            avx512f,
            avx512_vnni,
            avx512_bf16,
            amx_bf16,
        }
    }

    #[cfg(not(target_arch = "x86_64"))]
    fn detect() -> Self {
        Self {
            avx2_fma: false,
            avx512f: false,
            avx512_vnni: false,
            avx512_bf16: false,
            amx_bf16: false,
        }
    }
}

/// This CPU's [`Caps`], detected on first use and kept for the process.
pub fn caps() -> Caps {
    static CAPS: OnceLock<Caps> = OnceLock::new();
    *CAPS.get_or_init(Caps::detect)
}

/// Which implementation runs a kernel: the f32, bf16 and quantized matrix products,
/// activation quantization, prefill attention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// The fastest this CPU supports: the AVX-512 code where [`caps`] allows, else
    /// portable.
    Auto,
    /// Plain Rust, on any CPU, with the same operations in the same order: the reference
    /// the SIMD kernels are tested against bit for bit.
    Portable,
}

impl Kernel {
    /// Whether to run the AVX-512 F code: `Auto` on a CPU with [`Caps::avx512f`]. An f32
    /// kernel's `simd` flag comes only from here.
    pub(crate) fn avx512f(self) -> bool {
        self == Kernel::Auto && caps().avx512f()
    }

    /// Whether to run the AVX-512 VNNI code: `Auto` on a CPU with [`Caps::avx512_vnni`].
    /// A quantized kernel's `simd` flag comes only from here.
    pub(crate) fn avx512_vnni(self) -> bool {
        self == Kernel::Auto && caps().avx512_vnni()
    }

    /// Whether to run the AVX-512 BF16 code: `Auto` on a CPU with [`Caps::avx512_bf16`].
    /// The bf16 kernel's `simd` flag comes only from here.
    pub(crate) fn avx512_bf16(self) -> bool {
        self == Kernel::Auto && caps().avx512_bf16()
    }

    /// Whether to run the AMX code: `Auto` on a CPU with [`Caps::amx_bf16`]. The tile
    /// kernel's `amx` flag comes only from here.
    pub(crate) fn amx_bf16(self) -> bool {
        self == Kernel::Auto && caps().amx_bf16()
    }

    /// The bf16 kernel this resolves to on this CPU for its native
    /// [`Order`](crate::gemm::bf16::Order): `amx-bf16`, `avx512-bf16` or `portable`.
    pub fn bf16_name(self) -> &'static str {
        if self.amx_bf16() {
            "amx-bf16"
        } else if self.avx512_bf16() {
            "avx512-bf16"
        } else {
            "portable"
        }
    }

    /// The quantized kernel this resolves to on this CPU: `avx512-vnni` or `portable`.
    pub fn quant_name(self) -> &'static str {
        if self.avx512_vnni() {
            "avx512-vnni"
        } else {
            "portable"
        }
    }
}

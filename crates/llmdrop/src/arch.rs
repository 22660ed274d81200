//! What differs between the supported decoder families, as data.
//!
//! One [`ArchSpec`] per family; the decoder reads these flags and never branches on
//! the family's name.

/// Static description of one decoder family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchSpec {
    /// `model_type` in an HF config.json.
    pub name: &'static str,
    /// `general.architecture` in GGUF files of this family (None: not read from GGUF).
    pub gguf_arch: Option<&'static str>,
    /// q/k/v projections always carry a bias (qwen2), whatever the config says.
    pub qkv_bias: bool,
    /// The config key `attention_bias` adds a bias to q/k/v/o (llama).
    pub config_attention_bias: bool,
    /// Per-head RMSNorm on q and k before RoPE (qwen3).
    pub qk_norm: bool,
    /// Attention is limited to `sliding_window` past tokens when the config sets one.
    pub sliding_window: SlidingWindow,
    /// llama.cpp's converter permutes q/k rows of this family for interleaved RoPE;
    /// the GGUF loader undoes it so weights stay in HF layout.
    pub gguf_qk_permuted: bool,
}

/// How a family decides whether its sliding window applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlidingWindow {
    /// Never.
    Never,
    /// Whenever `sliding_window` is set (mistral).
    WhenSet,
    /// Only when `use_sliding_window` is true (qwen2, qwen3).
    WhenEnabled,
}

pub const ARCHS: &[ArchSpec] = &[
    ArchSpec {
        name: "llama",
        gguf_arch: Some("llama"),
        qkv_bias: false,
        config_attention_bias: true,
        qk_norm: false,
        sliding_window: SlidingWindow::Never,
        gguf_qk_permuted: true,
    },
    ArchSpec {
        name: "mistral",
        gguf_arch: None,
        qkv_bias: false,
        config_attention_bias: false,
        qk_norm: false,
        sliding_window: SlidingWindow::WhenSet,
        gguf_qk_permuted: true,
    },
    ArchSpec {
        name: "qwen2",
        gguf_arch: Some("qwen2"),
        qkv_bias: true,
        config_attention_bias: false,
        qk_norm: false,
        sliding_window: SlidingWindow::WhenEnabled,
        gguf_qk_permuted: false,
    },
    ArchSpec {
        name: "qwen3",
        gguf_arch: None,
        qkv_bias: false,
        config_attention_bias: true,
        qk_norm: true,
        sliding_window: SlidingWindow::WhenEnabled,
        gguf_qk_permuted: false,
    },
];

impl ArchSpec {
    /// The family whose HF `model_type` is `name`.
    pub fn from_model_type(name: &str) -> Option<&'static ArchSpec> {
        ARCHS.iter().find(|a| a.name == name)
    }

    /// The family whose GGUF `general.architecture` is `name`.
    pub fn from_gguf_arch(name: &str) -> Option<&'static ArchSpec> {
        ARCHS.iter().find(|a| a.gguf_arch == Some(name))
    }

    /// Names of all supported families, for error messages.
    pub fn supported() -> String {
        ARCHS.iter().map(|a| a.name).collect::<Vec<_>>().join(", ")
    }

    /// Names of the families readable from GGUF, for error messages.
    pub fn supported_gguf() -> String {
        ARCHS
            .iter()
            .filter_map(|a| a.gguf_arch)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

//! What differs between the supported decoder families, as data.
//!
//! One [`ArchSpec`] per family; the decoder reads these flags and never branches on
//! the family's name.

/// Static description of one decoder family.
#[derive(Debug, Clone, Copy, PartialEq)]
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
    /// The layer norms: their HF and GGUF names, and where they sit.
    pub norms: &'static LayerNorms,
    /// RMSNorm computes `x · (1 + w)` (Gemma): HF checkpoints store `w`, llama.cpp's
    /// converter stores `w + 1` (the GGUF loader subtracts 1, as transformers does, so that
    /// every source yields HF values); the decoder adds 1 at load.
    pub norm_plus_one: bool,
    /// Embeddings are multiplied by `sqrt(hidden_size)` (rounded to f32) after the lookup.
    pub scaled_embeddings: bool,
    /// The MLP's activation when the config does not name one (GGUF files never do).
    pub default_act: Activation,
    /// Layer pattern of GGUF files, which carry no per-layer attention kinds: every
    /// `n`-th layer is global, the others sliding, as llama.cpp's graph decides by layer
    /// index (None: the family has one kind of layer).
    pub gguf_sliding_pattern: Option<usize>,
    /// RoPE base of the sliding layers in GGUF files, which store only the global one.
    pub gguf_local_rope_theta: Option<f64>,
    /// llmdrop's GGUF writer keeps this family as llama.cpp runs it. For a family with a
    /// [`ArchSpec::gguf_sliding_pattern`], only from a GGUF source and only renumberings
    /// that keep every layer's kind (see `export::gguf_layout`).
    pub gguf_writable: bool,
}

/// The MLP's gate activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// `silu` (llama, mistral, qwen).
    Silu,
    /// `gelu_pytorch_tanh`: GELU with the tanh approximation (Gemma).
    GeluTanh,
}

impl Activation {
    /// The activation an HF config names (`hidden_act` / `hidden_activation`).
    pub fn from_hf(name: &str) -> Option<Self> {
        match name {
            "silu" | "swish" => Some(Self::Silu),
            "gelu_pytorch_tanh" => Some(Self::GeluTanh),
            _ => None,
        }
    }

    /// The name an HF config gives it (`hidden_act` / `hidden_activation`).
    pub fn hf_name(self) -> &'static str {
        match self {
            Self::Silu => "silu",
            Self::GeluTanh => "gelu_pytorch_tanh",
        }
    }
}

/// The per-layer norms as (HF suffix, GGUF suffix) inside layer `i` (`model.layers.{i}.` /
/// `blk.{i}.`). A module's pre-norm normalises its input; a post-norm (sandwich norms,
/// Gemma) normalises its output before the residual add. A dropped module takes both.
#[derive(Debug, PartialEq, Eq)]
pub struct LayerNorms {
    pub attn_pre: (&'static str, &'static str),
    pub attn_post: Option<(&'static str, &'static str)>,
    pub mlp_pre: (&'static str, &'static str),
    pub mlp_post: Option<(&'static str, &'static str)>,
}

impl LayerNorms {
    /// Every (HF, GGUF) pair.
    pub fn all(&self) -> impl Iterator<Item = (&'static str, &'static str)> {
        [
            Some(self.attn_pre),
            self.attn_post,
            Some(self.mlp_pre),
            self.mlp_post,
        ]
        .into_iter()
        .flatten()
    }
}

/// llama's pre-norms: `post_attention_layernorm` is the MLP's input norm.
pub const PRE_NORMS: LayerNorms = LayerNorms {
    attn_pre: ("input_layernorm.weight", "attn_norm.weight"),
    attn_post: None,
    mlp_pre: ("post_attention_layernorm.weight", "ffn_norm.weight"),
    mlp_post: None,
};

/// Gemma's sandwich norms: `post_attention_layernorm` normalises the attention's output.
pub const SANDWICH_NORMS: LayerNorms = LayerNorms {
    attn_pre: ("input_layernorm.weight", "attn_norm.weight"),
    attn_post: Some((
        "post_attention_layernorm.weight",
        "post_attention_norm.weight",
    )),
    mlp_pre: ("pre_feedforward_layernorm.weight", "ffn_norm.weight"),
    mlp_post: Some(("post_feedforward_layernorm.weight", "post_ffw_norm.weight")),
};

/// How a family decides whether its sliding window applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlidingWindow {
    /// Never.
    Never,
    /// Whenever `sliding_window` is set (mistral).
    WhenSet,
    /// Only when `use_sliding_window` is true (qwen2, qwen3).
    WhenEnabled,
    /// On the layers `layer_types` (or the layer pattern) marks `sliding_attention`; the
    /// others attend globally (Gemma 3).
    PerLayer,
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
        norms: &PRE_NORMS,
        norm_plus_one: false,
        scaled_embeddings: false,
        default_act: Activation::Silu,
        gguf_sliding_pattern: None,
        gguf_local_rope_theta: None,
        gguf_writable: true,
    },
    ArchSpec {
        name: "mistral",
        gguf_arch: None,
        qkv_bias: false,
        config_attention_bias: false,
        qk_norm: false,
        sliding_window: SlidingWindow::WhenSet,
        gguf_qk_permuted: true,
        norms: &PRE_NORMS,
        norm_plus_one: false,
        scaled_embeddings: false,
        default_act: Activation::Silu,
        gguf_sliding_pattern: None,
        gguf_local_rope_theta: None,
        gguf_writable: true,
    },
    ArchSpec {
        name: "qwen2",
        gguf_arch: Some("qwen2"),
        qkv_bias: true,
        config_attention_bias: false,
        qk_norm: false,
        sliding_window: SlidingWindow::WhenEnabled,
        gguf_qk_permuted: false,
        norms: &PRE_NORMS,
        norm_plus_one: false,
        scaled_embeddings: false,
        default_act: Activation::Silu,
        gguf_sliding_pattern: None,
        gguf_local_rope_theta: None,
        gguf_writable: true,
    },
    ArchSpec {
        name: "qwen3",
        gguf_arch: None,
        qkv_bias: false,
        config_attention_bias: true,
        qk_norm: true,
        sliding_window: SlidingWindow::WhenEnabled,
        gguf_qk_permuted: false,
        norms: &PRE_NORMS,
        norm_plus_one: false,
        scaled_embeddings: false,
        default_act: Activation::Silu,
        gguf_sliding_pattern: None,
        gguf_local_rope_theta: None,
        gguf_writable: true,
    },
    ArchSpec {
        name: "gemma3_text",
        gguf_arch: Some("gemma3"),
        qkv_bias: false,
        config_attention_bias: true,
        qk_norm: true,
        sliding_window: SlidingWindow::PerLayer,
        gguf_qk_permuted: false,
        norms: &SANDWICH_NORMS,
        norm_plus_one: true,
        scaled_embeddings: true,
        default_act: Activation::GeluTanh,
        // llama.cpp: layer il is sliding unless il % 6 == 5; local base 10000
        gguf_sliding_pattern: Some(6),
        gguf_local_rope_theta: Some(10000.0),
        gguf_writable: true,
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

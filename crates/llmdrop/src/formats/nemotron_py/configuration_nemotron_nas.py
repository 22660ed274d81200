# Written by llmdrop into every `--format nemotron-nas` export: llmdrop's own code, not
# NVIDIA's DeciLM files.
"""Configuration of a nemotron-nas (DeciLM layout) model as llmdrop writes it.

`block_configs` has one entry per layer, `{"attention": {...}, "ffn": {...}}`; a module whose
`no_op` is true is absent (llmdrop dropped it: the residual passes through). Each entry becomes
a `BlockConfig` whose `attention` and `ffn` are attribute objects holding exactly the JSON's
keys, plus `no_op` / `replace_with_linear` (false when absent), so code that reads them as
attributes finds them: vLLM's `nemotron_nas.py` reads `attention.no_op`,
`attention.n_heads_in_group`, `ffn.no_op`, and `ffn.ffn_mult` when the attribute exists, else
`ffn.intermediate_size` (and `ffn.hidden_act` when it exists). `to_dict` writes them back as the
JSON they came from.

Loaded by transformers with `trust_remote_code=True` through config.json's `auto_map`.
"""

from transformers import PretrainedConfig

# RoPE kinds llmdrop reads and writes; others are refused with a clear error.
ROPE_TYPES = ("default", "linear", "llama3")


class BlockSection:
    """One part of a block config (`attention` or `ffn`): the JSON object's keys as attributes."""

    def __init__(self, values=None):
        if isinstance(values, BlockSection):
            values = values.to_dict()
        if values is None:
            values = {}
        if not isinstance(values, dict):
            raise TypeError(f"a block config section must be a JSON object, not {values!r}")
        self.no_op = False
        self.replace_with_linear = False
        for key, value in values.items():
            setattr(self, key, value)

    def to_dict(self):
        return dict(vars(self))

    def __eq__(self, other):
        return isinstance(other, BlockSection) and vars(self) == vars(other)

    def __repr__(self):
        return f"BlockSection({vars(self)!r})"


class BlockConfig:
    """One layer's `block_configs` entry: `attention` and `ffn` sections (other keys kept)."""

    def __init__(self, attention=None, ffn=None, **extra):
        self.attention = BlockSection(attention)
        self.ffn = BlockSection(ffn)
        for key, value in extra.items():
            setattr(self, key, value)

    @classmethod
    def of(cls, entry):
        if isinstance(entry, BlockConfig):
            return entry
        if not isinstance(entry, dict):
            raise TypeError(f"a block_configs entry must be a JSON object, not {entry!r}")
        return cls(**entry)

    def to_dict(self):
        out = {k: v for k, v in vars(self).items() if k not in ("attention", "ffn")}
        out["attention"] = self.attention.to_dict()
        out["ffn"] = self.ffn.to_dict()
        return out

    def __eq__(self, other):
        return isinstance(other, BlockConfig) and self.to_dict() == other.to_dict()

    def __repr__(self):
        return f"BlockConfig({self.to_dict()!r})"


def ffn_mult_to_intermediate(ffn_mult, hidden_size):
    """DeciLM's `ffn_mult` -> MLP width: int(2 * mult * hidden / 3) rounded up to 256 (as
    llmdrop's `ffn_mult_to_intermediate`, vLLM and llama.cpp compute it)."""
    n = int(2 * ffn_mult * hidden_size / 3)
    return -(-n // 256) * 256


def intermediate_size_of(ffn, hidden_size):
    """The MLP width of a kept `ffn` section: from `ffn_mult` when the key is there, else
    `intermediate_size` (vLLM's order)."""
    if hasattr(ffn, "ffn_mult"):
        mult = ffn.ffn_mult
        if not isinstance(mult, (int, float)) or not 0 < mult <= 1024:
            raise ValueError(f"ffn_mult {mult!r} is not a number in (0, 1024]")
        return ffn_mult_to_intermediate(mult, hidden_size)
    size = getattr(ffn, "intermediate_size", None)
    if not isinstance(size, int) or size <= 0:
        raise ValueError(f"a kept ffn needs `ffn_mult` or a positive `intermediate_size`, got {ffn!r}")
    return size


def rope_settings(rope_theta, rope_scaling, rope_parameters):
    """One flat, standardized RoPE dict (`rope_type`, `rope_theta`, scaling keys), read as
    llmdrop reads it: `rope_theta` at the top level, else in `rope_parameters`, else 10000;
    scaling from `rope_scaling`, else `rope_parameters` (its `full_attention` entry when it is
    given per layer type)."""
    params = rope_parameters if isinstance(rope_parameters, dict) else None
    if params is not None and isinstance(params.get("full_attention"), dict):
        params = params["full_attention"]
    scaling = rope_scaling if isinstance(rope_scaling, dict) else params
    out = dict(scaling or {})
    kind = out.pop("type", None)
    kind = out.get("rope_type") or kind or "default"
    if kind not in ROPE_TYPES:
        raise ValueError(
            f"rope type `{kind}` is not supported by this modeling file "
            f"(supported: {', '.join(ROPE_TYPES)}, as in llmdrop)"
        )
    out["rope_type"] = kind
    theta = rope_theta
    if theta is None and params is not None:
        theta = params.get("rope_theta")
    out["rope_theta"] = float(theta if theta is not None else 10000.0)
    need = {
        "default": (),
        "linear": ("factor",),
        "llama3": ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"),
    }[kind]
    missing = [k for k in need if not isinstance(out.get(k), (int, float))]
    if missing:
        raise ValueError(f"rope type `{kind}` needs {', '.join(missing)}")
    return out


class DeciLMConfig(PretrainedConfig):
    """A llama-family model with per-layer no-op attention / ffn (`block_configs`)."""

    model_type = "nemotron-nas"
    keys_to_ignore_at_inference = ["past_key_values"]

    def __init__(
        self,
        vocab_size=32000,
        hidden_size=4096,
        num_hidden_layers=32,
        num_attention_heads=32,
        head_dim=None,
        hidden_act="silu",
        max_position_embeddings=2048,
        initializer_range=0.02,
        rms_norm_eps=1e-6,
        rope_theta=None,
        rope_scaling=None,
        rope_parameters=None,
        attention_bias=False,
        mlp_bias=False,
        tie_word_embeddings=False,
        block_configs=None,
        **kwargs,
    ):
        super().__init__(tie_word_embeddings=tie_word_embeddings, **kwargs)
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.head_dim = head_dim if head_dim is not None else hidden_size // num_attention_heads
        self.hidden_act = hidden_act
        self.max_position_embeddings = max_position_embeddings
        self.initializer_range = initializer_range
        self.rms_norm_eps = rms_norm_eps
        self.attention_bias = attention_bias
        self.mlp_bias = mlp_bias
        self.tie_word_embeddings = tie_word_embeddings
        rope = rope_settings(rope_theta, rope_scaling, rope_parameters)
        self.rope_theta = rope["rope_theta"]
        self.rope_parameters = rope
        if block_configs is None:
            dense = {"attention": {"n_heads_in_group": 1}, "ffn": {"intermediate_size": 4 * hidden_size}}
            block_configs = [dense] * num_hidden_layers
        self.block_configs = [BlockConfig.of(b) for b in block_configs]
        self._check_blocks()
        # the uniform key/value head count, for code that asks the config for one
        groups = [b.attention.n_heads_in_group for b in self.block_configs if not b.attention.no_op]
        self.num_key_value_heads = num_attention_heads // groups[0] if groups else num_attention_heads

    def _check_blocks(self):
        if len(self.block_configs) != self.num_hidden_layers:
            raise ValueError(
                f"block_configs has {len(self.block_configs)} entries, num_hidden_layers is {self.num_hidden_layers}"
            )
        for i, b in enumerate(self.block_configs):
            a, f = b.attention, b.ffn
            if a.replace_with_linear or f.replace_with_linear:
                raise ValueError(f"block {i}: linear-replaced modules are not supported by this modeling file")
            if not a.no_op:
                g = getattr(a, "n_heads_in_group", None)
                if not isinstance(g, int) or g <= 0 or self.num_attention_heads % g != 0:
                    raise ValueError(
                        f"block {i}: n_heads_in_group {g!r} does not divide num_attention_heads "
                        f"{self.num_attention_heads}"
                    )
            if not f.no_op:
                intermediate_size_of(f, self.hidden_size)

    def to_dict(self):
        out = super().to_dict()
        out["block_configs"] = [b.to_dict() for b in self.block_configs]
        return out

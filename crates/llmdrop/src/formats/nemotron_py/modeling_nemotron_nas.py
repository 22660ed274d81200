# Written by llmdrop into every `--format nemotron-nas` export: llmdrop's own code, not
# NVIDIA's DeciLM files.
"""`DeciLMForCausalLM` for llmdrop's nemotron-nas exports, for transformers' `trust_remote_code`.

A llama-family decoder: token embedding; per layer `h += Attn(RMSNorm(h))` then
`h += MLP(RMSNorm(h))`, where a no-op attention or ffn of `block_configs` (a module llmdrop
dropped) is skipped together with its norm and has no weights; final RMSNorm; a head tied to
the embedding or not. Attention is grouped-query (`n_heads_in_group` query heads per key/value
head) with rotary embeddings in the "rotate half" layout (RoPE types default, linear, llama3);
the MLP is SwiGLU-style `down(act(gate(x)) * up(x))`. Norms, rotary embeddings and softmax
run in float32 for 16-bit weights (in float64 for float64 weights); the RoPE tables are
computed in float32, as transformers and llmdrop compute them.

It runs on the CPU as written (plain torch, no fused kernels) and is meant for checking an
export and for small models: `generate()` works but recomputes the whole prefix at every step
(no KV cache). Engines (vLLM's `nemotron_nas.py`) serve the same directory with their own code.
"""

import math

import torch
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers.activations import ACT2FN
from transformers.modeling_outputs import CausalLMOutputWithPast

from .configuration_nemotron_nas import DeciLMConfig, intermediate_size_of


class DeciLMRMSNorm(nn.Module):
    """`x / sqrt(mean(x^2) + eps) * weight` over the last dimension, in float32."""

    def __init__(self, size, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.eps = eps

    def forward(self, x):
        wide = x.to(compute_dtype(x))
        wide = wide * torch.rsqrt(wide.pow(2).mean(-1, keepdim=True) + self.eps)
        return (wide * self.weight.to(wide.dtype)).to(x.dtype)


def compute_dtype(x):
    """float32 for 16-bit tensors, else the tensor's own float type."""
    return torch.promote_types(x.dtype, torch.float32)


def rope_inv_freq(config, device):
    """Inverse frequencies `[head_dim / 2]` in float32, scaling applied."""
    rope = config.rope_parameters
    dim = config.head_dim
    exponents = torch.arange(0, dim, 2, dtype=torch.int64, device=device).float() / dim
    inv = 1.0 / (rope["rope_theta"] ** exponents)
    kind = rope["rope_type"]
    if kind == "linear":
        inv = inv / rope["factor"]
    elif kind == "llama3":
        factor = rope["factor"]
        low, high = rope["low_freq_factor"], rope["high_freq_factor"]
        old = rope["original_max_position_embeddings"]
        wavelen = 2 * math.pi / inv
        # long wavelengths are slowed by `factor`, short ones kept, the band between blended
        scaled = torch.where(wavelen > old / low, inv / factor, inv)
        smooth = (old / wavelen - low) / (high - low)
        blended = (1 - smooth) * scaled / factor + smooth * scaled
        medium = (wavelen >= old / high) & (wavelen <= old / low)
        inv = torch.where(medium, blended, scaled)
    elif kind != "default":
        raise ValueError(f"rope type `{kind}` is not supported")
    return inv


def rope_tables(config, positions, dtype):
    """cos, sin `[batch, 1, seq, head_dim]` for `positions` `[batch, seq]`, given in `dtype`:
    the angles in float32 as transformers computes them, their cos and sin computed in
    float64 and rounded to float32 (as llmdrop computes them: the same bits on any CPU,
    where torch's float32 cos may differ in the last place)."""
    inv = rope_inv_freq(config, positions.device)
    angles = positions.float()[:, :, None] * inv[None, None, :]
    angles = torch.cat([angles, angles], dim=-1)[:, None, :, :].double()
    return angles.cos().float().to(dtype), angles.sin().float().to(dtype)


def apply_rope(x, cos, sin):
    """Rotates pairs (i, i + d/2) of the last dimension of `x` `[batch, heads, seq, d]`."""
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    out = x.to(cos.dtype) * cos + rotated.to(cos.dtype) * sin
    return out.to(x.dtype)


class DeciLMAttention(nn.Module):
    """Grouped-query self-attention with `num_attention_heads / n_heads_in_group` kv heads."""

    def __init__(self, config, n_heads_in_group):
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.num_kv_heads = config.num_attention_heads // n_heads_in_group
        self.head_dim = config.head_dim
        bias = bool(config.attention_bias)
        h, d = config.hidden_size, config.head_dim
        self.q_proj = nn.Linear(h, self.num_heads * d, bias=bias)
        self.k_proj = nn.Linear(h, self.num_kv_heads * d, bias=bias)
        self.v_proj = nn.Linear(h, self.num_kv_heads * d, bias=bias)
        self.o_proj = nn.Linear(self.num_heads * d, h, bias=bias)

    def forward(self, x, cos, sin, mask):
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.num_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.num_kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.num_kv_heads, self.head_dim).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        # query head j reads key/value head j // group
        group = self.num_heads // self.num_kv_heads
        k = k.repeat_interleave(group, dim=1)
        v = v.repeat_interleave(group, dim=1)
        wide = compute_dtype(q)
        scores = torch.matmul(q.to(wide), k.to(wide).transpose(-1, -2)) / math.sqrt(self.head_dim)
        scores = scores.masked_fill(~mask, torch.finfo(wide).min)
        probs = torch.softmax(scores, dim=-1).to(v.dtype)
        out = torch.matmul(probs, v).transpose(1, 2).reshape(b, t, self.num_heads * self.head_dim)
        return self.o_proj(out)


class DeciLMMLP(nn.Module):
    """`down(act(gate(x)) * up(x))`."""

    def __init__(self, config, intermediate_size, hidden_act):
        super().__init__()
        bias = bool(config.mlp_bias)
        self.gate_proj = nn.Linear(config.hidden_size, intermediate_size, bias=bias)
        self.up_proj = nn.Linear(config.hidden_size, intermediate_size, bias=bias)
        self.down_proj = nn.Linear(intermediate_size, config.hidden_size, bias=bias)
        self.act = ACT2FN[hidden_act]

    def forward(self, x):
        return self.down_proj(self.act(self.gate_proj(x)) * self.up_proj(x))


class DeciLMDecoderLayer(nn.Module):
    """One layer; a no-op attention or ffn (and its norm) is `None` and skipped."""

    def __init__(self, config, layer_idx):
        super().__init__()
        block = config.block_configs[layer_idx]
        self.input_layernorm = self.self_attn = None
        self.post_attention_layernorm = self.mlp = None
        if not block.attention.no_op:
            self.input_layernorm = DeciLMRMSNorm(config.hidden_size, config.rms_norm_eps)
            self.self_attn = DeciLMAttention(config, block.attention.n_heads_in_group)
        if not block.ffn.no_op:
            act = getattr(block.ffn, "hidden_act", None) or config.hidden_act
            size = intermediate_size_of(block.ffn, config.hidden_size)
            self.post_attention_layernorm = DeciLMRMSNorm(config.hidden_size, config.rms_norm_eps)
            self.mlp = DeciLMMLP(config, size, act)

    def forward(self, h, cos, sin, mask):
        if self.self_attn is not None:
            h = h + self.self_attn(self.input_layernorm(h), cos, sin, mask)
        if self.mlp is not None:
            h = h + self.mlp(self.post_attention_layernorm(h))
        return h


class DeciLMPreTrainedModel(PreTrainedModel):
    config_class = DeciLMConfig
    base_model_prefix = "model"
    _no_split_modules = ["DeciLMDecoderLayer"]
    supports_gradient_checkpointing = False


class DeciLMModel(DeciLMPreTrainedModel):
    """Embedding, layers and final norm: hidden states `[batch, seq, hidden]`."""

    def __init__(self, config):
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(DeciLMDecoderLayer(config, i) for i in range(config.num_hidden_layers))
        self.norm = DeciLMRMSNorm(config.hidden_size, config.rms_norm_eps)
        self.post_init()

    def get_input_embeddings(self):
        return self.embed_tokens

    def set_input_embeddings(self, value):
        self.embed_tokens = value

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, inputs_embeds=None):
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("give exactly one of input_ids and inputs_embeds")
        h = self.embed_tokens(input_ids) if inputs_embeds is None else inputs_embeds
        b, t = h.shape[:2]
        keep = None
        if attention_mask is not None:
            if attention_mask.dim() != 2:
                raise ValueError("attention_mask must be [batch, seq] (1 = token, 0 = padding)")
            keep = attention_mask.to(h.device).bool()
        if position_ids is None:
            if keep is not None:
                # left padding: positions count the real tokens only
                position_ids = (keep.long().cumsum(-1) - 1).clamp(min=0)
            else:
                position_ids = torch.arange(t, device=h.device)[None, :].expand(b, t)
        cos, sin = rope_tables(self.config, position_ids.to(h.device), compute_dtype(h))
        # [batch, 1, query, key]: causal, and no padded key
        mask = torch.ones(t, t, dtype=torch.bool, device=h.device).tril()[None, None]
        if keep is not None:
            mask = mask & keep[:, None, None, :]
        for layer in self.layers:
            h = layer(h, cos, sin, mask)
        return self.norm(h)


class DeciLMForCausalLM(DeciLMPreTrainedModel, GenerationMixin):
    """The decoder and its head; logits `[batch, seq, vocab]`."""

    def __init__(self, config):
        super().__init__(config)
        self.model = DeciLMModel(config)
        # a tied head reads the embedding matrix directly and has no weight of its own
        self.lm_head = None
        if not config.tie_word_embeddings:
            self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self):
        return self.model.embed_tokens

    def set_input_embeddings(self, value):
        self.model.embed_tokens = value

    def get_output_embeddings(self):
        return self.lm_head

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        position_ids=None,
        inputs_embeds=None,
        labels=None,
        logits_to_keep=0,
        return_dict=None,
        **kwargs,
    ):
        for key in ("cache", "past_key_values"):
            cache = kwargs.get(key)
            if cache is not None and _cached_tokens(cache) > 0:
                raise ValueError("this modeling file has no KV cache: run the whole sequence")
        h = self.model(input_ids, attention_mask, position_ids, inputs_embeds)
        if logits_to_keep:
            h = h[:, -logits_to_keep:, :]
        if self.lm_head is None:
            logits = torch.matmul(h, self.model.embed_tokens.weight.t())
        else:
            logits = self.lm_head(h)
        logits = logits.to(compute_dtype(logits))
        loss = None
        if labels is not None:
            shifted = labels[:, 1:].reshape(-1).to(logits.device)
            loss = nn.functional.cross_entropy(
                logits[:, :-1, :].reshape(-1, logits.shape[-1]), shifted, ignore_index=-100
            )
        if return_dict is False:
            return (logits,) if loss is None else (loss, logits)
        return CausalLMOutputWithPast(loss=loss, logits=logits)

    def prepare_inputs_for_generation(self, input_ids, attention_mask=None, **kwargs):
        # no KV cache: every step runs the whole sequence so far
        return {"input_ids": input_ids, "attention_mask": attention_mask}


def _cached_tokens(cache):
    """Tokens a transformers cache object already holds (0 when it cannot say)."""
    length = getattr(cache, "get_seq_length", None)
    try:
        return int(length()) if callable(length) else 0
    except Exception:  # an empty cache of some other kind
        return 0

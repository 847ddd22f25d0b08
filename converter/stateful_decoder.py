"""The decoder written for Apple's runtimes: KV cache as model state, mask as an input.

Core ML (iOS 18 / macOS 15) keeps a model's registered buffers as `MLState`s when
they are declared `ct.StateType`; slice assignments into them become in-place
state updates. Apple's own pattern, which this follows:

    forward(input_ids [1, S] int32, causal_mask [1, 1, S, E] float) -> logits [1, vocab]

E is the number of cached tokens after the call, so the call writes positions
E-S .. E-1 and attends to 0 .. E-1: both sizes are flexible (prefill and decode
are one function) and no position tensor is needed. The mask is additive (0 =
visible, MASK_MIN = hidden); sliding-window layers add their window in the graph.

It reuses the modules of a `Decoder` (same weights, same folded norms) and keeps
the rotary tables as constants sliced by position: computing the angles in the
graph would run in float16 on Apple hardware, where position 2000 has a
resolution of 1-2 and the rotation would be wrong.
"""

from __future__ import annotations

import torch
from torch import nn

from .decoder import Decoder

MASK_MIN = -30000.0  # fits float16; exp() of it is 0, and unlike -inf it never makes inf - inf


def causal_mask(start: int, count: int) -> torch.Tensor:
    """The mask input for `count` tokens at positions start..: [1, 1, count, start + count]."""
    q = torch.arange(count).unsqueeze(1) + start
    k = torch.arange(start + count).unsqueeze(0)
    return torch.where(k <= q, 0.0, MASK_MIN).reshape(1, 1, count, start + count)


def fp16_safe_rms_norm(norm: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """x / rms(x) * w, computed on x / max|x|, which changes nothing in exact arithmetic.

    Core ML computes in float16, where x * x overflows once |x| > 256 — and SmolLM2's residual
    stream reaches ~25,000 (a few outlier channels): the plain form turns every norm after
    layer 11 into zeros. Scaled first, the squares are at most 1; eps scales with it.
    """
    s = x.abs().amax(-1, keepdim=True).clamp_min(1e-4)
    xs = x / s
    return xs * torch.rsqrt((xs * xs).mean(-1, keepdim=True) + norm.eps / s / s) * norm.weight


def _rotate_half(x: torch.Tensor, half: int) -> torch.Tensor:
    # `half` is passed as a constant: a size read off the traced tensor becomes a 1-element
    # array that coremltools cannot cast to int with numpy 2.
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


_norm = fp16_safe_rms_norm


def _embed(d, ids):
    x = d.embed_tokens(ids)
    if d.embed_scale is not None:  # Gemma rounds the scale to the activation dtype
        x = x * torch.tensor(d.embed_scale, dtype=x.dtype)
    return x


def _head(d, x):
    """[1, 1, hidden] -> logits [1, vocab]: final norm, head, Gemma's soft cap."""
    logits = d.lm_head(_norm(d.norm, x))
    if d.final_softcap is not None:
        logits = torch.tanh(logits / d.final_softcap) * d.final_softcap
    return logits.reshape(1, -1)


def _residual(block, x, attn):
    """The block's residual connections and MLP, with the fp16-safe norm (both Apple graphs)."""
    if block.sandwich:
        h = x + _norm(block.post_attention_layernorm, attn)
        return h + _norm(block.post_feedforward_layernorm, block.mlp(_norm(block.pre_feedforward_layernorm, h)))
    h = x + attn
    return h + block.mlp(_norm(block.post_attention_layernorm, h))


class StatefulDecoder(nn.Module):
    def __init__(self, decoder: Decoder):
        super().__init__()
        self.decoder = decoder
        s = decoder.shape
        self.n_rep = s.num_heads // s.num_kv_heads
        cache = (s.num_layers, 1, s.num_kv_heads, s.max_context, s.head_dim)
        self.register_buffer("key_cache", torch.zeros(cache))
        self.register_buffer("value_cache", torch.zeros(cache))

    @property
    def shape(self):
        return self.decoder.shape

    def forward(self, input_ids: torch.Tensor, causal_mask: torch.Tensor) -> torch.Tensor:
        d = self.decoder
        end = causal_mask.shape[-1]
        past = end - input_ids.shape[-1]
        x = _embed(d, input_ids)
        masks = {None: causal_mask}
        for w in {layer.self_attn.window for layer in d.layers} - {None}:
            q_pos = torch.arange(past, end).unsqueeze(1)
            k_pos = torch.arange(end).unsqueeze(0)
            masks[w] = causal_mask + torch.where(k_pos <= q_pos - w, MASK_MIN, 0.0)
        rope = {}
        for i, block in enumerate(d.layers):
            lt = block.self_attn.layer_type
            if lt not in rope:  # [S, D], broadcast over [1, heads, S, D]
                rope[lt] = (getattr(d, f"rope_cos_{lt}")[past:end], getattr(d, f"rope_sin_{lt}")[past:end])
            attn = self._attention(i, block.self_attn, _norm(block.input_layernorm, x), *rope[lt], past, end,
                                   masks[block.self_attn.window])
            x = _residual(block, x, attn)
        return _head(d, x[:, -1:, :])

    def _attention(self, i, attn, x, cos, sin, past, end, mask):
        s = self.shape
        q = attn.q_proj(x).view(1, -1, s.num_heads, s.head_dim)
        k = attn.k_proj(x).view(1, -1, s.num_kv_heads, s.head_dim)
        v = attn.v_proj(x).view(1, -1, s.num_kv_heads, s.head_dim)
        if attn.q_norm is not None:
            q, k = _norm(attn.q_norm, q), _norm(attn.k_norm, k)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # [1, heads, S, D]
        q = q * cos + _rotate_half(q, s.head_dim // 2) * sin
        k = k * cos + _rotate_half(k, s.head_dim // 2) * sin
        self.key_cache[i, :, :, past:end, :] = k
        self.value_cache[i, :, :, past:end, :] = v
        keys = self.key_cache[i, :, :, :end, :]
        values = self.value_cache[i, :, :, :end, :]
        # Grouped-query attention without repeating the cache: the n_rep query heads that share
        # a kv head become n_rep * S rows against that head (and the mask rows repeat with them).
        q = q.reshape(1, s.num_kv_heads, -1, s.head_dim) * attn.scale
        scores = q @ keys.transpose(-1, -2) + mask.repeat(1, 1, self.n_rep, 1)
        out = torch.softmax(scores.float(), dim=-1).to(q.dtype) @ values  # [1, kv, n_rep*S, D]
        out = out.reshape(1, s.num_heads, -1, s.head_dim).transpose(1, 2).reshape(1, -1, s.num_heads * s.head_dim)
        return attn.o_proj(out)

    def reset_cache(self) -> None:
        self.key_cache.zero_()
        self.value_cache.zero_()


class StepDecoder(nn.Module):
    """One token per call with static shapes, for ExecuTorch's Core ML delegate:

        forward(tokens [1, 1] int64, input_pos [1] int64) -> logits [1, vocab]

    the same method signature as the XNNPACK programs (so ExecuTorch's runners and the SDK's
    ExecuTorch engine drive it unchanged; prompts are fed one token at a time). The cache
    is one buffer per layer and kind, written at input_pos by index_put; attention runs
    over the whole cache with the causal (and window) mask built from input_pos, so no
    shape depends on the position and the Core ML partitioner takes the graph whole.
    """

    def __init__(self, decoder: Decoder):
        super().__init__()
        self.decoder = decoder
        s = decoder.shape
        self.n_rep = s.num_heads // s.num_kv_heads
        for i in range(s.num_layers):
            self.register_buffer(f"k_cache_{i}", torch.zeros(1, s.num_kv_heads, s.max_context, s.head_dim))
            self.register_buffer(f"v_cache_{i}", torch.zeros(1, s.num_kv_heads, s.max_context, s.head_dim))
        self.register_buffer("key_positions", torch.arange(s.max_context), persistent=False)

    @property
    def shape(self):
        return self.decoder.shape

    def forward(self, tokens: torch.Tensor, input_pos: torch.Tensor) -> torch.Tensor:
        d = self.decoder
        x = _embed(d, tokens)
        k_pos = self.key_positions.unsqueeze(0)  # [1, C]
        q_pos = input_pos.unsqueeze(1)  # [1, 1]
        causal = torch.where(k_pos <= q_pos, 0.0, MASK_MIN).reshape(1, 1, 1, -1)
        masks = {None: causal}
        for w in {layer.self_attn.window for layer in d.layers} - {None}:
            masks[w] = causal + torch.where(k_pos <= q_pos - w, MASK_MIN, 0.0).reshape(1, 1, 1, -1)
        rope = {}
        for i, block in enumerate(d.layers):
            lt = block.self_attn.layer_type
            if lt not in rope:
                rope[lt] = (torch.index_select(getattr(d, f"rope_cos_{lt}"), 0, input_pos),
                            torch.index_select(getattr(d, f"rope_sin_{lt}"), 0, input_pos))
            attn = self._attention(i, block.self_attn, _norm(block.input_layernorm, x), *rope[lt], input_pos,
                                   masks[block.self_attn.window])
            x = _residual(block, x, attn)
        return _head(d, x)

    def _attention(self, i, attn, x, cos, sin, input_pos, mask):
        s = self.shape
        q = attn.q_proj(x).view(1, 1, s.num_heads, s.head_dim)
        k = attn.k_proj(x).view(1, 1, s.num_kv_heads, s.head_dim)
        v = attn.v_proj(x).view(1, 1, s.num_kv_heads, s.head_dim)
        if attn.q_norm is not None:
            q, k = _norm(attn.q_norm, q), _norm(attn.k_norm, k)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # [1, heads, 1, D]
        q = q * cos + _rotate_half(q, s.head_dim // 2) * sin
        k = k * cos + _rotate_half(k, s.head_dim // 2) * sin
        k_cache, v_cache = getattr(self, f"k_cache_{i}"), getattr(self, f"v_cache_{i}")
        k_cache[:, :, input_pos] = k
        v_cache[:, :, input_pos] = v
        q = q.reshape(1, s.num_kv_heads, self.n_rep, s.head_dim) * attn.scale
        scores = q @ k_cache.transpose(-1, -2) + mask
        out = torch.softmax(scores.float(), dim=-1).to(q.dtype) @ v_cache  # [1, kv, n_rep, D]
        return attn.o_proj(out.reshape(1, 1, s.num_heads * s.head_dim))

    def reset_cache(self) -> None:
        for name, buf in self.named_buffers():
            if name.startswith(("k_cache_", "v_cache_")):
                buf.zero_()

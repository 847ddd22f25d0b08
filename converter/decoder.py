"""The exportable decoder: one small static-KV transformer for every family.

Built from an instantiated Hugging Face causal LM (its Linear/Embedding modules
are reused, not copied), written the way ExecuTorch's own Llama is: KV cache in
[batch, max_context, kv_heads, head_dim] buffers updated with
`llama::update_cache`, attention through `llama::custom_sdpa` (GQA-aware, reads
the cache only up to the current position), rotary tables precomputed by the
Hugging Face rotary module itself so every rope scaling type is exact. One
`forward(tokens, input_pos)` with a dynamic token count serves prefill (many
tokens) and decode (one); `prefill(tokens, kv_positions)` is the same model with attention
XNNPACK runs, which the ExecuTorch bundle exports as a second method for prompts.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from pocketlm.errors import UnsupportedModelError

from .families import Family, family_for_model_type


def load_custom_ops() -> None:
    """Register ExecuTorch's llama:: custom ops (eager kernels + export meta functions) and the
    out variants of its quantized_decomposed ops (the int8 KV cache's per-token quantization)."""
    import executorch.kernels.quantized  # noqa: F401
    from executorch.extension.llm.custom_ops import custom_ops  # noqa: F401


@dataclass(frozen=True)
class DecoderShape:
    family: str
    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    max_context: int
    layer_types: tuple[str, ...]
    sliding_window: int | None
    tied_embeddings: bool

    def as_dict(self) -> dict:
        d = dict(self.__dict__)
        d["layer_types"] = list(self.layer_types)
        return d


class RMSNorm(nn.Module):
    """x / rms(x) * weight, in float32; Gemma's (1 + w) is folded into weight at build time."""

    def __init__(self, weight: torch.Tensor, eps: float):
        super().__init__()
        self.weight = nn.Parameter(weight.detach().clone().float(), requires_grad=False)
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # XNNPACK delegates mean only over the two innermost dims of a 4D tensor, and reshapes only
        # with static sizes and at most one -1: view as [1, N, 1, H] and back with -1 for the token axis.
        x4 = x.reshape(1, -1, 1, x.shape[-1])
        out = x4 * torch.rsqrt((x4 * x4).mean((2, 3), keepdim=True) + self.eps) * self.weight
        return out.reshape((x.shape[0], -1) + tuple(x.shape[2:]))


def rotate_half_matrix(head_dim: int) -> torch.Tensor:
    """W with x @ W.T == cat(-x[half:], x[:half]): rotate_half as a matmul XNNPACK keeps in the delegate
    (the slices of the usual form fall out of it, splitting every layer into more delegate pieces)."""
    half = head_dim // 2
    w = torch.zeros(head_dim, head_dim)
    idx = torch.arange(half)
    w[idx, idx + half] = -1.0
    w[idx + half, idx] = 1.0
    return w


KV_CACHE_DTYPES = ("fp32", "int8")


def quantize_per_token(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """int8 values with one asymmetric scale and zero point per token and head (the last dim shares them):
    the scheme of ExecuTorch's quantized KV cache and of `llama::custom_quantized_sdpa`."""
    scales, zero_points = torch.ops.quantized_decomposed.choose_qparams_per_token_asymmetric.default(x, torch.int8)
    q = torch.ops.quantized_decomposed.quantize_per_token(x, scales, zero_points, -128, 127, torch.int8)
    return q, scales.to(torch.float32), zero_points.to(torch.int8)


class Attention(nn.Module):
    def __init__(self, hf_attn: nn.Module, family: Family, shape: DecoderShape, layer_type: str, eps: float,
                 kv_cache: str = "fp32"):
        super().__init__()
        self.q_proj, self.k_proj, self.v_proj, self.o_proj = (
            hf_attn.q_proj,
            hf_attn.k_proj,
            hf_attn.v_proj,
            hf_attn.o_proj,
        )
        self.qkv = None  # a recipe may set one module that computes q, k, v together (gguf_grid.GridLinear)
        self.n_heads, self.n_kv, self.head_dim = shape.num_heads, shape.num_kv_heads, shape.head_dim
        self.scale = float(hf_attn.scaling)
        self.layer_type = layer_type
        window = getattr(hf_attn, "sliding_window", None)
        # A window at least as long as the cache never masks anything: plain causal then.
        self.window = window if window is not None and window < shape.max_context else None
        if family.qk_norm:
            self.q_norm = RMSNorm(hf_attn.q_norm.weight + family.norm_offset, eps)
            self.k_norm = RMSNorm(hf_attn.k_norm.weight + family.norm_offset, eps)
        else:
            self.q_norm = self.k_norm = None
        self.register_buffer("rotate", rotate_half_matrix(shape.head_dim), persistent=False)
        cache_shape = (1, shape.max_context, shape.num_kv_heads, shape.head_dim)
        self.kv_int8 = kv_cache == "int8"
        if self.kv_int8:  # int8 values + a float32 scale and int8 zero point per token and kv head
            scale_shape = cache_shape[:-1] + (1,)
            for kind in ("k", "v"):
                self.register_buffer(f"{kind}_cache", torch.zeros(cache_shape, dtype=torch.int8), persistent=False)
                self.register_buffer(f"{kind}_scales", torch.ones(scale_shape), persistent=False)
                self.register_buffer(f"{kind}_zero_points", torch.zeros(scale_shape, dtype=torch.int8),
                                     persistent=False)
        else:
            self.register_buffer("k_cache", torch.zeros(cache_shape), persistent=False)
            self.register_buffer("v_cache", torch.zeros(cache_shape), persistent=False)

    def forward(self, x, cos, sin, start_pos: int, window_mask: torch.Tensor | None,
                prefill_mask: torch.Tensor | None = None):
        bsz, seqlen, _ = x.shape
        # -1 for the token axis: XNNPACK keeps a reshape in the delegate only without symbolic sizes.
        q, k, v = self.qkv(x) if self.qkv is not None else (self.q_proj(x), self.k_proj(x), self.v_proj(x))
        q = q.view(bsz, -1, self.n_heads, self.head_dim)
        k = k.view(bsz, -1, self.n_kv, self.head_dim)
        v = v.view(bsz, -1, self.n_kv, self.head_dim)
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        q = q * cos + F.linear(q, self.rotate) * sin
        k = k * cos + F.linear(k, self.rotate) * sin
        if self.kv_int8:
            return self.o_proj(self._int8_attention(q, k, v, start_pos, window_mask).reshape(
                bsz, -1, self.n_heads * self.head_dim))
        torch.ops.llama.update_cache(k, self.k_cache, start_pos)
        torch.ops.llama.update_cache(v, self.v_cache, start_pos)
        if prefill_mask is not None:
            return self.o_proj(self._gemm_attention(q, prefill_mask))
        if self.window is None:
            out = torch.ops.llama.custom_sdpa(q, self.k_cache, self.v_cache, start_pos, None, 0.0, True, self.scale)
        else:
            out = torch.ops.llama.custom_sdpa(q, self.k_cache, self.v_cache, 0, window_mask, 0.0, False, self.scale)
        return self.o_proj(out.reshape(bsz, -1, self.n_heads * self.head_dim))

    def _gemm_attention(self, q, mask):
        """Attention as two batched matmuls and a softmax, all of which XNNPACK runs (the prefill method).

        The cache is read up to the mask's key count L (a backed size: XNNPACK refuses tensors whose
        size comes from a tensor's value, as start_pos does). Each KV head's query heads are stacked
        along the token axis, so one [kv, heads/kv * S, L] product covers grouped-query attention
        without repeating keys. Views take -1 for the one dynamic size and come after contiguous()
        copies: a view whose shape names a symbol falls out of the delegate.
        """
        rep, d = self.n_heads // self.n_kv, self.head_dim
        key_len = mask.shape[-1]
        keys = self.k_cache.narrow(1, 0, key_len).permute(0, 2, 3, 1).contiguous().view(self.n_kv, d, -1)
        values = self.v_cache.narrow(1, 0, key_len).permute(0, 2, 1, 3).contiguous().view(self.n_kv, -1, d)
        q = (q * self.scale).view(1, -1, self.n_kv, rep, d).permute(0, 2, 3, 1, 4).contiguous()
        scores = torch.bmm(q.view(self.n_kv, -1, d), keys) + mask  # [kv, rep * S, L]
        out = torch.bmm(torch.softmax(scores, dim=-1), values)  # [kv, rep * S, d]
        out = out.view(1, self.n_kv, rep, -1, d).permute(0, 3, 1, 2, 4).contiguous()
        return out.view(1, -1, self.n_heads * d)

    def _int8_attention(self, q, k, v, start_pos: int, window_mask):
        """ExecuTorch's quantized KV-cache path: new keys/values are quantized per token and head
        and written with update_cache; custom_quantized_sdpa reads the int8 cache directly."""
        for kind, x in (("k", k), ("v", v)):
            values, scales, zero_points = quantize_per_token(x)
            torch.ops.llama.update_cache(values, getattr(self, f"{kind}_cache"), start_pos)
            torch.ops.llama.update_cache(scales, getattr(self, f"{kind}_scales"), start_pos)
            torch.ops.llama.update_cache(zero_points, getattr(self, f"{kind}_zero_points"), start_pos)
        q8, q_scales, q_zero_points = quantize_per_token(q)
        quant_args = (q_zero_points, q_scales, self.k_zero_points, self.k_scales, self.v_zero_points, self.v_scales)
        if self.window is None:
            return torch.ops.llama.custom_quantized_sdpa(
                q8, self.k_cache, self.v_cache, start_pos, None, 0.0, True, self.scale, *quant_args)
        return torch.ops.llama.custom_quantized_sdpa(
            q8, self.k_cache, self.v_cache, 0, window_mask, 0.0, False, self.scale, *quant_args)


def prefill_mask(positions: torch.Tensor, seqlen: int, window: int | None, repeats: int) -> torch.Tensor:
    """[repeats * S, L] additive mask for the prefill method: the chunk's queries are the last S of the
    L positions; key j is visible from query i when j <= i (and i - window < j on sliding layers).
    Repeated along the rows once per query head of a KV head (the stacking of `_gemm_attention`)."""
    q_pos = positions[positions.shape[0] - seqlen:].unsqueeze(1)
    k_pos = positions.unsqueeze(0)
    visible = k_pos <= q_pos
    if window is not None:
        visible = visible & (k_pos > q_pos - window)
    return torch.where(visible, 0.0, float("-inf")).repeat(repeats, 1)


def sliding_window_mask(start_pos: int, seqlen: int, max_context: int, window: int) -> torch.Tensor:
    """[seqlen, max_context] additive mask: key j is visible from query i when i - window < j <= i
    (the Hugging Face convention). Built once per forward and shared by every sliding layer."""
    q_pos = torch.arange(seqlen).unsqueeze(1) + start_pos
    k_pos = torch.arange(max_context).unsqueeze(0)
    visible = (k_pos <= q_pos) & (k_pos > q_pos - window)
    return torch.where(visible, 0.0, float("-inf"))


class MLP(nn.Module):
    def __init__(self, hf_mlp: nn.Module, family: Family):
        super().__init__()
        self.gate_proj, self.up_proj, self.down_proj = hf_mlp.gate_proj, hf_mlp.up_proj, hf_mlp.down_proj
        self.gate_up = None  # likewise for gate and up
        self.gelu = family.activation == "gelu_tanh"

    def forward(self, x):
        gate, up = self.gate_up(x) if self.gate_up is not None else (self.gate_proj(x), self.up_proj(x))
        gate = F.gelu(gate, approximate="tanh") if self.gelu else F.silu(gate)
        return self.down_proj(gate * up)


class Block(nn.Module):
    def __init__(self, hf_layer: nn.Module, family: Family, shape: DecoderShape, layer_type: str, eps: float,
                 kv_cache: str = "fp32"):
        super().__init__()
        off = family.norm_offset
        self.self_attn = Attention(hf_layer.self_attn, family, shape, layer_type, eps, kv_cache)
        self.mlp = MLP(hf_layer.mlp, family)
        self.input_layernorm = RMSNorm(hf_layer.input_layernorm.weight + off, eps)
        self.post_attention_layernorm = RMSNorm(hf_layer.post_attention_layernorm.weight + off, eps)
        self.sandwich = family.sandwich_norms
        if self.sandwich:
            self.pre_feedforward_layernorm = RMSNorm(hf_layer.pre_feedforward_layernorm.weight + off, eps)
            self.post_feedforward_layernorm = RMSNorm(hf_layer.post_feedforward_layernorm.weight + off, eps)

    def forward(self, x, cos, sin, start_pos: int, window_mask: torch.Tensor | None,
                prefill_mask: torch.Tensor | None = None):
        attn = self.self_attn(self.input_layernorm(x), cos, sin, start_pos, window_mask, prefill_mask)
        if self.sandwich:
            h = x + self.post_attention_layernorm(attn)
            return h + self.post_feedforward_layernorm(self.mlp(self.pre_feedforward_layernorm(h)))
        h = x + attn
        return h + self.mlp(self.post_attention_layernorm(h))


class Decoder(nn.Module):
    """forward(tokens [1, S] int64, input_pos [1] int64) -> logits [1, vocab] of the last token.

    With `all_logits=True` it returns [1, S, vocab] (evaluation and parity; not exported).
    """

    def __init__(self, hf_model: nn.Module, max_context: int, kv_cache: str = "fp32"):
        super().__init__()
        if kv_cache not in KV_CACHE_DTYPES:
            raise UnsupportedModelError(
                f"unknown KV-cache type {kv_cache!r} (choose from {', '.join(KV_CACHE_DTYPES)})")
        self.kv_cache = kv_cache
        config = hf_model.config
        text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
        self.family = family_for_model_type(text_config.model_type)
        family = self.family
        _refuse_unsupported_features(text_config)
        inner = hf_model.model
        hf_layers = inner.layers
        eps = float(text_config.rms_norm_eps)
        head_dim = getattr(text_config, "head_dim", None) or text_config.hidden_size // text_config.num_attention_heads
        layer_types = tuple(getattr(text_config, "layer_types", None) or ["full_attention"] * len(hf_layers))
        windows = {getattr(layer.self_attn, "sliding_window", None) for layer in hf_layers} - {None}
        embed = inner.embed_tokens
        lm_head = hf_model.lm_head
        self.shape = DecoderShape(
            family=family.name,
            vocab_size=int(embed.weight.shape[0]),
            hidden_size=int(text_config.hidden_size),
            num_layers=len(hf_layers),
            num_heads=int(text_config.num_attention_heads),
            num_kv_heads=int(text_config.num_key_value_heads),
            head_dim=int(head_dim),
            intermediate_size=int(text_config.intermediate_size),
            max_context=int(max_context),
            layer_types=layer_types,
            sliding_window=max(windows) if windows else None,
            tied_embeddings=lm_head.weight.data_ptr() == embed.weight.data_ptr(),
        )
        # A plain nn.Embedding without padding_idx: torchao's embedding quantization needs both.
        self.embed_tokens = nn.Embedding(embed.weight.shape[0], embed.weight.shape[1], _weight=embed.weight)
        self.embed_scale = float(text_config.hidden_size) ** 0.5 if family.scaled_embeddings else None
        self.layers = nn.ModuleList(
            Block(layer, family, self.shape, layer_types[i], eps, kv_cache) for i, layer in enumerate(hf_layers)
        )
        self.norm = RMSNorm(inner.norm.weight + family.norm_offset, eps)
        self.lm_head = lm_head
        self.final_softcap = getattr(text_config, "final_logit_softcapping", None)
        for layer_type in sorted(set(layer_types)):
            cos, sin = _rotary_tables(inner.rotary_emb, layer_type, max_context, head_dim)
            self.register_buffer(f"rope_cos_{layer_type}", cos, persistent=False)
            self.register_buffer(f"rope_sin_{layer_type}", sin, persistent=False)
        self.all_logits = False

    def forward(self, tokens: torch.Tensor, input_pos: torch.Tensor) -> torch.Tensor:
        seqlen = tokens.shape[1]
        start_pos = input_pos[0].item()
        torch._check(start_pos >= 0)
        torch._check(start_pos < self.shape.max_context)
        torch._check(start_pos + seqlen <= self.shape.max_context)
        windows = {layer.self_attn.window for layer in self.layers} - {None}
        masks = {w: sliding_window_mask(start_pos, seqlen, self.shape.max_context, w) for w in windows}
        return self._run(tokens, start_pos, masks)

    def prefill(self, tokens: torch.Tensor, kv_positions: torch.Tensor) -> torch.Tensor:
        """The prefill method: forward(tokens, [L - S]) with attention XNNPACK runs (`_gemm_attention`).

        kv_positions is arange(L), L = the cached tokens + S: its length (a shape, not a value) tells
        where the chunk starts. `llama::custom_sdpa` spends most of a long prompt's time in a scalar
        softmax; this method does the same arithmetic in XNNPACK's batched GEMM and vectorized softmax
        (2x faster at 512 tokens), at the cost of copying the cache's first L rows once per layer —
        nothing for a prompt, too much for every decoded token, so decode keeps `forward`.
        """
        if self.kv_cache != "fp32":
            raise UnsupportedModelError("the prefill method reads a float cache; the int8 cache has no such path")
        seqlen, key_len = tokens.shape[1], kv_positions.shape[0]
        torch._check(key_len >= seqlen)
        torch._check(key_len <= self.shape.max_context)
        start_pos = key_len - seqlen
        repeats = self.shape.num_heads // self.shape.num_kv_heads
        positions = torch.arange(key_len)
        windows = {layer.self_attn.window for layer in self.layers}
        masks = {w: prefill_mask(positions, seqlen, w, repeats) for w in windows}
        return self._run(tokens, start_pos, {}, masks)

    def _run(self, tokens, start_pos, window_masks: dict, prefill_masks: dict | None = None) -> torch.Tensor:
        seqlen = tokens.shape[1]
        x = self.embed_tokens(tokens)
        if self.embed_scale is not None:
            # Gemma rounds the scale to the activation dtype before multiplying.
            x = x * torch.tensor(self.embed_scale, dtype=x.dtype)
        rope = {}
        for layer in self.layers:
            lt, window = layer.self_attn.layer_type, layer.self_attn.window
            if lt not in rope:
                cos = getattr(self, f"rope_cos_{lt}").narrow(0, start_pos, seqlen)
                sin = getattr(self, f"rope_sin_{lt}").narrow(0, start_pos, seqlen)
                rope[lt] = (cos.unsqueeze(1), sin.unsqueeze(1))  # [S, 1, D] broadcasts over heads
            x = layer(x, *rope[lt], start_pos, window_masks.get(window),
                      prefill_masks[window] if prefill_masks is not None else None)
        if not self.all_logits:
            x = x[:, -1, :]
        logits = self.lm_head(self.norm(x))
        if self.final_softcap is not None:
            logits = torch.tanh(logits / self.final_softcap) * self.final_softcap
        return logits

    def reset_cache(self) -> None:
        for layer in self.layers:
            layer.self_attn.k_cache.zero_()
            layer.self_attn.v_cache.zero_()

    def kv_cache_bytes(self) -> int:
        """Bytes the KV cache takes in the program (values, and scales and zero points when int8)."""
        return sum(b.numel() * b.element_size() for name, b in self.named_buffers()
                   if name.rsplit(".", 1)[-1].startswith(("k_", "v_")))


def _refuse_unsupported_features(config) -> None:
    if getattr(config, "attn_logit_softcapping", None):
        raise UnsupportedModelError("attention logit soft-capping is not supported by the ExecuTorch SDPA op")
    if getattr(config, "use_bidirectional_attention", False):
        raise UnsupportedModelError("bidirectional attention models are not causal LMs; refusing to export")
    bias = getattr(config, "mlp_bias", False)
    if bias:
        raise UnsupportedModelError("MLP biases are not supported")


def _rotary_tables(rotary: nn.Module, layer_type: str, max_context: int, head_dim: int):
    """cos/sin [max_context, head_dim] from the Hugging Face rotary module (covers every rope type)."""
    positions = torch.arange(max_context).unsqueeze(0)
    probe = torch.zeros(1, dtype=torch.float32)
    params = inspect.signature(rotary.forward).parameters
    with torch.no_grad():
        if "layer_type" in params:
            cos, sin = rotary(probe, positions, layer_type=layer_type)
        else:
            cos, sin = rotary(probe, positions)
    cos, sin = cos[0].float(), sin[0].float()
    if cos.shape != (max_context, head_dim):
        raise UnsupportedModelError(
            f"unexpected rotary table shape {tuple(cos.shape)}; partial rotary is not supported"
        )
    return cos.contiguous(), sin.contiguous()

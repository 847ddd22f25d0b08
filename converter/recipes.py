"""Compression recipes: a recipe is config objects; a handler registered per config type
applies it (the torchao pattern). Adding a scheme is adding a config and a handler.

Linear schemes
  8da4w  int8 dynamic activations, int4 group-wise symmetric weights (XNNPACK QD8-F32-QB4W)
  8da8w  int8 dynamic activations, int8 per-channel weights          (XNNPACK QD8-F32-QC8W)
  int8   int8 per-channel weights only, activations stay float
  8da4w-hqq  8da4w whose group scales are chosen by HQQ (half-quadratic optimization of the
         rounding error, torchao's scale-only variant) instead of max-abs: the same grid and
         kernels, a closer fit (needs no data)
  gguf   a GGUF source's own blocks, not requantized (gguf_grid.py): Q4_0 / Q4_1 linears on
         8da4w's kernel with the file's codes (Q4_1's minimum as a small int8 term), Q8_0 / Q4_0
         embeddings as they are; a Q8_0 linear (a tied head) becomes 8da8w
Embedding schemes: int8 per row, int4 group-wise (ExecuTorch's quantized embedding kernels).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from pocketlm.errors import RecipeError


@dataclass(frozen=True)
class LinearQuant:
    scheme: str
    weight_bits: int
    group_size: int  # 0 = one scale per output channel
    dynamic_activations: bool
    qparams: str = "affine"  # how group scales are chosen: "affine" (max-abs) or "hqq"


@dataclass(frozen=True)
class GGUFGridQuant:
    """Keep the GGUF source's grid: linears and embeddings both (one handler, as they share a file)."""

    scheme: str = "gguf"
    weight_bits: int = 4
    group_size: int = 32  # GGUF's block
    dynamic_activations: bool = True
    q8_0_linears: str = "8da8w"  # requantized per channel: XNNPACK has no blockwise int8 GEMM


@dataclass(frozen=True)
class EmbeddingQuant:
    bits: int
    group_size: int  # 0 = one scale per row


@dataclass(frozen=True)
class Recipe:
    name: str
    linear: LinearQuant | GGUFGridQuant | None
    embedding: EmbeddingQuant | None

    @property
    def needs_gguf_source(self) -> bool:
        return isinstance(self.linear, GGUFGridQuant)

    def describe(self) -> dict:
        return {
            "recipe": self.name,
            "linear": asdict(self.linear) if self.linear else None,
            "embedding": asdict(self.embedding) if self.embedding else None,
        }


@dataclass
class QuantResult:
    quantized: list[str]
    skipped: list[dict]


LINEAR_SCHEMES = {
    "fp32": None,
    "8da4w": lambda g: LinearQuant("8da4w", 4, g, True),
    "8da4w-hqq": lambda g: LinearQuant("8da4w", 4, g, True, qparams="hqq"),
    "8da8w": lambda g: LinearQuant("8da8w", 8, 0, True),
    "int8": lambda g: LinearQuant("int8", 8, 0, False),
}
EMBEDDING_SCHEMES = {
    "none": None,
    "int8": lambda g: EmbeddingQuant(8, 0),
    "int4": lambda g: EmbeddingQuant(4, g),
}
RECIPE_NAMES = (*LINEAR_SCHEMES, "gguf")


def build_recipe(quant: str, group_size: int = 32, embedding: str | None = None) -> Recipe:
    """`embedding=None` picks the default: int8 embeddings for quantized recipes, none for fp32."""
    if quant == "gguf":
        if embedding is not None:
            raise RecipeError("--quant gguf stores the embedding as the GGUF file does; drop --embedding-quant")
        if group_size != 32:
            raise RecipeError(f"--quant gguf keeps the file's blocks of 32 weights; drop --group-size {group_size}")
        return Recipe("gguf", GGUFGridQuant(), None)
    if quant not in LINEAR_SCHEMES:
        raise RecipeError(f"unknown quantization {quant!r} (choose from {', '.join(RECIPE_NAMES)})")
    if group_size < 0 or (group_size and group_size % 2):
        raise RecipeError(f"group size must be a positive even number, got {group_size}")
    default_embedding = "none" if quant == "fp32" else "int8"
    embedding = embedding or default_embedding
    if embedding not in EMBEDDING_SCHEMES:
        raise RecipeError(f"unknown embedding quantization {embedding!r} (choose from {', '.join(EMBEDDING_SCHEMES)})")
    linear = LINEAR_SCHEMES[quant]
    emb = EMBEDDING_SCHEMES[embedding]
    name = f"{quant}-g{group_size}" if quant.startswith("8da4w") else quant
    if embedding != default_embedding:
        name += f"+emb-{embedding}"
    return Recipe(name, linear(group_size) if linear else None, emb(group_size) if emb else None)


class Int8WeightOnlyLinear(nn.Module):
    """int8 weights with one scale per output channel; the activation stays float.

    ExecuTorch's own weight-only int8 form (cast, matmul, scale). XNNPACK 1.5.1 has no
    float-activation int8-weight GEMM that lowers correctly from torchao's form, so this
    linear runs on the portable kernels: small on disk, not fast (use 8da8w for speed).
    """

    def __init__(self, linear: nn.Linear):
        super().__init__()
        from torchao.quantization import IntxWeightOnlyConfig, quantize_
        from torchao.quantization.granularity import PerAxis

        tmp = nn.Linear(linear.in_features, linear.out_features, bias=False)
        tmp.weight = nn.Parameter(linear.weight.detach().clone(), requires_grad=False)
        quantize_(tmp, IntxWeightOnlyConfig(weight_dtype=torch.int8, granularity=PerAxis(0)))
        self.register_buffer("weight_int8", tmp.weight.qdata.to(torch.int8).contiguous())
        self.register_buffer("scales", tmp.weight.scale.reshape(-1).float().contiguous())
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone(), requires_grad=False)

    def forward(self, x):
        y = nn.functional.linear(x, self.weight_int8.to(x.dtype)) * self.scales
        return y if self.bias is None else y + self.bias


def dynamic_activation_config(cfg: LinearQuant):
    """torchao's config for an 8da* scheme: what convert applies, and what QAT derives its fake
    quantizers from (distill.qat_base_config)."""
    from torchao.quantization import Int8DynamicActivationIntxWeightConfig
    from torchao.quantization.granularity import PerAxis, PerGroup
    from torchao.quantization.quantize_.workflows.intx.intx_choose_qparams_algorithm import (
        IntxChooseQParamsAlgorithm,
    )

    return Int8DynamicActivationIntxWeightConfig(
        weight_dtype=torch.int4 if cfg.weight_bits == 4 else torch.int8,
        weight_granularity=PerGroup(cfg.group_size) if cfg.group_size else PerAxis(0),
        intx_choose_qparams_algorithm=IntxChooseQParamsAlgorithm(
            "hqq_scale_only" if cfg.qparams == "hqq" else "affine"),
    )


def _suggest_group_sizes(widths: set[int]) -> str:
    ok = [g for g in (32, 64, 128, 256) if all(w % g == 0 for w in widths)]
    return ", ".join(map(str, ok)) or "none of 32/64/128/256"


def _replace_module(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, new)


def _apply_linear(model: nn.Module, cfg: LinearQuant, allow_skip: bool) -> QuantResult:
    linears = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    skipped = []
    if cfg.group_size:
        skipped = [
            {"name": n, "reason": f"input width {m.in_features} is not divisible by group size {cfg.group_size}"}
            for n, m in linears
            if m.in_features % cfg.group_size
        ]
        if skipped and not allow_skip:
            widths = {m.in_features for _, m in linears}
            names = ", ".join(s["name"] for s in skipped[:4]) + (" …" if len(skipped) > 4 else "")
            raise RecipeError(
                f"group size {cfg.group_size} does not divide the input width of {len(skipped)} linear layers "
                f"({names}); group sizes that fit every layer: {_suggest_group_sizes(widths)} "
                "(or pass --allow-skip to keep those layers in float, listed in the manifest)"
            )
    skip_names = {s["name"] for s in skipped}
    targets = [n for n, _ in linears if n not in skip_names]
    if cfg.dynamic_activations:
        from torchao.quantization import quantize_

        config = dynamic_activation_config(cfg)
        wanted = set(targets)
        quantize_(model, config, filter_fn=lambda m, fqn: isinstance(m, nn.Linear) and fqn in wanted)
    else:
        for name in targets:
            _replace_module(model, name, Int8WeightOnlyLinear(model.get_submodule(name)))
    return QuantResult(targets, skipped)


def _apply_embedding(model: nn.Module, cfg: EmbeddingQuant, allow_skip: bool) -> QuantResult:
    from torchao.quantization import IntxWeightOnlyConfig, quantize_
    from torchao.quantization.granularity import PerAxis, PerGroup

    embeddings = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Embedding)]
    bad = [n for n, m in embeddings if cfg.group_size and m.embedding_dim % cfg.group_size]
    if bad:
        raise RecipeError(f"embedding group size {cfg.group_size} does not divide the width of {', '.join(bad)}")
    config = IntxWeightOnlyConfig(
        weight_dtype=torch.int8 if cfg.bits == 8 else torch.int4,
        granularity=PerGroup(cfg.group_size) if cfg.group_size else PerAxis(0),
    )
    quantize_(model, config, filter_fn=lambda m, fqn: isinstance(m, nn.Embedding))
    return QuantResult([n for n, _ in embeddings], [])


def _apply_gguf_grid(model: nn.Module, cfg: GGUFGridQuant, allow_skip: bool, gguf_source=None) -> QuantResult:
    from . import gguf_grid

    path, hf_model = gguf_source or (None, None)
    gguf_grid.require_gguf(path)
    grids = gguf_grid.read_grid(path, hf_model)
    # by storage: the decoder shares the Hugging Face model's tensors (a tied head: the embedding's)
    hf_name = {p.data_ptr(): n for n, p in hf_model.named_parameters(remove_duplicate=False) if n in grids}
    modules = [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Embedding))]
    grid_of = {n: grids.get(hf_name.get(m.weight.data_ptr())) for n, m in modules}
    missing = [n for n, g in grid_of.items() if g is None]
    if missing:
        where = Path(path).name if path else "the source"
        raise RecipeError(
            f"--quant gguf: {len(missing)} weight(s) of {where} are not in a block format ExecuTorch "
            f"holds unchanged ({', '.join(gguf_grid.SUPPORTED)}): {', '.join(missing[:4])}")
    # linears that read one input become one module that computes their block sums once (GridLinear)
    groups = {"self_attn": ("qkv", ("q_proj", "k_proj", "v_proj")), "mlp": ("gate_up", ("gate_proj", "up_proj"))}
    grouped = set()
    for name, module in list(model.named_modules()):
        kind = groups.get(name.rpartition(".")[2])
        if kind is None or getattr(module, kind[0], "absent") is not None:
            continue
        parts = [f"{name}.{child}" for child in kind[1]]
        if all(p in grid_of and grid_of[p].gguf_type.startswith("Q4") for p in parts):
            setattr(module, kind[0], gguf_grid.GridLinear([model.get_submodule(p) for p in parts],
                                                          [grid_of[p] for p in parts]))
            for child in kind[1]:
                setattr(module, child, None)
            grouped.update(parts)
    per_channel = []
    for name, module in modules:
        g = grid_of[name]
        if name in grouped:
            continue
        if isinstance(module, nn.Embedding):
            module.weight = nn.Parameter(gguf_grid.grid_embedding_weight(g), requires_grad=False)
        elif g.gguf_type.startswith("Q4"):
            _replace_module(model, name, gguf_grid.GridLinear([module], [g]))
        else:
            per_channel.append(name)
    if per_channel:
        from torchao.quantization import quantize_

        wanted = set(per_channel)
        quantize_(model, dynamic_activation_config(LINEAR_SCHEMES["8da8w"](0)),
                  filter_fn=lambda m, fqn: isinstance(m, nn.Linear) and fqn in wanted)
    return QuantResult([n for n, _ in modules], [])


HANDLERS = {LinearQuant: _apply_linear, EmbeddingQuant: _apply_embedding, GGUFGridQuant: _apply_gguf_grid}


@torch.no_grad()
def apply_recipe(model: nn.Module, recipe: Recipe, allow_skip: bool = False, gguf_source=None) -> QuantResult:
    """Quantize `model` in place as `recipe` says; returns the layers quantized and skipped.
    `gguf_source` (path, Hugging Face model): the file --quant gguf reads its blocks from."""
    result = QuantResult([], [])
    for cfg in (recipe.embedding, recipe.linear):
        if cfg is None:
            continue
        extra = {"gguf_source": gguf_source} if isinstance(cfg, GGUFGridQuant) else {}
        part = HANDLERS[type(cfg)](model, cfg, allow_skip, **extra)
        result.quantized += part.quantized
        result.skipped += part.skipped
    return result

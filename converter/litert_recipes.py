"""Quantization recipes for the LiteRT target, applied to the float .tflite by ai-edge-quantizer.

  fp32      no quantization
  fp16      weights stored as float16 (computed in float32)
  int8      dynamic range: int8 per-channel weights, activations quantized on the fly
  int8-wo   weight-only int8 per-channel: dequantized before the op, float compute
  int4      dynamic range: int4 block-wise weights (block = --group-size, 32 or 64) in every
            linear layer and the embedding table
  mixed     int4 block-wise in the transformer blocks, int8 per-channel for the embedding
            table and the output head (the layers 4 bits hurt most)

A rule is (layer kind, bits, granularity, mode); the kinds are matched by ops' output
tensor names, which litert-torch derives from the module path (`…DecoderLayer_<i>/…`).
After quantizing, the program is read back and every claimed rule is checked against
the weights actually stored (`check_applied`), so a rule that matched nothing fails.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from pocketlm.errors import RecipeError

BLOCK_SIZES = (32, 64)
# Ops inside a transformer block carry the block's module path in their output tensor names.
_IN_BLOCK = r"DecoderLayer_[0-9]+/"
BLOCK_REGEX = rf".*{_IN_BLOCK}.*"
OUTSIDE_BLOCKS_REGEX = rf"^(?!.*{_IN_BLOCK}).*$"


@dataclass(frozen=True)
class Rule:
    kind: str  # "blocks" (transformer blocks), "embedding", "head" (lm_head), "all"
    bits: int  # 4, 8 or 16 (float16)
    granularity: str  # "channel" or "block<N>"
    mode: str  # "dynamic", "weight-only" or "float16"

    @property
    def block_size(self) -> int:
        """Elements per scale for block-wise rules; 0 for per-channel / per-tensor ones."""
        return int(self.granularity.removeprefix("block")) if self.granularity.startswith("block") else 0


@dataclass(frozen=True)
class LiteRTRecipe:
    name: str
    rules: tuple[Rule, ...]

    def describe(self) -> dict:
        return {"recipe": self.name, "tool": "ai-edge-quantizer", "rules": [asdict(r) for r in self.rules]}


RECIPE_NAMES = ("fp32", "fp16", "int8", "int8-wo", "int4", "mixed")


def build_recipe(quant: str, group_size: int = 32, embedding: str | None = None) -> LiteRTRecipe:
    if quant not in RECIPE_NAMES:
        raise RecipeError(f"unknown LiteRT quantization {quant!r} (choose from {', '.join(RECIPE_NAMES)})")
    if embedding is not None:
        raise RecipeError("--embedding-quant applies to ExecuTorch; LiteRT recipes set the embedding table "
                          "themselves (use --quant mixed for int8 embeddings with int4 blocks)")
    block = f"block{group_size}"
    if quant in ("int4", "mixed") and group_size not in BLOCK_SIZES:
        raise RecipeError(f"LiteRT int4 block size must be one of {', '.join(map(str, BLOCK_SIZES))}, got {group_size}")
    rules = {
        "fp32": (),
        "fp16": (Rule("all", 16, "tensor", "float16"),),
        "int8": (Rule("all", 8, "channel", "dynamic"),),
        "int8-wo": (Rule("all", 8, "channel", "weight-only"),),
        "int4": (Rule("all", 4, block, "dynamic"),),
        "mixed": (
            Rule("blocks", 4, block, "dynamic"),
            Rule("embedding", 8, "channel", "dynamic"),
            Rule("head", 8, "channel", "dynamic"),
        ),
    }[quant]
    name = f"{quant}-g{group_size}" if quant in ("int4", "mixed") else quant
    return LiteRTRecipe(name, rules)


def check_block_size(recipe: LiteRTRecipe, widths: dict[str, int]) -> None:
    """Refuse, by layer name, a block size that does not divide a quantized layer's input width."""
    for rule in recipe.rules:
        block = rule.block_size
        if not block:
            continue
        bad = sorted(name for name, width in widths.items() if width % block and _rule_covers(rule, name))
        if bad:
            names = ", ".join(bad[:4]) + (" …" if len(bad) > 4 else "")
            ok = [b for b in BLOCK_SIZES if all(w % b == 0 for w in widths.values())]
            raise RecipeError(
                f"block size {block} does not divide the input width of {len(bad)} layers ({names}); "
                f"block sizes that fit: {', '.join(map(str, ok)) or 'none of ' + '/'.join(map(str, BLOCK_SIZES))}"
            )


def check_no_zero_blocks(recipe: LiteRTRecipe, weights: dict[str, object]) -> None:
    """Refuse block-wise rules over weights with an all-zero block: ai-edge-quantizer 0.10 stores
    block scales in float16, its 1e-9 floor underflows to 0 there, the block quantizes to NaN and
    XNNPACK then refuses the program ("failed to create XNNPACK Value"). `weights` maps Hugging
    Face module names to 2-D weight tensors."""
    for rule in recipe.rules:
        block = rule.block_size
        if not block:
            continue
        bad = []
        for name, w in weights.items():
            if not _rule_covers(rule, name) or w.shape[-1] % block:
                continue
            zero = int((w.detach().reshape(w.shape[0], -1, block).abs().amax(-1) == 0).sum())
            if zero:
                bad.append(f"{name} ({zero})")
        if bad:
            raise RecipeError(
                f"{recipe.name}: all-zero {block}-blocks in {', '.join(bad[:4])}; ai-edge-quantizer's float16 "
                "block scale underflows to 0 on them and the program would not load. Use int8 or int8-wo"
            )


def _rule_covers(rule: Rule, layer_name: str) -> bool:
    """`layer_name` is a Hugging Face module name (model.layers.3.mlp.down_proj, lm_head, model.embed_tokens)."""
    if rule.kind == "all":
        return True
    if rule.kind == "blocks":
        return ".layers." in f".{layer_name}"
    if rule.kind == "embedding":
        return layer_name.endswith("embed_tokens")
    return layer_name == "lm_head"


def quantizer_recipe(recipe: LiteRTRecipe) -> list:
    """The ai-edge-quantizer recipe (a list of per-regex op configs) for `recipe`."""
    from ai_edge_quantizer import qtyping, recipe_manager
    from ai_edge_quantizer.algorithm_manager import AlgorithmName

    op = qtyping.TFLOperationName
    manager = recipe_manager.RecipeManager()
    for rule in recipe.rules:
        granularity = (
            qtyping.QuantGranularity[f"BLOCKWISE_{rule.block_size}"]
            if rule.block_size
            else qtyping.QuantGranularity.CHANNELWISE
        )
        targets = {
            "all": [(".*", op.ALL_SUPPORTED)],
            "blocks": [(BLOCK_REGEX, op.FULLY_CONNECTED)],
            "embedding": [(".*", op.EMBEDDING_LOOKUP)],
            # The output head is the one fully connected layer outside the blocks.
            "head": [(OUTSIDE_BLOCKS_REGEX, op.FULLY_CONNECTED)],
        }[rule.kind]
        for regex, op_name in targets:
            if rule.mode == "float16":
                manager.add_weight_only_config(regex, op_name, 16, algorithm_key=AlgorithmName.FLOAT_CASTING)
            elif rule.mode == "weight-only":
                manager.add_weight_only_config(regex, op_name, rule.bits, granularity)
            else:
                manager.add_dynamic_config(regex, op_name, rule.bits, granularity)
    return manager.get_quantization_recipe()

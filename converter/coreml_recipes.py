"""Core ML compression recipes: coremltools.optimize.coreml steps applied to the converted ML program.

A recipe is a tuple of steps; each step is a config object and a handler registered for
its type applies it (the torchao pattern, as in recipes.py). Every step compresses
exactly the model's weights — the linear layers and the embedding table (one constant
when the head is tied) — and nothing else: the rotary tables, norms and biases are
named and excluded, and `backends/coreml.check_applied` then proves from the saved
program that each weight carries the compression the recipe claims.

  fp16                float16 weights (the conversion itself)
  int8                int8 per output channel, linear symmetric
  int4-block          int4 per block of --group-size input channels (default 32)
  palettize4/6/8      k-means lookup tables of 2^n float16 values, one per group of
                      --group-size output channels
  prune50             magnitude pruning to 50% zeros, stored sparse
  prune50+palettize4  both: the surviving values palettized (joint compression)
  gguf                a GGUF source's own blocks (Q4_0, Q4_1, Q8_0) stored unchanged as
                      blockwise uint4 / int8 weights (gguf_grid.py): no second rounding
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from pocketlm.errors import RecipeError


@dataclass(frozen=True)
class Quantize:
    bits: int
    granularity: str  # "per_channel" | "per_block"
    block_size: int = 0


@dataclass(frozen=True)
class Palettize:
    bits: int
    group_size: int  # output channels that share one lookup table


@dataclass(frozen=True)
class Prune:
    sparsity: float


@dataclass(frozen=True)
class KeepGGUF:
    """Store each weight in the GGUF source's own block grid (applied by backends/coreml.py)."""


@dataclass(frozen=True)
class CoreMLRecipe:
    name: str
    steps: tuple
    embedding: Quantize | None = None  # a different treatment for the embedding / tied head
    keep_embedding_fp16: bool = False

    # Attributes convert.py reads off every recipe (the XNNPACK recipes have these too).
    linear = None

    @property
    def needs_gguf_source(self) -> bool:
        return any(isinstance(s, KeepGGUF) for s in self.steps)

    def describe(self) -> dict:
        return {
            "recipe": self.name,
            "steps": [{"kind": type(s).__name__.lower(), **asdict(s)} for s in self.steps],
            # None: the embedding (and a tied head) is compressed like every other weight
            "embedding": {"storage": "float16"} if self.keep_embedding_fp16 else (
                asdict(self.embedding) if self.embedding else None),
        }


def _recipes(g: int) -> dict[str, tuple]:
    return {
        "fp16": (),
        "int8": (Quantize(8, "per_channel"),),
        "int4-block": (Quantize(4, "per_block", g),),
        "palettize4": (Palettize(4, g),),
        "palettize6": (Palettize(6, g),),
        "palettize8": (Palettize(8, g),),
        "prune50": (Prune(0.5),),
        "prune50+palettize4": (Prune(0.5), Palettize(4, g)),
        "gguf": (KeepGGUF(),),
    }


RECIPE_NAMES = tuple(_recipes(32))
EMBEDDING_CHOICES = ("none", "int8")


def build_recipe(quant: str, group_size: int = 32, embedding: str | None = None) -> CoreMLRecipe:
    if quant not in RECIPE_NAMES:
        raise RecipeError(f"unknown Core ML recipe {quant!r} (choose from {', '.join(RECIPE_NAMES)})")
    if group_size not in (8, 16, 32, 64, 128):
        raise RecipeError(f"--group-size for Core ML must be 8, 16, 32, 64 or 128, got {group_size}")
    if embedding is not None and embedding not in EMBEDDING_CHOICES:
        raise RecipeError(
            f"--embedding-quant {embedding} is not available for Core ML (choose from {', '.join(EMBEDDING_CHOICES)}: "
            "none keeps the embedding and tied head in float16, int8 quantizes them per row)"
        )
    steps = _recipes(group_size)[quant]
    if quant == "gguf" and embedding is not None:
        raise RecipeError("--quant gguf stores the embedding as the GGUF file does; drop --embedding-quant")
    name = quant
    if any(isinstance(s, Quantize) and s.granularity == "per_block" or isinstance(s, Palettize) for s in steps) \
            and group_size != 32:
        name += f"-g{group_size}"
    if embedding and steps:
        name += f"+emb-{embedding}"
    elif embedding:
        raise RecipeError("--embedding-quant needs a compressing recipe (fp16 compresses nothing)")
    return CoreMLRecipe(
        name=name,
        steps=steps,
        embedding=Quantize(8, "per_channel") if embedding == "int8" else None,
        keep_embedding_fp16=embedding == "none",
    )


def _quantize(model, step: Quantize, op_configs: dict, joint: bool):
    import coremltools.optimize.coreml as cto

    cfg = cto.OpLinearQuantizerConfig(
        mode="linear_symmetric", dtype=f"int{step.bits}", granularity=step.granularity,
        block_size=step.block_size or None, weight_threshold=0,
    )
    return cto.linear_quantize_weights(model, cto.OptimizationConfig(global_config=cfg, op_name_configs=op_configs),
                                       joint_compression=joint)


def _palettize(model, step: Palettize, op_configs: dict, joint: bool):
    import coremltools.optimize.coreml as cto

    cfg = cto.OpPalettizerConfig(
        nbits=step.bits, mode="kmeans", granularity="per_grouped_channel", group_size=step.group_size,
        weight_threshold=0,
    )
    return cto.palettize_weights(model, cto.OptimizationConfig(global_config=cfg, op_name_configs=op_configs),
                                 joint_compression=joint)


def _prune(model, step: Prune, op_configs: dict, joint: bool):
    import coremltools.optimize.coreml as cto

    cfg = cto.OpMagnitudePrunerConfig(target_sparsity=step.sparsity, weight_threshold=0)
    return cto.prune_weights(model, cto.OptimizationConfig(global_config=cfg, op_name_configs=op_configs))


HANDLERS = {Quantize: _quantize, Palettize: _palettize, Prune: _prune}


def apply_steps(model, recipe: CoreMLRecipe, excluded: list[str], embedding_consts: list[str], all_weights: list[str]):
    """Run the recipe's steps on an MLModel; `excluded` constants stay float16.

    An embedding treatment of its own (kept float16, or int8) takes the embedding out of the
    steps; int8 is a first pass that quantizes only the embedding.
    """
    off = dict.fromkeys(excluded)
    if recipe.keep_embedding_fp16 or recipe.embedding is not None:
        off.update(dict.fromkeys(embedding_consts))
    if recipe.embedding is not None:
        others = dict.fromkeys(n for n in all_weights if n not in embedding_consts)
        model = _quantize(model, recipe.embedding, {**dict.fromkeys(excluded), **others}, joint=False)
    for i, step in enumerate(recipe.steps):
        model = HANDLERS[type(step)](model, step, off, joint=i > 0)
    return model


def expected_storage(recipe: CoreMLRecipe, is_embedding: bool) -> tuple:
    """(storage, bits, block_size, lut_group_size, sparsity) a weight must have after the recipe,
    in coreml_program.WeightInfo's terms."""
    if is_embedding and recipe.keep_embedding_fp16:
        return ("float16", 16, None, None, None)
    if is_embedding and recipe.embedding is not None:
        return (f"int{recipe.embedding.bits}", recipe.embedding.bits, None, None, None)
    kinds = {type(s): s for s in recipe.steps}
    prune, pal, quant = kinds.get(Prune), kinds.get(Palettize), kinds.get(Quantize)
    if prune and pal:
        return ("sparse+palettized", pal.bits, None, pal.group_size, prune.sparsity)
    if prune:
        return ("sparse", 16, None, None, prune.sparsity)
    if pal:
        return ("palettized", pal.bits, None, pal.group_size, None)
    if quant:
        return (f"int{quant.bits}", quant.bits, quant.block_size or None, None, None)
    return ("float16", 16, None, None, None)

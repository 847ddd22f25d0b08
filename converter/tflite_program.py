"""Read a .tflite flatbuffer (with ai_edge_litert's schema) and say what it holds: ops per
signature, composite ops, and the stored type of every linear/embedding weight.

Used by the conversion report and to check that a quantization recipe did what it claims.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from pocketlm.errors import RecipeError

from .litert_recipes import BLOCK_REGEX, LiteRTRecipe, Rule

_WEIGHT_OPS = {"FULLY_CONNECTED": 1, "EMBEDDING_LOOKUP": 1}  # op -> index of its weight input
_BLOCK = re.compile(BLOCK_REGEX)


@dataclass(frozen=True)
class Weight:
    kind: str  # blocks | embedding | head
    layer: str  # the op's output tensor name, shortened
    dtype: str  # FLOAT32, FLOAT16, INT8, INT4
    block_size: int  # 0 = per channel / per tensor
    shape: tuple[int, ...]


@dataclass
class ProgramSummary:
    ops: dict[str, dict[str, int]]  # signature -> op name -> count
    helper_subgraphs: int  # subgraphs that are not signatures (control-flow bodies)
    weights: list[Weight]  # from the decode signature: every weight the model has, once

    def weight_types(self) -> dict[str, dict[str, int]]:
        out: dict[str, Counter] = {}
        for w in self.weights:
            label = w.dtype + (f"/block{w.block_size}" if w.block_size else "")
            out.setdefault(w.kind, Counter())[label] += 1
        return {k: dict(v) for k, v in sorted(out.items())}

    def composite_ops(self) -> int:
        return sum(n for counts in self.ops.values() for op, n in counts.items() if op == "STABLEHLO_COMPOSITE")


def read_program(path: Path) -> ProgramSummary:
    from ai_edge_litert import schema_py_generated as schema

    data = Path(path).read_bytes()
    model = schema.Model.GetRootAsModel(data, 0)
    op_names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}

    def op_name(op) -> str:
        code = model.OperatorCodes(op.OpcodeIndex())
        return op_names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "CUSTOM")

    type_names = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    signature_of = {}
    for i in range(model.SignatureDefsLength()):
        sig = model.SignatureDefs(i)
        signature_of[sig.SubgraphIndex()] = sig.SignatureKey().decode()
    ops: dict[str, dict[str, int]] = {}
    helpers = 0
    weights: list[Weight] = []
    for gi in range(model.SubgraphsLength()):
        graph = model.Subgraphs(gi)
        if gi not in signature_of:
            helpers += 1
            continue
        name = signature_of[gi]
        counts: Counter = Counter()
        producer = {}
        for oi in range(graph.OperatorsLength()):
            op = graph.Operators(oi)
            for k in range(op.OutputsLength()):
                producer[op.Outputs(k)] = op
        for oi in range(graph.OperatorsLength()):
            op = graph.Operators(oi)
            kind_of_op = op_name(op)
            counts[kind_of_op] += 1
            if name != "decode" or kind_of_op not in _WEIGHT_OPS:
                continue
            index = op.Inputs(_WEIGHT_OPS[kind_of_op])
            source = producer.get(index)
            # Weight-only recipes store the weight quantized and dequantize it in front of the op.
            if source is not None and op_name(source) == "DEQUANTIZE":
                index = source.Inputs(0)
            tensor = graph.Tensors(index)
            out_name = graph.Tensors(op.Outputs(0)).Name().decode(errors="replace")
            kind = "embedding" if kind_of_op == "EMBEDDING_LOOKUP" else "blocks" if _BLOCK.match(out_name) else "head"
            q = tensor.Quantization()
            block = 0
            if q is not None and q.DetailsType() == schema.QuantizationDetails.BlockwiseQuantization:
                details = schema.BlockwiseQuantization()
                details.Init(q.Details().Bytes, q.Details().Pos)
                block = int(details.BlockSize())
            weights.append(
                Weight(
                    kind=kind,
                    layer=out_name.split("/")[-1][-80:],
                    dtype=type_names.get(tensor.Type(), str(tensor.Type())),
                    block_size=block,
                    shape=tuple(int(x) for x in tensor.ShapeAsNumpy()) if tensor.ShapeLength() else (),
                )
            )
        ops[name] = dict(sorted(counts.items()))
    return ProgramSummary(ops=ops, helper_subgraphs=helpers, weights=weights)


_EXPECTED_DTYPE = {4: "INT4", 8: "INT8", 16: "FLOAT16"}


def check_applied(recipe: LiteRTRecipe, summary: ProgramSummary) -> None:
    """Fail when a weight a rule covers is not stored the way the rule says (the rule matched nothing,
    or matched less than it claims)."""
    if not summary.weights:
        raise RecipeError("the LiteRT program has no linear or embedding weights to check")
    for rule in recipe.rules:
        covered = [w for w in summary.weights if rule.kind == "all" or w.kind == rule.kind]
        if not covered:
            raise RecipeError(f"recipe {recipe.name}: no {rule.kind} weights found in the program")
        wrong = [w for w in covered if not _matches(rule, w)]
        if wrong:
            sample = ", ".join(f"{w.layer} ({w.dtype})" for w in wrong[:3])
            raise RecipeError(
                f"recipe {recipe.name}: {len(wrong)} of {len(covered)} {rule.kind} weights were not quantized "
                f"as {rule.bits}-bit {rule.granularity}: {sample}"
            )
    if not recipe.rules:
        quantized = [w for w in summary.weights if w.dtype != "FLOAT32"]
        if quantized:
            raise RecipeError(f"recipe {recipe.name} should leave weights in float32; {len(quantized)} are not")


def _matches(rule: Rule, w: Weight) -> bool:
    return w.dtype == _EXPECTED_DTYPE[rule.bits] and w.block_size == rule.block_size

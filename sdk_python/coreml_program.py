"""Read a Core ML ML program back without a Core ML runtime (which exists on Apple systems only).

coremltools parses a saved .mlpackage into its MIL program on any OS: ops, inputs,
states and every weight with its compression (constexpr_* ops) can be inspected,
and a compressed weight can be decompressed exactly (`materialized_val_inference`).
That is what Linux can verify of a Core ML bundle, and this module does it:
`summarize` for the report and tests, `decompressed_weights` for the accuracy check.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .errors import ConversionError

# Names coremltools gives a constant: the torch parameter path with "." -> "_", plus suffixes.
_SUFFIXES = ("_sparsified", "_palettized", "_quantized", "_to_fp16")


@dataclass
class WeightInfo:
    name: str  # the constant's base name (torch path with dots as underscores)
    shape: list[int]
    used_by: list[str]  # op types reading it: linear, gather
    storage: str  # float16 | int8 | int4 | palettized | sparse | sparse+palettized
    bits: int  # bits per stored value (16 for float16)
    block_size: int | None = None  # quantization: input channels per scale (None = per output channel)
    lut_group_size: int | None = None  # palettization: output channels per lookup table
    sparsity: float | None = None  # fraction of zeros stored implicitly


    def short(self) -> str:
        """e.g. "int4 block32", "palettized4 lut/32ch", "sparse50% palettized4 lut/32ch", "float16"."""
        parts = []
        if self.sparsity is not None:
            parts.append(f"sparse{round(self.sparsity * 100)}%")
        if "palettized" in self.storage:
            parts.append(f"palettized{self.bits} lut/{self.lut_group_size}ch")
        elif not self.storage.startswith("sparse"):
            parts.append(self.storage + (f" block{self.block_size}" if self.block_size else ""))
        return " ".join(parts)


@dataclass
class ProgramSummary:
    ops: dict[str, int]
    inputs: list[dict]
    outputs: list[str]
    states: list[dict]
    weights: list[WeightInfo] = field(default_factory=list)

    def storage_counts(self) -> dict[str, int]:
        return dict(Counter(f"palettized{w.bits}" if w.storage == "palettized" else w.storage for w in self.weights))

    def as_report(self) -> dict:
        return {
            "ops": self.ops,
            "inputs": self.inputs,
            "outputs": self.outputs,
            "states": self.states,
            "weights": self.storage_counts(),
            "per_weight": {w.name: w.short() for w in self.weights},
        }

    def weight_table(self) -> list[dict]:
        return [asdict(w) for w in self.weights]


def load_program(mlpackage: str | Path):
    """The MIL program of a saved .mlpackage (no Core ML runtime needed)."""
    import coremltools as ct
    from coremltools.converters.mil.frontend.milproto.load import load as milproto_load

    model = ct.models.MLModel(str(mlpackage), skip_model_load=True)
    spec = model.get_spec()
    return milproto_load(model_spec=spec, specification_version=spec.specificationVersion,
                         file_weights_dir=model.weights_dir)


def _main(prog):
    return prog.functions["main"]


def _weight_inputs(fn):
    """(op, weight var) for each linear weight and each embedding table read by gather."""
    for op in fn.operations:
        if op.op_type == "linear":
            yield op, op.inputs["weight"]
        elif op.op_type == "gather":
            x = op.inputs["x"]
            if x.op is not None and (x.op.op_type.startswith("constexpr") or (x.op.op_type == "const" and x.rank == 2)):
                yield op, x


def base_name(const_name: str) -> str:
    changed = True
    while changed:
        changed = False
        for suffix in _SUFFIXES:
            if const_name.endswith(suffix):
                const_name, changed = const_name[: -len(suffix)], True
    return const_name


def weight_consts(prog) -> list[str]:
    """Names of the weight constants of an uncompressed program (the ones a recipe compresses)."""
    return sorted({var.op.name for _, var in _weight_inputs(_main(prog)) if var.op.op_type == "const"})


def embedding_consts(prog) -> list[str]:
    return sorted({var.op.name for op, var in _weight_inputs(_main(prog)) if op.op_type == "gather"})


def non_weight_consts(prog) -> list[str]:
    """Float constants of more than one value that are not weights (rotary tables, norms, biases):
    excluded by name from every compression step."""
    weights = set(weight_consts(prog))
    out = []
    for op in _main(prog).operations:
        if op.op_type != "const" or op.name in weights:
            continue
        val = op.outputs[0].val
        if isinstance(val, np.ndarray) and val.size > 1 and np.issubdtype(val.dtype, np.floating):
            out.append(op.name)
    return out


def _describe(var, users: list[str]) -> WeightInfo:
    from coremltools.converters.mil.mil import types

    op = var.op
    shape = [int(s) for s in var.shape]
    info = WeightInfo(name=base_name(op.name), shape=shape, used_by=users, storage="float16", bits=16)
    if op.op_type == "const":
        info.storage = types.builtin_to_string(var.dtype)
        info.bits = 32 if info.storage == "fp32" else 16
        info.storage = "float16" if info.storage == "fp16" else info.storage
        return info
    if op.op_type == "constexpr_sparse_to_dense":
        nonzero = op.inputs["nonzero_data"]
        total = int(np.prod(shape))
        info.sparsity = round(1.0 - int(nonzero.shape[0]) / total, 4)
        if nonzero.op is not None and nonzero.op.op_type == "constexpr_lut_to_sparse":
            lut = nonzero.op.inputs["lut"]
            info.storage = "sparse+palettized"
            info.bits = int(np.log2(lut.shape[-2]))
            info.lut_group_size = shape[0] // int(lut.shape[0])
        else:
            info.storage = "sparse"
        return info
    if op.op_type == "constexpr_lut_to_dense":
        lut = op.inputs["lut"]
        info.storage = "palettized"
        info.bits = int(np.log2(lut.shape[-2]))
        info.lut_group_size = shape[0] // int(lut.shape[0])
        return info
    if op.op_type == "constexpr_blockwise_shift_scale":
        dtype = types.builtin_to_string(op.inputs["data"].dtype)
        info.storage = dtype
        info.bits = int("".join(c for c in dtype if c.isdigit()))
        scale_cols = int(op.inputs["scale"].shape[-1])
        info.block_size = None if scale_cols == 1 else shape[-1] // scale_cols
        return info
    raise ConversionError(f"weight {op.name} is stored by an op pocketlm does not know: {op.op_type}")


def summarize(prog) -> ProgramSummary:
    from coremltools.converters.mil.mil import types

    fn = _main(prog)
    users: dict[str, tuple] = {}
    for op, var in _weight_inputs(fn):
        entry = users.setdefault(var.name, (var, []))
        if op.op_type not in entry[1]:
            entry[1].append(op.op_type)
    inputs, states = [], []
    for name, var in fn.inputs.items():
        shape = [int(s) if str(s).isdigit() else "flexible" for s in var.shape]  # symbolic sizes are flexible
        if types.is_state(var.sym_type):
            states.append({"name": name, "shape": shape,
                           "dtype": types.builtin_to_string(var.sym_type.wrapped_type().get_primitive())})
        else:
            inputs.append({"name": name, "shape": shape, "dtype": types.builtin_to_string(var.dtype)})
    ops = Counter(op.op_type for op in fn.operations if op.op_type != "const")
    return ProgramSummary(
        ops=dict(sorted(ops.items())),
        inputs=inputs,
        outputs=[v.name for v in fn.outputs],
        states=states,
        weights=sorted((_describe(var, u) for var, u in users.values()), key=lambda w: w.name),
    )


def decompressed_weights(prog) -> dict[str, np.ndarray]:
    """Every weight as the runtime will see it: base name -> float32 array."""
    out = {}
    for _, var in _weight_inputs(_main(prog)):
        op = var.op
        val = op.outputs[0].val if op.op_type == "const" else op.materialized_val_inference()
        out[base_name(op.name)] = np.asarray(val, dtype=np.float32)
    return out

"""ExecuTorch with the Core ML delegate: torch.export -> edge -> CoreMLPartitioner -> .pte.

The graph is the `StepDecoder` (one token per call, static shapes, the KV cache as
mutable buffers that the partitioner turns into Core ML states — iOS 18 / macOS 15),
with the XNNPACK programs' `forward(tokens, input_pos)` signature, so ExecuTorch's
runners and the SDK's ExecuTorch engine drive it unchanged. The Core ML delegate's
runtime exists on Apple systems only: on Linux the ahead-of-time step runs and the
delegation is reported, and the torch graph that was lowered is checked against the
float model with float16-rounded weights. Weight compression for Apple devices is
the coreml target's (--target coreml), where every compressed weight is verified.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import torch

from pocketlm.errors import BackendUnavailableError, ConversionError, RecipeError

from .. import parity
from .executorch_xnnpack import _BOOKKEEPING, _op_name, method_signature, runtime_metadata

PROGRAM_FILE = "model.pte"
ENGINE = "executorch"
DELEGATE = "coreml"
NAME_TAG = "et-coreml"
DEFAULT_QUANT = "fp16"
EAGER_QUANT = False
STATIC_PREFILL = False
FIXED_PREFILL = 1  # one token per call: prompts are fed token by token
VERSION_PACKAGES = ("executorch", "coremltools", "torch", "transformers")


class _Fp16Recipe:
    name = "fp16"
    linear = None
    embedding = None

    def describe(self) -> dict:
        return {"recipe": "fp16", "linear": None, "embedding": None}


def build_recipe(quant: str, group_size: int = 32, embedding: str | None = None):
    if quant != "fp16":
        raise RecipeError(
            f"--target executorch --delegate coreml takes --quant fp16 (got {quant}); compressed Core ML "
            "models come from --target coreml, where each compressed weight is verified"
        )
    if embedding:
        raise RecipeError("--embedding-quant is not available with the Core ML delegate")
    return _Fp16Recipe()


def check_available() -> None:
    try:
        import coremltools  # noqa: F401
        from executorch.backends.apple.coreml.partition import CoreMLPartitioner  # noqa: F401
    except ImportError as e:
        raise BackendUnavailableError(
            f"ExecuTorch's Core ML backend is not installed ({e}); install pocketlm[converter,coreml]"
        ) from None


def runtime_fields(job) -> dict:
    return {
        "methods": method_signature(job.decoder),
        "constant_methods": {
            **runtime_metadata(job.decoder, FIXED_PREFILL, job.bos_id, job.eos_ids),
            "use_sdpa_with_kv_cache": False,
            "enable_dynamic_shape": False,
        },
        "deployment_target": "iOS18",
    }


@torch.no_grad()
def step_check(job, step) -> dict:
    """The lowered graph's torch form in float16 (weights and compute, as the Core ML delegate runs
    it), fed the parity tokens one at a time, against the float model: what Linux can check."""
    import copy

    half = copy.deepcopy(step).half().eval()
    rows = [half(torch.tensor([[t]]), torch.tensor([i]))[0].float().numpy() for i, t in enumerate(job.parity_tokens)]
    del half
    logits = np.stack(rows)
    if not np.isfinite(logits).all():
        raise ConversionError("in float16 compute (the Core ML delegate's) this model's logits are not finite")
    return {
        "method": "the lowered torch graph (StepDecoder) in float16, one token per call",
        "tokens": len(rows),
        "vs_float": parity.compare(job.float_logits, logits),
    }


@torch.no_grad()
def lower(job) -> dict:
    import coremltools as ct
    from executorch.backends.apple.coreml.compiler import CoreMLBackend
    from executorch.backends.apple.coreml.partition import CoreMLPartitioner
    from executorch.exir import EdgeCompileConfig, to_edge_transform_and_lower

    from ..stateful_decoder import StepDecoder
    from .coreml import _quiet

    step = StepDecoder(job.decoder).eval()
    check = step_check(job, step)
    example = (torch.zeros(1, 1, dtype=torch.long), torch.tensor([0], dtype=torch.long))
    with _quiet():
        exported = torch.export.export(step, example, strict=False)
        before = sum(1 for n in exported.graph_module.graph.nodes
                     if n.op == "call_function" and _op_name(n) not in _BOOKKEEPING)
        specs = CoreMLBackend.generate_compile_specs(
            minimum_deployment_target=ct.target.iOS18, compute_precision=ct.precision.FLOAT16,
        )
        edge = to_edge_transform_and_lower(
            exported,
            partitioner=[CoreMLPartitioner(compile_specs=specs, take_over_mutable_buffer=True)],
            compile_config=EdgeCompileConfig(_check_ir_validity=False),
            constant_methods=runtime_fields(job)["constant_methods"],
        )
        outside = Counter(
            _op_name(n) for n in edge.exported_program().graph_module.graph.nodes
            if n.op == "call_function" and _op_name(n) not in _BOOKKEEPING
        )
        delegate_calls = outside.pop("executorch_call_delegate", 0)
        program = edge.to_executorch()
    with open(job.out_dir / PROGRAM_FILE, "wb") as f:
        program.write_to_file(f)
    return {
        "delegate_calls": delegate_calls,
        "nodes_before_partition": before,
        "ops_outside_delegate": dict(sorted(outside.items())),
        "quantized_layers": [],
        "weights_check": check,
    }

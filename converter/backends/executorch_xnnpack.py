"""ExecuTorch with the XNNPACK delegate: torch.export -> edge -> XNNPACK -> .pte.

`forward(tokens[1, S], input_pos[1])` with S dynamic in [1, max_prefill] (a static
one-token graph for --max-prefill 1); the KV cache
lives in the program as mutable buffers. With --prefill-method (float cache only) a
second method `prefill(tokens[1, S], kv_positions[L])`: the same model with its attention
in XNNPACK (decoder.Decoder.prefill), 2x faster attention on long prompts, sharing the
cache. Not the default: each method's delegates pack their own copy of the weights when
loaded (the pip runtime offers no way to turn on XNNPACK's shared weight cache), and the
export takes ~2.7x as long. The metadata methods ExecuTorch's LLM runners read
(get_max_seq_len, get_eos_ids …)
are baked in as constant methods, so the .pte also runs in ExecuTorch's own
C++ runner and Android's LlmModule.
"""

from __future__ import annotations

import contextlib
from collections import Counter

import torch

from pocketlm.errors import BackendUnavailableError, RecipeError

from .. import recipes

PROGRAM_FILE = "model.pte"
ENGINE = "executorch"
DELEGATE = "xnnpack"
EAGER_QUANT = True  # torchao quantizes the torch model; the lowering keeps its quantized ops
STATIC_PREFILL = False  # one method, token count dynamic up to max_prefill
VERSION_PACKAGES = ("executorch", "torch", "torchao", "transformers")


def build_recipe(quant: str, group_size: int = 32, embedding: str | None = None):
    recipe = recipes.build_recipe(quant, group_size, embedding)
    if recipe.linear and recipe.linear.weight_bits == 4 and group_size % 32:
        # XNNPACK's blockwise 4-bit kernels (QB4W) refuse other groups at lowering time
        raise RecipeError(f"--group-size {group_size}: XNNPACK's 4-bit weights take groups that are a multiple of 32")
    return recipe

DEFAULT_QUANT = "8da4w"
NAME_TAG = "xnnpack"  # default bundle names: <model>-xnnpack-<recipe>
KV_CACHE_DTYPES = ("fp32", "int8")  # int8: ExecuTorch's quantized cache and custom_quantized_sdpa
PREFILL_METHOD = True  # --prefill-method: a second method with attention in XNNPACK


def check_available() -> None:
    try:
        import executorch.exir  # noqa: F401
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner  # noqa: F401
    except ImportError as e:
        raise BackendUnavailableError(
            f"ExecuTorch's exporter is not installed ({e}); install pocketlm[converter]"
        ) from None


def runtime_metadata(decoder, max_prefill: int, bos_id: int | None, eos_ids: list[int]) -> dict:
    shape = decoder.shape
    return {
        "get_max_seq_len": max_prefill,
        "get_max_context_len": shape.max_context,
        "get_n_layers": shape.num_layers,
        "get_vocab_size": shape.vocab_size,
        "get_bos_id": bos_id if bos_id is not None else -1,
        "get_eos_ids": list(eos_ids),
        "use_kv_cache": True,
        "use_sdpa_with_kv_cache": True,
        "enable_dynamic_shape": max_prefill > 1,  # --max-prefill 1 exports a static one-token graph
    }


def runtime_fields(job) -> dict:
    return {
        "methods": method_signature(job.decoder, job.prefill_method),
        "constant_methods": runtime_metadata(job.decoder, job.max_prefill, job.bos_id, job.eos_ids),
    }


def method_signature(decoder, prefill_method: bool = False) -> dict:
    logits = [{"name": "logits", "dtype": "float32", "shape": [1, decoder.shape.vocab_size]}]
    methods = {
        "forward": {
            "inputs": [
                {"name": "tokens", "dtype": "int64", "shape": [1, "seq"]},
                {"name": "input_pos", "dtype": "int64", "shape": [1]},
            ],
            "outputs": logits,
        }
    }
    if prefill_method:
        # forward(tokens, [L - S]) with attention in XNNPACK: runtimes use it for prompts, forward to decode
        methods["prefill"] = {
            "inputs": [
                {"name": "tokens", "dtype": "int64", "shape": [1, "seq"]},
                {"name": "kv_positions", "dtype": "int64", "shape": ["kv_len"]},
            ],
            "outputs": logits,
        }
    return methods


@torch.no_grad()
def lower(job) -> dict:
    """Export and lower job.decoder to job.out_dir/model.pte; returns delegation facts for the report."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import EdgeCompileConfig, ExecutorchBackendConfig, to_edge_transform_and_lower
    from executorch.exir.passes import MemoryPlanningPass
    from executorch.exir.passes.sym_shape_eval_pass import ConstraintBasedSymShapeEvalPass

    from ..decoder import load_custom_ops

    decoder, out_dir, max_prefill = job.decoder, job.out_dir, job.max_prefill
    metadata = runtime_metadata(decoder, max_prefill, job.bos_id, job.eos_ids)
    load_custom_ops()
    decoder.eval()
    decoder.reset_cache()
    tokens = torch.zeros(1, min(2, max_prefill), dtype=torch.long)
    # --max-prefill 1: one token per call, a static graph (torch.export has no Dim with min == max)
    seq = torch.export.Dim("seq", min=1, max=max_prefill) if max_prefill > 1 else None
    methods = {"forward": torch.export.export(
        decoder, (tokens, torch.tensor([0], dtype=torch.long)),
        dynamic_shapes=({1: seq}, None) if seq else None, strict=False)}
    if job.prefill_method:
        keys = torch.export.Dim("kv_len", min=1, max=decoder.shape.max_context)
        with _forward_as(decoder, decoder.prefill):
            methods["prefill"] = torch.export.export(
                decoder, (tokens, torch.arange(tokens.shape[1] + 2)), dynamic_shapes=({1: seq}, {0: keys}),
                strict=False)
    edge = to_edge_transform_and_lower(
        methods,
        partitioner=[XnnpackPartitioner()],
        compile_config=EdgeCompileConfig(_check_ir_validity=False, _skip_dim_order=True),
        constant_methods=metadata,
    )
    shared = "prefill" in methods
    facts = _delegation(edge, "forward")
    if shared:
        facts["prefill"] = _delegation(edge, "prefill")
    program = edge.to_executorch(
        ExecutorchBackendConfig(
            extract_delegate_segments=True,
            do_quant_fusion_and_const_prop=True,  # fuses torchao's quantized embeddings into ExecuTorch's kernels
            # with a prefill method, both methods read and write the one KV cache
            memory_planning_pass=MemoryPlanningPass(alloc_graph_input=False, share_mutable_buffers=shared),
            emit_mutable_buffer_names=shared,
            sym_shape_eval_pass=ConstraintBasedSymShapeEvalPass(),
        )
    )
    with open(out_dir / PROGRAM_FILE, "wb") as f:
        program.write_to_file(f)
    return facts


@contextlib.contextmanager
def _forward_as(module, method):
    """Export `method` under the module's own name, so the KV-cache buffers keep the FQNs `forward` has
    (shared mutable buffers are matched by name across methods)."""
    module.forward = method
    try:
        yield
    finally:
        del module.forward


def _delegation(edge, method: str) -> dict:
    outside = Counter(
        _op_name(n)
        for n in edge.exported_program(method).graph_module.graph.nodes
        if n.op == "call_function" and _op_name(n) not in _BOOKKEEPING
    )
    delegate_calls = outside.pop("executorch_call_delegate", 0)
    return {"delegate_calls": delegate_calls, "ops_outside_delegate": dict(sorted(outside.items()))}


# Symbolic-shape arithmetic and tuple indexing: no kernels run for these.
_BOOKKEEPING = {
    "getitem", "sym_size.int", "_assert_scalar.default", "_local_scalar_dense.default",
    "le", "lt", "ge", "add", "sub", "mul",
}


def _op_name(node) -> str:
    text = str(node.target)
    if text.startswith("<EdgeOpOverload: "):
        text = text[len("<EdgeOpOverload: ") :].split(">")[0]
    else:
        text = getattr(node.target, "__name__", text)
    return text.removeprefix("aten.")

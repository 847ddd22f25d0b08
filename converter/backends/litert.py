"""LiteRT (TFLite) on its CPU path (XNNPACK): litert-torch's Hugging Face exporter -> .tflite,
then ai-edge-quantizer applies the recipe to the float program.

litert-torch's `export_hf` traces the Hugging Face model itself with its own attention
implementation patched in, so every family transformers runs (Llama/SmolLM2, Gemma 3,
Qwen2/3) lowers without a re-authored model or a weight-name table. The program has
`prefill_<P>` signatures (one per prompt length P) and `decode`; the KV cache and an
additive attention mask are signature inputs, the updated cache an output.
"""

from __future__ import annotations

import contextlib
import importlib.machinery
import importlib.util
import io
import shutil
import sys
import tempfile
import types
from pathlib import Path

from pocketlm.errors import BackendUnavailableError, ConversionError

from .. import litert_recipes

PROGRAM_FILE = "model.tflite"
ENGINE = "litert"
DELEGATE = "xnnpack"  # LiteRT's CPU accelerator
EAGER_QUANT = False  # the recipe is applied to the lowered program, not to the torch model
STATIC_PREFILL = True  # one signature per prefill length
VERSION_PACKAGES = ("litert-torch", "ai-edge-litert", "ai-edge-quantizer", "torch", "transformers")
RUNNER = "compiled"  # ai_edge_litert.CompiledModel; measured faster than Interpreter signature runners
build_recipe = litert_recipes.build_recipe
NAME_TAG = "litert"  # default bundle names: <model>-litert-<recipe>
DEFAULT_QUANT = "int8"  # the fastest recipe that keeps >= 0.9 teacher-forced top-1 on SmolLM2
# Older runtimes a program can also be made for. tflite-runtime 2.14 cannot parse composite ops
# (builtin 206): litert-torch emits none for Llama-family models and odml.rms_norm composites for
# Qwen2/3 and Gemma 3, so those are refused after export. Of the recipes, only these gave the same
# logits there as in ai-edge-litert (tests/test_tflite_runtime.py; int8 dynamic range loads but
# its 2.14 kernels give other logits).
COMPAT = {"tflite-runtime": {"runtime": "tflite-runtime==2.14.0", "recipes": ("fp32",)}}


def install_tensorflow_schema_alias() -> None:
    """litert-torch 0.10 imports `tensorflow.lite.python.schema_py_generated` (its TFLite flatbuffer
    schema) although TensorFlow is not one of its dependencies. ai_edge_litert ships the same
    generated module; alias it under TensorFlow's name when TensorFlow is absent. Nothing else of
    TensorFlow is provided: any other `tensorflow` import still fails loudly."""
    if "tensorflow.lite.python.schema_py_generated" in sys.modules or importlib.util.find_spec("tensorflow"):
        return
    from ai_edge_litert import schema_py_generated

    for name in ("tensorflow", "tensorflow.lite", "tensorflow.lite.python"):
        module = types.ModuleType(name)
        # torch._dynamo inspects module specs; a bare module without one breaks tracing.
        module.__spec__ = importlib.machinery.ModuleSpec(name, None, is_package=True)
        module.__path__ = []
        sys.modules.setdefault(name, module)
    sys.modules["tensorflow.lite.python.schema_py_generated"] = schema_py_generated


def check_available() -> None:
    try:
        import ai_edge_litert  # noqa: F401
        import ai_edge_quantizer  # noqa: F401
        import litert_torch  # noqa: F401
    except ImportError as e:
        raise BackendUnavailableError(
            f"the LiteRT exporter is not installed ({e.name}); install pocketlm[litert-converter]"
        ) from None


def default_prefill_lengths(max_prefill: int) -> list[int]:
    return sorted({min(32, max_prefill), max_prefill})


def method_signature(decoder, prefill_lengths: list[int]) -> dict:
    shape = decoder.shape
    cache = [
        {"name": f"kv_cache_{kv}_{i}", "dtype": "float32", "shape": ["…"]}
        for i in range(shape.num_layers)
        for kv in ("k", "v")
    ]

    def sig(n: int, logits: bool) -> dict:
        inputs = [
            {"name": "tokens", "dtype": "int32", "shape": [1, n]},
            {"name": "input_pos", "dtype": "int32", "shape": [n]},
            {"name": "mask", "dtype": "float32", "shape": [1, 1, n, shape.max_context]},
            *cache,
        ]
        outputs = list(cache)
        if logits:
            outputs.append({"name": "logits", "dtype": "float32", "shape": [1, 1, shape.vocab_size]})
        return {"inputs": inputs, "outputs": outputs}

    return {**{f"prefill_{p}": sig(p, False) for p in prefill_lengths}, "decode": sig(1, True)}


def runtime_fields(job) -> dict:
    return {
        "methods": method_signature(job.decoder, job.prefill_lengths),
        "prefill_lengths": list(job.prefill_lengths),
        "runner": RUNNER,
    }


def layer_weights(hf_model) -> dict:
    """The weight of every layer a recipe may quantize, by Hugging Face module name."""
    from torch import nn

    return {n: m.weight for n, m in hf_model.named_modules() if isinstance(m, (nn.Linear, nn.Embedding))}


def _save_float_checkpoint(hf_model, hf_tokenizer, folder: Path) -> None:
    """A safetensors folder litert-torch reloads. A model read from GGUF carries transformers'
    GGUF quantization marker although its weights are already dequantized to float32."""
    quantizer = getattr(hf_model, "hf_quantizer", None)
    had_config = hasattr(hf_model.config, "quantization_config")
    saved_config = getattr(hf_model.config, "quantization_config", None)
    try:
        hf_model.hf_quantizer = None
        if had_config:
            del hf_model.config.quantization_config
        hf_model.save_pretrained(folder)
    finally:
        hf_model.hf_quantizer = quantizer
        if had_config:
            hf_model.config.quantization_config = saved_config
    hf_tokenizer.save_pretrained(folder)


@contextlib.contextmanager
def _quiet_stdout():
    """litert-torch prints a progress tree to stdout; keep it, and show its tail only on failure."""
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stdout(buffer):
            yield
    except Exception as e:
        tail = "\n".join(buffer.getvalue().splitlines()[-15:])
        raise ConversionError(f"LiteRT export failed: {type(e).__name__}: {e}\n{tail}") from e


def export_float_program(job, path: Path) -> None:
    """litert-torch's Hugging Face exporter: job.hf_model -> float32 .tflite at `path`."""
    install_tensorflow_schema_alias()
    with tempfile.TemporaryDirectory(prefix="pocketlm-litert-") as tmp:
        tmp = Path(tmp)
        _save_float_checkpoint(job.hf_model, job.hf_tokenizer, tmp / "hf")
        with _quiet_stdout():
            from litert_torch.generative.export_hf import export as export_hf

            export_hf.export(
                str(tmp / "hf"),
                str(tmp / "out"),
                prefill_lengths=list(job.prefill_lengths),
                cache_length=job.decoder.shape.max_context,
                quantization_recipe="none",  # applied by quantize_program, where it can be checked
                bundle_litert_lm=False,
                keep_temporary_files=True,
            )
        program = tmp / "out" / "model.tflite"
        if not program.is_file():
            raise ConversionError("litert-torch finished without writing model.tflite")
        shutil.move(program, path)


def quantize_program(float_program: Path, recipe, path: Path) -> dict:
    """Apply `recipe` to a float .tflite with ai-edge-quantizer, check it did, return report facts."""
    from ..tflite_program import check_applied, read_program

    if recipe.rules:
        from ai_edge_quantizer import quantizer

        with _quiet_stdout():
            result = quantizer.Quantizer(str(float_program), litert_recipes.quantizer_recipe(recipe)).quantize()
            result.export_model(str(path), overwrite=True)
    else:
        shutil.copyfile(float_program, path)
    summary = read_program(path)
    check_applied(recipe, summary)
    return {
        "signatures": sorted(summary.ops),
        "ops": summary.ops,
        "composite_ops": summary.composite_ops(),
        "helper_subgraphs": summary.helper_subgraphs,
        "weight_types": summary.weight_types(),
        "quantized_layers": [f"{w.kind}/{w.layer}: {w.dtype}" for w in summary.weights if w.dtype != "FLOAT32"],
    }


def lower(job) -> dict:
    """Export job.hf_model to job.out_dir/model.tflite with job.recipe applied; returns report facts."""
    weights = layer_weights(job.hf_model)
    litert_recipes.check_block_size(job.recipe, {name: w.shape[-1] for name, w in weights.items()})
    litert_recipes.check_no_zero_blocks(job.recipe, weights)
    with tempfile.TemporaryDirectory(prefix="pocketlm-litert-float-") as tmp:
        float_program = Path(tmp) / "float.tflite"
        export_float_program(job, float_program)
        facts = quantize_program(float_program, job.recipe, job.out_dir / PROGRAM_FILE)
    if job.compat == "tflite-runtime" and facts["composite_ops"]:
        raise ConversionError(
            f"--compat tflite-runtime: litert-torch lowers this {job.decoder.shape.family} model with "
            f"{facts['composite_ops']} composite ops (odml.rms_norm …, builtin 206), which tflite-runtime 2.14 "
            "cannot load; its programs need ai-edge-litert"
        )
    return facts

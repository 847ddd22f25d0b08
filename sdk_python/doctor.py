"""`pocketlm doctor`: what this machine can convert and run, checked by actually trying."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    required: bool = False


def _version_check(name: str, package: str, required: bool = False) -> Check:
    try:
        return Check(name, True, version(package), required)
    except PackageNotFoundError:
        return Check(name, False, f"{package} is not installed", required)


def _try(name: str, fn, required: bool = False) -> Check:
    try:
        return Check(name, True, fn() or "usable", required)
    except Exception as e:  # doctor reports every failure as a line, whatever raised it
        return Check(name, False, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:160], required)


def _executorch_runtime() -> str:
    from .engines.executorch_engine import _import_runtime

    _import_runtime()
    from executorch.runtime import Runtime

    backends = Runtime.get().backend_registry.registered_backend_names
    return f"runtime loads; backends: {', '.join(sorted(backends))}"


def _xnnpack_lowering() -> str:
    from pocketlm.converter.backends import get_backend

    get_backend("executorch", "xnnpack")
    return "exporter and XNNPACK partitioner import"


def _litert_runtime() -> str:
    from .engines.litert_engine import _import_runtime

    _import_runtime()
    return f"ai-edge-litert {version('ai-edge-litert')} imports"


def _litert_lowering() -> str:
    from pocketlm.converter.backends import get_backend

    backend = get_backend("tflite")
    backend.install_tensorflow_schema_alias()
    from litert_torch.generative.export_hf import export  # noqa: F401

    return f"litert-torch {version('litert-torch')} Hugging Face exporter and ai-edge-quantizer import"


def _custom_ops() -> str:
    from pocketlm.converter.decoder import load_custom_ops

    load_custom_ops()
    import torch

    torch.ops.llama.custom_sdpa.default  # noqa: B018  raises if the op library did not load
    return "llama::custom_sdpa and llama::update_cache registered"


def _mps_delegate() -> str:
    import importlib.util

    if importlib.util.find_spec("executorch.backends.apple.mps") is None:
        raise RuntimeError("this executorch wheel has no MPS backend (executorch.backends.apple.mps)")
    return "available"


def _coreml_lowering() -> str:
    import coremltools.optimize.coreml  # noqa: F401
    from coremltools.converters.mil.frontend.milproto.load import load  # noqa: F401
    from executorch.backends.apple.coreml.partition import CoreMLPartitioner  # noqa: F401

    return f"coremltools {version('coremltools')}: convert, compress, inspect; ExecuTorch Core ML partitioner imports"


def _coreml_runtime() -> str:
    from .engines.coreml_engine import CoreMLEngine

    if CoreMLEngine.unavailable_reason():
        raise RuntimeError("Core ML predicts on macOS/iOS only; Core ML bundles are converted and inspected here")
    return "Core ML predicts here"


def run_checks() -> list[Check]:
    checks = [
        Check("python", True, f"{platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs", True),
        _version_check("pocketlm", "pocketlm", True),
        _version_check("tokenizers", "tokenizers", True),
        _version_check("torch", "torch"),
        _version_check("executorch", "executorch"),
        _version_check("torchao", "torchao"),
        _version_check("transformers", "transformers"),
        _version_check("gguf", "gguf"),
        _try("executorch runtime (run)", _executorch_runtime),
        _try("executorch custom LLM ops", _custom_ops),
        _try("executorch/xnnpack (convert)", _xnnpack_lowering),
        _try("executorch/mps (convert)", _mps_delegate),
        _try("coreml (convert)", _coreml_lowering),
        _try("coreml runtime (run)", _coreml_runtime),
        _try("litert runtime (run)", _litert_runtime),
        _try("tflite/litert (convert)", _litert_lowering),
    ]
    return checks

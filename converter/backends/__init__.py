"""Lowering backends: (target, delegate) -> the module that lowers a Decoder into a bundle.

Each module provides `PROGRAM_FILE`, `ENGINE` (the SDK engine that runs its
output), `DELEGATE`, `NAME_TAG`, `DEFAULT_QUANT`, `EAGER_QUANT` (whether its recipes quantize the torch model
before export or the lowered program after), `build_recipe(...)`,
`check_available()`, `runtime_fields(job)` and `lower(job)`. Adding a backend is
adding a module and a line here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path

from pocketlm.errors import BackendUnavailableError

BACKENDS: dict[tuple[str, str], str] = {
    ("executorch", "xnnpack"): "pocketlm.converter.backends.executorch_xnnpack",
    ("tflite", "xnnpack"): "pocketlm.converter.backends.litert",
    ("coreml", "mlprogram"): "pocketlm.converter.backends.coreml",
    ("executorch", "coreml"): "pocketlm.converter.backends.executorch_coreml",
    ("executorch", "mps"): "pocketlm.converter.backends.executorch_mps",
}
TARGETS = sorted({t for t, _ in BACKENDS})
DEFAULT_DELEGATE = {"executorch": "xnnpack", "tflite": "xnnpack", "coreml": "mlprogram"}


@dataclass
class LoweringJob:
    """Everything a backend needs to lower one model into a bundle folder."""

    decoder: object  # pocketlm.converter.decoder.Decoder (quantized already when EAGER_QUANT)
    hf_model: object  # the float Hugging Face model it was built from
    hf_tokenizer: object
    out_dir: Path
    recipe: object
    max_prefill: int
    prefill_lengths: list[int]
    bos_id: int | None
    eos_ids: list[int]
    compat: str | None = None  # an older runtime the program must also run in (--compat)
    compute_units: str | None = None  # Core ML: where the model is asked to run (--compute-units)
    parity_tokens: list[int] = field(default_factory=list)  # the parity check's tokens …
    float_logits: object = None  # … and the float model's logits on them ([tokens, vocab])
    float_perplexity: dict | None = None  # the float model's report perplexity (eager_perplexity)
    gguf_path: Path | None = None  # a GGUF source's file (Core ML --quant gguf keeps its blocks)
    prefill_method: bool = False  # ExecuTorch/XNNPACK: also export `prefill` (attention in XNNPACK)


def get_backend(target: str, delegate: str | None = None):
    delegate = delegate or DEFAULT_DELEGATE.get(target)
    key = (target, delegate)
    if key not in BACKENDS:
        known = ", ".join(f"{t}/{d}" for t, d in sorted(BACKENDS))
        raise BackendUnavailableError(
            f"no backend for target {target!r} with delegate {delegate!r} (available: {known})"
        )
    module = import_module(BACKENDS[key])
    module.check_available()
    return module

"""Engine registry: a bundle's runtime.backend names the engine that runs it.

Adding a runtime is adding a module with an Engine subclass and a line here.
"""

from __future__ import annotations

from importlib import import_module

from ..errors import BackendUnavailableError
from .base import Engine

ENGINES: dict[str, str] = {
    "executorch": "pocketlm.engines.executorch_engine:ExecuTorchEngine",
    "litert": "pocketlm.engines.litert_engine:LiteRTEngine",
    "coreml": "pocketlm.engines.coreml_engine:CoreMLEngine",
}


def engine_class(backend: str) -> type[Engine]:
    try:
        module, cls = ENGINES[backend].split(":")
    except KeyError:
        raise BackendUnavailableError(
            f"no engine for backend {backend!r} (this pocketlm runs: {', '.join(sorted(ENGINES))})"
        ) from None
    return getattr(import_module(module), cls)


def open_engine(bundle, threads: int | None = None, **options) -> Engine:
    engine = engine_class(bundle.runtime["backend"])(bundle, threads=threads, **options)
    engine.load()
    return engine


__all__ = ["ENGINES", "Engine", "engine_class", "open_engine"]

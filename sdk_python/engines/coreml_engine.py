"""Core ML engine: runs a bundle's stateful .mlpackage through coremltools' MLModel (macOS only).

The KV cache is the model's state (`MLState`, one per loaded engine); each call passes
the tokens and the additive causal mask [1, 1, S, E], where E = cached tokens after
the call — the same contract the iOS app follows (see docs/coreml.md).
"""

from __future__ import annotations

import platform
import time
from collections.abc import Sequence

import numpy as np

from ..errors import BackendUnavailableError, BundleError
from .base import Engine

MASK_MIN = -30000.0  # the converter's value (stateful_decoder.MASK_MIN): hidden positions

NOT_HERE = "Core ML runs on macOS/iOS; this bundle can be inspected here but not run"

COMPUTE_UNITS = {"all": "ALL", "cpu_and_ne": "CPU_AND_NE", "cpu_and_gpu": "CPU_AND_GPU", "cpu_only": "CPU_ONLY"}


def mask_for(start: int, count: int) -> np.ndarray:
    """Causal mask input for `count` tokens written at positions start.. : [1, 1, count, start + count]."""
    q = np.arange(count)[:, None] + start
    k = np.arange(start + count)[None, :]
    return np.where(k <= q, 0.0, MASK_MIN).astype(np.float16).reshape(1, 1, count, start + count)


class CoreMLEngine(Engine):
    name = "coreml"

    def __init__(self, bundle, threads: int | None = None, compute_units: str | None = None):
        super().__init__(bundle, threads)
        self.compute_units = compute_units or bundle.runtime.get("compute_units", "cpu_and_ne")
        if self.compute_units not in COMPUTE_UNITS:
            raise BundleError(f"unknown Core ML compute units {self.compute_units!r} "
                              f"(known: {', '.join(COMPUTE_UNITS)})")
        self._model = None
        self._state = None

    @classmethod
    def unavailable_reason(cls, runtime: dict | None = None) -> str | None:
        if platform.system() != "Darwin":
            return NOT_HERE
        try:
            import coremltools  # noqa: F401
        except ImportError:
            return "coremltools is not installed; install pocketlm[coreml]"
        return None

    @classmethod
    def prepare(cls) -> None:
        reason = cls.unavailable_reason()
        if reason:
            raise BackendUnavailableError(reason)

    def load(self) -> None:
        self.prepare()
        import coremltools as ct

        path = self.bundle.file(self.bundle.runtime["program"])
        try:
            units = getattr(ct.ComputeUnit, COMPUTE_UNITS[self.compute_units])
            self._model = ct.models.MLModel(str(path), compute_units=units)
        except Exception as e:  # Core ML reports compile failures as plain exceptions
            raise BundleError(f"Core ML could not load {path.name}: {e}") from None
        self._state = self._model.make_state()

    def _forward(self, tokens: Sequence[int], start: int) -> np.ndarray:
        inputs = {
            "input_ids": np.asarray([list(tokens)], dtype=np.int32),
            "causal_mask": mask_for(start, len(tokens)),
        }
        t0 = time.perf_counter()
        out = self._model.predict(inputs, state=self._state)
        self.runtime_seconds += time.perf_counter() - t0
        return np.asarray(out["logits"], dtype=np.float32).reshape(-1)

    def reset(self) -> None:
        super().reset()
        # Not needed for correctness (attention reads positions < E only, and they are rewritten
        # first), but a fresh state keeps a reused engine from holding a long conversation's cache.
        if self._model is not None:
            self._state = self._model.make_state()

    def close(self) -> None:
        self._model = None
        self._state = None

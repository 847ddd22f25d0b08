"""ExecuTorch engine: runs a bundle's .pte through the pip wheel's runtime (executorch.runtime)."""

from __future__ import annotations

import platform
import time
import warnings
from collections.abc import Sequence

import numpy as np

from .. import mkl_threads
from ..errors import BackendUnavailableError, BundleError
from .base import Engine

_threads_fixed: int | None = None  # XNNPACK's pool can only be resized before the first program loads


def _import_runtime():
    try:
        torch = mkl_threads.import_torch()  # before anything else loads libtorch (see mkl_threads)
        import executorch.kernels.quantized  # noqa: F401

        # Kernels the programs call outside the delegate: llama::custom_sdpa / update_cache
        # and the quantized embedding ops. Without these imports loading fails with
        # "Missing operator".
        from executorch.extension.llm.custom_ops import custom_ops  # noqa: F401
        from executorch.runtime import Runtime
    except ImportError as e:
        raise BackendUnavailableError(
            f"the ExecuTorch runtime is not installed ({e.name}); install pocketlm[executorch]"
        ) from None
    return torch, Runtime


def configure_threads(threads: int | None) -> int:
    """Set XNNPACK's thread count once per process; returns the count in force."""
    global _threads_fixed
    from executorch.extension.pybindings import portable_lib

    if threads is None:
        return _threads_fixed or portable_lib._threadpool_get_thread_count()
    if threads < 1:
        raise BackendUnavailableError(f"threads must be >= 1, got {threads}")
    if _threads_fixed is None:
        portable_lib._unsafe_reset_threadpool(threads)
        _threads_fixed = threads
    elif _threads_fixed != threads:
        raise BackendUnavailableError(
            f"ExecuTorch's thread pool is already set to {_threads_fixed} threads in this process; "
            "it cannot be resized after a program has run (start a new process)"
        )
    return threads


class ExecuTorchEngine(Engine):
    name = "executorch"

    def __init__(self, bundle, threads: int | None = None, enable_etdump: bool = False):
        super().__init__(bundle, threads)
        self.enable_etdump = enable_etdump
        self._run = self._prefill = None  # each method as a callable: inputs -> outputs
        self._program = None

    @classmethod
    def unavailable_reason(cls, runtime: dict | None = None) -> str | None:
        if runtime and runtime.get("delegate") == "coreml" and platform.system() != "Darwin":
            return ("this .pte delegates to Core ML, which runs on macOS/iOS; "
                    "this bundle can be inspected here but not run")
        return None

    @classmethod
    def prepare(cls) -> None:
        _import_runtime()

    def load(self) -> None:
        reason = self.unavailable_reason(self.bundle.runtime)
        if reason:
            raise BackendUnavailableError(reason)
        torch, Runtime = _import_runtime()
        self._torch = torch
        self._step_token = torch.zeros((1, 1), dtype=torch.long)
        self._step_pos = torch.zeros((1,), dtype=torch.long)
        # numpy views of the same memory: writing through them costs ~0.1 µs, torch indexing ~5 µs
        self._step_views = (self._step_token.numpy(), self._step_pos.numpy())
        self.threads = configure_threads(self.threads)
        if self.threads > 1 and not mkl_threads.pool_pinned():
            warnings.warn(
                "torch was imported before pocketlm, so libtorch's MKL runs multi-threaded inside ExecuTorch's "
                "thread pool, where its attention kernel calls it: decode can be several times slower past "
                "~100 cached tokens. Let pocketlm import torch first, or set MKL_NUM_THREADS=1 before torch loads.",
                RuntimeWarning, stacklevel=3)
        path = self.bundle.file(self.bundle.runtime["program"])
        try:
            self._program = Runtime.get().load_program(path, enable_etdump=self.enable_etdump)
            self._run = _invoker(self._program.load_method("forward"))
            # Bundles with a prefill method (attention in XNNPACK) run prompts through it: 2x faster
            # attention on long prompts; it shares the KV cache with forward, which decodes.
            methods = self.bundle.runtime.get("methods", {})
            self._prefill = _invoker(self._program.load_method("prefill")) if "prefill" in methods else None
        except RuntimeError as e:
            raise BundleError(f"ExecuTorch could not load {path.name}: {e}") from None
        global _threads_fixed
        _threads_fixed = self.threads  # a program has run with this pool: from now on it is fixed

    def _forward(self, tokens: Sequence[int], start: int) -> np.ndarray:
        torch = self._torch
        if len(tokens) == 1:  # a decode step: refill two preallocated tensors instead of building new ones
            token_view, pos_view = self._step_views
            token_view[0, 0] = tokens[0]
            pos_view[0] = start
            inputs, run = [self._step_token, self._step_pos], self._run
        elif self._prefill is not None:
            inputs = [torch.tensor([list(tokens)], dtype=torch.long), torch.arange(start + len(tokens))]
            run = self._prefill
        else:
            inputs = [torch.tensor([list(tokens)], dtype=torch.long), torch.tensor([start], dtype=torch.long)]
            run = self._run
        t0 = time.perf_counter()
        with mkl_threads.single_threaded():  # this thread is the pool's worker 0 (see mkl_threads)
            out = run(inputs)
        self.runtime_seconds += time.perf_counter() - t0
        # The runtime reuses its output buffer on the next call: copy the logits out (numpy, one thread).
        return out[0].numpy().reshape(-1).copy()

    def write_etdump(self, path, debug_buffer_path) -> None:
        """Write the events recorded since load (needs enable_etdump=True) for executorch.devtools.Inspector."""
        if not self.enable_etdump:
            raise BackendUnavailableError("this engine was loaded without enable_etdump=True")
        self._program.write_etdump_result_to_file(str(path), str(debug_buffer_path))

    def close(self) -> None:
        self._run = self._prefill = None
        self._program = None


def _invoker(method):
    """Calls `method` through the pybind method under executorch.runtime's wrapper where there is one: it can
    return the program's own output buffer instead of a torch clone of it. That clone (49k+ floats) runs on
    torch's OpenMP pool, whose spinning worker then competes with XNNPACK's for the cores (decode ~25% slower)."""
    raw = getattr(method, "_method", None)
    if raw is None:  # a future wrapper that hides it: its own execute (a clone per call)
        return method.execute
    return lambda inputs: raw(inputs, clone_outputs=False)

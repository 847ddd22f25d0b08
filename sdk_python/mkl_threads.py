"""Keep libtorch's MKL single-threaded on the threads that run ExecuTorch programs.

The pip wheel's attention kernel (`llama::custom_sdpa`, in libcustom_ops_aot_lib.so, which links
libtorch) does its small per-head matmuls with libtorch's MKL, from inside ExecuTorch's thread pool.
A pool thread never set an MKL thread count of its own, so MKL gives it the process-wide default
(every core) and starts an OpenMP team for every call; that team's spinning threads then fight
XNNPACK's workers for the same cores. Measured on SmolLM2-135M 8da4w, 2 threads: decode fell from
~280 to ~40 tok/s once ~110 tokens were cached (MKL goes parallel above a size), prefill ran at 60%.

MKL reads MKL_NUM_THREADS once, when libtorch loads, as the count for every thread without one of
its own; torch gives the threads it runs its own ops on a thread-local count. So:
- `import_torch()` imports torch with MKL_NUM_THREADS=1 (pool threads stay single-threaded), then
  gives torch's own ops their default thread count back (`torch.set_num_threads`);
- `single_threaded()` sets the calling thread's own MKL count to 1 for one program call (the caller
  joins ExecuTorch's pool as worker 0) and restores it after.
A torch imported before pocketlm could do this keeps MKL's default: `pool_pinned()` says so.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import threading
from pathlib import Path

_mkl = None


def import_torch():
    """Import torch (once per process) so that MKL stays single-threaded on threads torch does not own."""
    if "torch" in sys.modules:
        import torch

        return torch
    preset = os.environ.get("MKL_NUM_THREADS")
    if preset is None:
        os.environ["MKL_NUM_THREADS"] = "1"
    try:
        import torch
    finally:
        if preset is None:
            del os.environ["MKL_NUM_THREADS"]  # read already; child processes must not inherit it
    if preset is None:
        # torch took its own default from MKL_NUM_THREADS too: give it back what it would have chosen
        # (OMP_NUM_THREADS, else one per core, the same default as its inter-op pool).
        omp = os.environ.get("OMP_NUM_THREADS", "")
        torch.set_num_threads(int(omp) if omp.isdigit() and int(omp) > 0 else torch.get_num_interop_threads())
    return torch


def pool_pinned() -> bool:
    """Whether MKL runs single-threaded on threads torch does not own, such as ExecuTorch's pool
    (asked of MKL from a new thread, which sees exactly what a pool thread sees)."""
    if _library() is None:
        return True  # a torch without MKL: nothing to pin
    seen = []
    probe = threading.Thread(target=lambda: seen.append(max_threads()))
    probe.start()
    probe.join()
    return seen == [1]


def _library():
    """libtorch_cpu's MKL service functions, or None for a torch built without MKL."""
    global _mkl
    if _mkl is None:
        import torch

        try:
            lib = ctypes.CDLL(str(Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"))
            lib.MKL_Set_Num_Threads_Local.argtypes = [ctypes.c_int]
            lib.MKL_Get_Max_Threads.argtypes = []
            _mkl = lib
        except (OSError, AttributeError):
            _mkl = False
    return _mkl or None


def max_threads() -> int | None:
    """MKL's thread count for the calling thread (None without MKL)."""
    lib = _library()
    return lib.MKL_Get_Max_Threads() if lib else None


@contextlib.contextmanager
def single_threaded():
    """The calling thread's MKL thread count at 1 inside the block, restored after."""
    lib = _library()
    if lib is None:
        yield
        return
    previous = lib.MKL_Set_Num_Threads_Local(1)  # returns the thread's previous own count (0: none)
    try:
        yield
    finally:
        lib.MKL_Set_Num_Threads_Local(previous)

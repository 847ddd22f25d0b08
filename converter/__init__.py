"""Ahead-of-time conversion: model sources, export, compression, lowering, validation."""

from pocketlm.mkl_threads import import_torch as _import_torch

# The converter runs its bundles too (parity, perplexity): torch must load with MKL pinned for
# ExecuTorch's thread pool, and this package is where it first loads (see pocketlm.mkl_threads).
try:
    _import_torch()
except ImportError:  # the SDK without torch: the converter's modules say what to install when used
    pass

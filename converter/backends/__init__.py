"""Lowering backends: (target, delegate) -> the module that lowers a Decoder into a bundle.

Each module provides `PROGRAM_FILE`, `ENGINE` (the SDK engine that runs its
output), `check_available()` and `lower(...)`. Adding a backend is adding a
module and a line here.
"""

from __future__ import annotations

from importlib import import_module

from pocketlm.errors import BackendUnavailableError

BACKENDS: dict[tuple[str, str], str] = {
    ("executorch", "xnnpack"): "pocketlm.converter.backends.executorch_xnnpack",
}
TARGETS = sorted({t for t, _ in BACKENDS})
DEFAULT_DELEGATE = {"executorch": "xnnpack"}


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

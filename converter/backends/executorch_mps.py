"""ExecuTorch with the MPS delegate (Metal on Apple GPUs).

The executorch wheel for Linux (1.5.1) ships no `executorch.backends.apple.mps`: the
MPS backend is built from source on macOS. This entry exists so that
`--delegate mps` is refused by name, with what to do, instead of "unknown delegate";
where the module is importable the refusal says the lowering is not written yet.
"""

from __future__ import annotations

from pocketlm.errors import BackendUnavailableError


def check_available() -> None:
    try:
        import executorch.backends.apple.mps  # noqa: F401
    except ImportError:
        raise BackendUnavailableError(
            "the installed executorch has no MPS backend (executorch.backends.apple.mps): the PyPI wheels do not "
            "include it. Build ExecuTorch from source on macOS with EXECUTORCH_BUILD_MPS=ON to use --delegate mps; "
            "on Apple GPUs --target coreml --compute-units cpu_and_gpu is the supported path"
        ) from None
    raise BackendUnavailableError(
        "executorch.backends.apple.mps is installed, but pocketlm's MPS lowering is not implemented; "
        "use --target coreml --compute-units cpu_and_gpu"
    )

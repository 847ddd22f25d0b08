"""The bundle: one folder, one manifest.json, every file hashed. Read here, written here.

Readers refuse what they do not understand: a newer schema, a missing or altered
file. Writers never leave a half bundle: everything is built in a temporary
folder beside the target and renamed into place at the end.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .errors import BundleError

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"


def manifest_schema() -> dict:
    return json.loads(resources.files("pocketlm").joinpath("schemas/manifest.schema.json").read_text())


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _payload_files(root: Path) -> list[Path]:
    """Every file in the bundle except the manifest (folders such as .mlpackage included)."""
    return sorted(p for p in root.rglob("*") if p.is_file() and p.relative_to(root).as_posix() != MANIFEST)


@dataclass
class Bundle:
    path: Path
    manifest: dict

    @property
    def name(self) -> str:
        return self.manifest["name"]

    @property
    def runtime(self) -> dict:
        return self.manifest["runtime"]

    def file(self, relative: str) -> Path:
        return self.path / relative


def read_bundle(path: str | os.PathLike, verify: bool = True) -> Bundle:
    """Read and check a bundle folder; with verify=True every file's sha256 is checked."""
    root = Path(path)
    if not root.is_dir():
        raise BundleError(f"{root} is not a bundle folder (no such directory)")
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        raise BundleError(f"{root} is not a bundle: {MANIFEST} is missing")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BundleError(f"{manifest_path} is not valid JSON ({e})") from None
    version = manifest.get("schema_version") if isinstance(manifest, dict) else None
    if not isinstance(version, int):
        raise BundleError(f"{manifest_path} has no integer schema_version")
    if version > SCHEMA_VERSION:
        raise BundleError(
            f"{root} was written with bundle schema {version}; this pocketlm reads up to {SCHEMA_VERSION} "
            "(upgrade pocketlm)"
        )
    validate_manifest(manifest, where=str(manifest_path))
    bundle = Bundle(root, manifest)
    if verify:
        verify_files(bundle)
    return bundle


def validate_manifest(manifest: dict, where: str = "manifest") -> None:
    import jsonschema

    try:
        jsonschema.validate(manifest, manifest_schema())
    except jsonschema.ValidationError as e:
        field = "/".join(str(p) for p in e.absolute_path) or "(top level)"
        raise BundleError(f"{where} does not follow the bundle schema at {field}: {e.message}") from None


def verify_files(bundle: Bundle) -> None:
    listed = bundle.manifest["files"]
    for relative, entry in listed.items():
        p = bundle.path / relative
        if not p.is_file():
            raise BundleError(f"bundle {bundle.path} is incomplete: {relative} is missing")
        if p.stat().st_size != entry["bytes"] or sha256_file(p) != entry["sha256"]:
            raise BundleError(f"bundle {bundle.path} failed its integrity check: {relative} does not match its sha256")
    extra = [p.relative_to(bundle.path).as_posix() for p in _payload_files(bundle.path)]
    unlisted = sorted(set(extra) - set(listed))
    if unlisted:
        raise BundleError(f"bundle {bundle.path} holds files its manifest does not list: {', '.join(unlisted)}")


def seal_manifest(staging: Path, manifest: dict) -> dict:
    """Hash every file in `staging`, add the file table, validate, and write manifest.json."""
    manifest = dict(manifest)
    manifest["schema_version"] = SCHEMA_VERSION
    manifest["files"] = {
        p.relative_to(staging).as_posix(): {"sha256": sha256_file(p), "bytes": p.stat().st_size}
        for p in _payload_files(staging)
    }
    validate_manifest(manifest, where="the manifest being written")
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    return manifest


@contextmanager
def staged_bundle(target: str | os.PathLike, force: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside `target`; on success it is renamed to `target`.

    On any error or Ctrl-C the temporary folder is removed and `target` is untouched.
    """
    target = Path(target).absolute()
    if target.exists() and not force:
        raise BundleError(f"{target} already exists (use --force to replace it)")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.partial-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        yield staging
        if target.exists():
            old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
            target.rename(old)
            staging.rename(target)
            shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink()
        else:
            staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise

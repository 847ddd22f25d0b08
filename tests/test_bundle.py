"""The bundle contract: manifest round trip, integrity, schema versions, atomic writes."""

import json
import shutil
from pathlib import Path

import pytest

from pocketlm.bundle import SCHEMA_VERSION, read_bundle, seal_manifest, staged_bundle
from pocketlm.errors import BundleError

REPO = Path(__file__).resolve().parents[1]


def _copy(bundle, tmp_path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(bundle, dst)
    return dst


def _edit_manifest(path: Path, edit) -> None:
    m = json.loads((path / "manifest.json").read_text())
    edit(m)
    (path / "manifest.json").write_text(json.dumps(m))


def test_manifest_round_trip(tiny_bundle, tmp_path):
    bundle = read_bundle(tiny_bundle("llama", "fp32"))
    m = bundle.manifest
    assert m["schema_version"] == SCHEMA_VERSION and m["model"]["family"] == "llama"
    assert set(m["files"]) == {"model.pte", "tokenizer.json", "tokenizer_config.json"}
    assert m["tokenizer"]["chat_template"] and m["tokenizer"]["eos_token_ids"] == [2]
    assert m["runtime"]["methods"]["forward"]["inputs"][0]["name"] == "tokens"
    # Sealing the same payload again gives the same file table and a manifest that reads back equal.
    staging = _copy(bundle.path, tmp_path)
    (staging / "manifest.json").unlink()
    resealed = seal_manifest(staging, {k: v for k, v in m.items() if k != "files"})
    assert resealed["files"] == m["files"]
    assert read_bundle(staging).manifest == resealed


def test_tampered_file_is_refused(tiny_bundle, tmp_path):
    b = _copy(tiny_bundle("llama", "fp32"), tmp_path)
    with open(b / "model.pte", "r+b") as f:
        f.seek(2000)
        byte = f.read(1)
        f.seek(2000)
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(BundleError, match="model.pte does not match its sha256"):
        read_bundle(b)
    read_bundle(b, verify=False)  # explicit opt-out still reads the manifest


def test_missing_and_unlisted_files_are_refused(tiny_bundle, tmp_path):
    b = _copy(tiny_bundle("llama", "fp32"), tmp_path)
    (b / "extra.bin").write_bytes(b"x")
    with pytest.raises(BundleError, match="does not list: extra.bin"):
        read_bundle(b)
    (b / "extra.bin").unlink()
    (b / "tokenizer.json").unlink()
    with pytest.raises(BundleError, match="tokenizer.json is missing"):
        read_bundle(b)


def test_newer_schema_is_refused(tiny_bundle, tmp_path):
    b = _copy(tiny_bundle("llama", "fp32"), tmp_path)
    _edit_manifest(b, lambda m: m.update(schema_version=SCHEMA_VERSION + 1))
    with pytest.raises(BundleError, match=f"schema {SCHEMA_VERSION + 1}; this pocketlm reads up to {SCHEMA_VERSION}"):
        read_bundle(b)


def test_manifest_that_breaks_the_schema_is_refused(tiny_bundle, tmp_path):
    b = _copy(tiny_bundle("llama", "fp32"), tmp_path)
    _edit_manifest(b, lambda m: m["runtime"].update(backend="onnx"))
    with pytest.raises(BundleError, match="runtime/backend"):
        read_bundle(b)
    (b / "manifest.json").write_text("{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        read_bundle(b)


def test_not_a_bundle(tmp_path):
    with pytest.raises(BundleError, match="no such directory"):
        read_bundle(tmp_path / "nope")
    with pytest.raises(BundleError, match="manifest.json is missing"):
        read_bundle(tmp_path)


def test_staged_bundle_is_atomic(tmp_path):
    target = tmp_path / "out"
    with pytest.raises(RuntimeError):
        with staged_bundle(target) as staging:
            (staging / "model.pte").write_bytes(b"half")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []  # no target, no leftover temporary folder

    with staged_bundle(target) as staging:
        (staging / "a").write_text("1")
    assert (target / "a").read_text() == "1"
    with pytest.raises(BundleError, match="already exists"):
        with staged_bundle(target):
            pass
    with staged_bundle(target, force=True) as staging:
        (staging / "b").write_text("2")
    assert sorted(p.name for p in target.iterdir()) == ["b"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


@pytest.mark.parametrize(
    "name", ["manifest.schema.json", "benchmark-result.schema.json", "profile-report.schema.json"]
)
def test_docs_schemas_are_the_packaged_schemas(name):
    packaged = (REPO / "sdk_python" / "schemas" / name).read_text()
    assert json.loads((REPO / "docs" / name).read_text()) == json.loads(packaged)


def test_docs_example_is_the_shared_device_vector():
    vector = REPO / "tests" / "vectors" / "benchmark-result-android.json"
    assert json.loads((REPO / "docs" / "benchmark-result.example.json").read_text()) == json.loads(vector.read_text())

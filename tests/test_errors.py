"""Bad input: one clear line, a non-zero exit code, no traceback, and never a partial bundle."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from shared_checks import unknown_family_folder

from pocketlm.cli import main


def cli(capsys, *args):
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def assert_one_line_error(code, err, pattern):
    assert code != 0
    lines = [line for line in err.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and pattern in lines[0], err
    assert "Traceback" not in err


def test_missing_model_file(capsys, tmp_path):
    code, _, err = cli(capsys, "convert", str(tmp_path / "missing.gguf"), "-o", str(tmp_path / "out"))
    assert_one_line_error(code, err, "no such GGUF file")
    assert not (tmp_path / "out").exists()


def test_nothing_at_all(capsys, tmp_path):
    code, _, err = cli(capsys, "convert", str(tmp_path / "nope"), "-o", str(tmp_path / "out"))
    assert_one_line_error(code, err, "no such file or folder")


def _write_gguf(path: Path, arch: str) -> Path:
    import gguf

    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.zeros((8, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_gguf_of_unknown_architecture(capsys, tmp_path):
    path = _write_gguf(tmp_path / "model.gguf", "mamba")
    code, _, err = cli(capsys, "convert", str(path), "-o", str(tmp_path / "out"))
    assert_one_line_error(code, err, "GGUF architecture 'mamba' is not supported")


def test_truncated_gguf(capsys, tmp_path):
    path = _write_gguf(tmp_path / "full.gguf", "llama")
    data = path.read_bytes()
    (tmp_path / "cut.gguf").write_bytes(data[: len(data) - 64])
    code, _, err = cli(capsys, "convert", str(tmp_path / "cut.gguf"), "-o", str(tmp_path / "out"))
    assert_one_line_error(code, err, "truncated")
    (tmp_path / "junk.gguf").write_bytes(b"PK\x03\x04 not a gguf")
    code, _, err = cli(capsys, "convert", str(tmp_path / "junk.gguf"), "-o", str(tmp_path / "out"))
    assert_one_line_error(code, err, "is not a GGUF file")


def test_pickle_checkpoints_are_refused_never_unpickled(capsys, tmp_path, tiny_model_dir):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    import pickle

    (tmp_path / "model.bin").write_bytes(pickle.dumps(Evil()))
    code, _, err = cli(capsys, "convert", str(tmp_path / "model.bin"), "-o", str(tmp_path / "out"))
    assert_one_line_error(code, err, "pickle checkpoint")
    folder = tmp_path / "hf"
    shutil.copytree(tiny_model_dir("llama"), folder)
    for f in folder.glob("*.safetensors"):
        f.unlink()
    shutil.copy(tmp_path / "model.bin", folder / "pytorch_model.bin")
    code, _, err = cli(capsys, "convert", str(folder), "-o", str(tmp_path / "out"))
    assert_one_line_error(code, err, "pickle checkpoint")
    assert not marker.exists()


def test_truncated_safetensors(capsys, tmp_path, tiny_model_dir):
    folder = tmp_path / "hf"
    shutil.copytree(tiny_model_dir("llama"), folder)
    weights = next(folder.glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:1000])
    code, _, err = cli(capsys, "convert", str(folder), "-o", str(tmp_path / "out"))
    assert_one_line_error(code, err, "weights could not be read")
    assert not (tmp_path / "out").exists()


def test_unknown_family_in_a_folder(capsys, tmp_path, tiny_model_dir):
    folder = unknown_family_folder(tiny_model_dir("llama"), tmp_path / "hf")
    code, _, err = cli(capsys, "convert", str(folder), "-o", str(tmp_path / "out"))
    assert_one_line_error(code, err, "model family 'gpt2' is not supported")


def test_hub_id_without_network_is_a_clear_error(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the hub is unreachable here either way; offline fails fast
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    code, _, err = cli(capsys, "convert", "HuggingFaceTB/SmolLM2-135M-Instruct", "-o", str(tmp_path / "out"))
    assert_one_line_error(code, err, "could not fetch HuggingFaceTB/SmolLM2-135M-Instruct from the Hugging Face Hub")


def test_group_size_that_does_not_divide_is_reported_by_name(capsys, tmp_path, tiny_model_dir):
    # hidden 64 and intermediate 128: 96 divides neither (and is a multiple of 32, as XNNPACK needs)
    code, _, err = cli(capsys, "convert", str(tiny_model_dir("llama")), "-o", str(tmp_path / "out"),
                       "--group-size", "96", "--max-context", "32", "--max-prefill", "8")
    assert_one_line_error(code, err, "group size 96 does not divide the input width of 15 linear layers")
    assert "model.layers.0" in err or "layers.0" in err
    assert "group sizes that fit every layer: 32, 64" in err
    assert not (tmp_path / "out").exists() and list(tmp_path.iterdir()) == []


def test_skipped_layers_are_listed_in_the_manifest(tiny_bundle):
    import pocketlm

    # hidden 64 / intermediate 128: group 128 fits only down_proj (input 128)
    manifest = pocketlm.load(tiny_bundle("llama", "8da4w", group_size=128, allow_skip=True)).manifest
    skipped = {s["name"] for s in manifest["compression"]["skipped_layers"]}
    assert "layers.0.self_attn.q_proj" in skipped and "lm_head" in skipped
    assert "layers.0.mlp.down_proj" in manifest["compression"]["quantized_layers"]
    assert all("not divisible by group size 128" in s["reason"] for s in manifest["compression"]["skipped_layers"])


def test_existing_output_is_refused_unless_forced(capsys, tmp_path, tiny_model_dir):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep").write_text("mine")
    code, _, err = cli(capsys, "convert", str(tiny_model_dir("llama")), "-o", str(out))
    assert_one_line_error(code, err, "already exists (use --force")
    assert (out / "keep").read_text() == "mine"


def test_tampered_bundle_and_newer_schema(capsys, tiny_bundle, tmp_path):
    b = tmp_path / "b"
    shutil.copytree(tiny_bundle("llama", "fp32"), b)
    tok = b / "tokenizer.json"
    tok.write_text(tok.read_text().replace('"<unk>"', '"<UNK>"', 1))
    code, _, err = cli(capsys, "run", str(b), "hello")
    assert_one_line_error(code, err, "tokenizer.json does not match its sha256")
    shutil.rmtree(b)
    shutil.copytree(tiny_bundle("llama", "fp32"), b)
    m = json.loads((b / "manifest.json").read_text())
    m["schema_version"] = 99
    (b / "manifest.json").write_text(json.dumps(m))
    code, _, err = cli(capsys, "info", str(b))
    assert_one_line_error(code, err, "schema 99")


def test_prompt_longer_than_the_context(capsys, tiny_bundle):
    code, _, err = cli(capsys, "run", str(tiny_bundle("llama", "fp32")), "word " * 200, "--raw")
    assert_one_line_error(code, err, "this bundle's context is 64")


def test_bad_cli_option_values(capsys, tiny_model_dir, tmp_path):
    code, _, err = cli(capsys, "convert", str(tiny_model_dir("llama")), "-o", str(tmp_path / "o"), "--quant", "int3")
    assert_one_line_error(code, err, "unknown quantization 'int3'")
    code, _, err = cli(capsys, "convert", str(tiny_model_dir("llama")), "-o", str(tmp_path / "o"), "--target", "onnx")
    assert_one_line_error(code, err, "no backend for target 'onnx'")
    code, _, err = cli(capsys, "pull", "llama-70b")
    assert_one_line_error(code, err, "unknown model 'llama-70b'")


def test_ctrl_c_during_conversion_leaves_nothing(tmp_path, tiny_model_dir):
    out = tmp_path / "bundle"
    proc = subprocess.Popen(
        [sys.executable, "-m", "pocketlm", "convert", str(tiny_model_dir("gemma3")), "-o", str(out),
         "--max-context", "64", "--max-prefill", "16"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    # Wait until the conversion is under way (the staging folder exists), then interrupt it.
    deadline = time.time() + 120
    while time.time() < deadline and not any(p.name.startswith(".bundle.partial") for p in tmp_path.iterdir()):
        time.sleep(0.2)
    time.sleep(3)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted: no bundle was written" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []

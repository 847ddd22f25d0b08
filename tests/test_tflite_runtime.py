"""`--compat tflite-runtime`: the program runs in the old tflite-runtime 2.14 (its own numpy 1.x
environment, built by scripts/setup.sh) and gives the logits ai-edge-litert gives."""

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

import pocketlm

pytest.importorskip("litert_torch")

TFRT_PYTHON = os.environ.get("POCKETLM_TFLITE_RUNTIME_PYTHON")
SCRIPT = Path(__file__).parent.parent / "scripts" / "tflite_runtime_check.py"
TOKENS = [int(t) for t in np.random.default_rng(3).integers(3, 384, size=24)]


def _in_tflite_runtime(bundle: Path, out: Path) -> np.ndarray:
    if not TFRT_PYTHON:
        pytest.skip("needs the tflite-runtime 2.14 environment: `make test` builds .venv-tflite-runtime "
                    "and sets POCKETLM_TFLITE_RUNTIME_PYTHON")
    subprocess.run(
        [TFRT_PYTHON, str(SCRIPT), str(bundle), str(out), "--tokens", ",".join(map(str, TOKENS))],
        check=True, capture_output=True, text=True, timeout=300,
    )
    return np.load(out)


def test_fp32_program_gives_the_same_logits_in_tflite_runtime(tiny_bundle, tmp_path):
    bundle = tiny_bundle("llama", "fp32", target="tflite", prefill_lengths=(8,), compat="tflite-runtime")
    old = _in_tflite_runtime(bundle, tmp_path / "old.npy")
    with pocketlm.load(bundle) as model:
        new = np.stack([model.engine.decode(t) for t in TOKENS])
    np.testing.assert_allclose(old, new, atol=1e-4)


def test_compat_is_recorded_and_unchecked_recipes_are_refused(tiny_bundle, tiny_model_dir, tmp_path):
    from rich.console import Console

    from pocketlm.converter.convert import convert
    from pocketlm.errors import ConversionError, RecipeError

    bundle = tiny_bundle("llama", "fp32", target="tflite", prefill_lengths=(8,), compat="tflite-runtime")
    assert pocketlm.load(bundle).manifest["runtime"]["compat"] == ["tflite-runtime==2.14.0"]
    # Qwen2/3 and Gemma 3 programs carry odml.rms_norm composites, which 2.14 cannot parse.
    with pytest.raises(ConversionError, match="composite ops"):
        convert(str(tiny_model_dir("qwen3")), tmp_path / "q", target="tflite", quant="fp32", max_context=64,
                prefill_lengths=[8], compat="tflite-runtime", console=Console(quiet=True))
    # int8 dynamic range loads in 2.14 but its kernels there give other logits (measured on SmolLM2:
    # top-1 0/40 against ai-edge-litert): refused, not written.
    with pytest.raises(RecipeError, match="not checked to run correctly in tflite-runtime==2.14.0"):
        convert(str(tiny_model_dir("llama")), tmp_path / "x", target="tflite", quant="int8",
                compat="tflite-runtime", console=Console(quiet=True))
    with pytest.raises(RecipeError, match="--compat tflite-runtime is not available for target executorch"):
        convert(str(tiny_model_dir("llama")), tmp_path / "y", compat="tflite-runtime", console=Console(quiet=True))
    assert not any((tmp_path / name).exists() for name in "qxy")

"""GGUF blocks carried into Core ML unchanged (--target coreml --quant gguf)."""

from __future__ import annotations

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")

from pocketlm.converter.gguf_grid import BLOCK, _to_grid, decode  # noqa: E402


@pytest.mark.parametrize("kind", ["Q4_0", "Q4_1", "Q8_0"])
def test_decoded_blocks_reproduce_llama_cpp_dequantization(kind):
    rng = np.random.default_rng(0)
    w = (rng.standard_normal((8, 4 * BLOCK)) * 0.05).astype(np.float32)
    w[3, :BLOCK] = 0.25  # a constant block (Q4_1 stores d = 0 there)
    qtype = gguf.GGMLQuantizationType[kind]
    raw = gguf.quants.quantize(w, qtype)
    expected = gguf.quants.dequantize(raw, qtype)
    codes, d, m = decode(raw, kind, *w.shape)
    grid = _to_grid("t", kind, codes, d, m)
    assert grid.data.shape == w.shape and grid.scale.shape == (8, 4)
    if kind != "Q8_0":
        assert grid.data.max() <= 15 and grid.data.dtype == np.uint8
    # what Core ML computes, scale * (data - offset), equals llama.cpp's own dequantization; Q4_1's
    # offset -m/d is rounded to float16, which moves a weight by float16 rounding of the block minimum
    tolerance = 1e-7 if m is None else np.repeat(np.abs(m.astype(np.float32)), BLOCK, axis=1) * 2**-10 + 1e-7
    assert np.all(np.abs(grid.dequantized() - expected) <= tolerance)
    assert np.abs(expected - w).max() > 0  # a real grid: the float weights are not on it


def test_a_source_without_a_gguf_file_is_refused_before_any_work(tiny_model_dir, tmp_path):
    from rich.console import Console

    from pocketlm.converter.convert import convert
    from pocketlm.errors import RecipeError

    with pytest.raises(RecipeError, match="must be a .gguf file or a named model"):
        convert(str(tiny_model_dir("llama")), tmp_path / "b", target="coreml", quant="gguf", max_context=64,
                max_prefill=16, console=Console(quiet=True))
    assert not (tmp_path / "b").exists()
    with pytest.raises(RecipeError, match="drop --embedding-quant"):
        convert(str(tiny_model_dir("llama")), tmp_path / "b", target="coreml", quant="gguf", embedding="int8",
                max_context=64, max_prefill=16)

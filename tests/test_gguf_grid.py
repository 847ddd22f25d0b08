"""GGUF blocks carried unchanged: into Core ML (--target coreml --quant gguf) and into ExecuTorch/XNNPACK
(--quant gguf: QB4W codes + an offset term)."""

from __future__ import annotations

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")

from pocketlm.converter.gguf_grid import BLOCK, GridLinear, _to_grid, decode  # noqa: E402


def _grid(w: np.ndarray, kind: str):
    qtype = gguf.GGMLQuantizationType[kind]
    raw = gguf.quants.quantize(w, qtype)
    return _to_grid("t", kind, *decode(raw, kind, *w.shape)), gguf.quants.dequantize(raw, qtype)


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


def _fake_quant_activations(x):
    """What XNNPACK's QD8 kernels see: int8 asymmetric per-token activations."""
    from torchao.quantization.quantize_.workflows.intx.intx_unpacked_to_int8_tensor import (
        _apply_int8_act_asym_per_token_quant_dequant,
    )

    return _apply_int8_act_asym_per_token_quant_dequant(x)


@pytest.mark.parametrize("kind", ["Q4_1", "Q4_0"])
def test_grid_linear_computes_the_files_weights_far_closer_than_requantizing(kind):
    import torch
    from torch import nn
    from torchao.quantization import quantize_

    from pocketlm.converter.recipes import LinearQuant, dynamic_activation_config

    rng = np.random.default_rng(1)
    w = (rng.standard_normal((96, 4 * BLOCK)) * 0.05 + rng.standard_normal((96, 1)) * 0.02).astype(np.float32)
    g, w_file = _grid(w, kind)
    x = torch.from_numpy(rng.standard_normal((1, 7, 4 * BLOCK)).astype(np.float32))
    # the file's weights on the activations the kernel sees: all GridLinear may differ by is the
    # bfloat16 scale and the int8 offset term
    reference = torch.nn.functional.linear(_fake_quant_activations(x), torch.from_numpy(w_file))
    lin = nn.Linear(4 * BLOCK, 96, bias=False)
    grid_out = GridLinear([lin], [g])(x)
    requant = nn.Linear(4 * BLOCK, 96, bias=False)
    requant.weight = nn.Parameter(torch.from_numpy(w_file.copy()))
    quantize_(requant, dynamic_activation_config(LinearQuant("8da4w", 4, 32, True)))
    grid_err = (grid_out - reference).abs().max().item()
    requant_err = (requant(x) - reference).abs().max().item()
    assert grid_err < 0.01 * reference.abs().max().item()
    assert grid_err * 5 < requant_err  # what 8da4w's second rounding costs


def test_grouped_grid_linears_equal_each_one_alone():
    import torch
    from torch import nn

    rng = np.random.default_rng(2)
    parts = [_grid((rng.standard_normal((n, 2 * BLOCK)) * 0.05).astype(np.float32), "Q4_1")[0] for n in (64, 32, 32)]
    linears = [nn.Linear(2 * BLOCK, p.data.shape[0], bias=False) for p in parts]
    x = torch.from_numpy(rng.standard_normal((1, 5, 2 * BLOCK)).astype(np.float32))
    grouped = GridLinear(linears, parts)(x)
    assert isinstance(grouped, tuple) and [t.shape[-1] for t in grouped] == [64, 32, 32]
    for out, lin, part in zip(grouped, linears, parts, strict=True):
        assert torch.allclose(out, GridLinear([lin], [part])(x), atol=1e-6)


def _fake_gguf_grids(monkeypatch):
    """read_grid for a tiny model that has no GGUF file: each weight put on a Q4_1 grid (the
    embedding on Q8_0) and the model's own weights replaced by that grid's dequantization, as
    transformers does when it reads a GGUF."""
    import torch

    from pocketlm.converter import gguf_grid

    def read_grid(path, hf_model):
        out = {}
        embed = hf_model.get_input_embeddings().weight
        for name, p in hf_model.named_parameters(remove_duplicate=False):
            if p.ndim != 2:
                continue
            kind = "Q8_0" if p.data_ptr() == embed.data_ptr() else "Q4_1"
            grid, dequantized = _grid(p.detach().float().numpy(), kind)
            with torch.no_grad():
                p.copy_(torch.from_numpy(dequantized))
            out[name] = grid
        return out

    monkeypatch.setattr(gguf_grid, "read_grid", read_grid)
    monkeypatch.setattr(gguf_grid, "require_gguf", lambda path: path)


@pytest.mark.parametrize("family", ["llama", "gemma3"])
def test_gguf_recipe_lowers_to_xnnpack_whole_and_matches_its_eager_model(tiny_model_dir, tiny_bundle, tmp_path,
                                                                          monkeypatch, family):
    from rich.console import Console

    import pocketlm
    from pocketlm.converter.convert import convert

    _fake_gguf_grids(monkeypatch)
    out = convert(str(tiny_model_dir(family)), tmp_path / "b", quant="gguf", max_context=64, max_prefill=16,
                  parity_tokens=40, console=Console(quiet=True))
    manifest = pocketlm.load(out).manifest
    parity = manifest["report"]["parity"]
    assert parity["vs_quantized_eager"]["max_abs_logit_diff"] < 0.05
    assert parity["vs_quantized_eager"]["mean_kl"] < 1e-3
    # (vs_float compares with the random weights before the fake grid rounded them: not a measure here;
    # what the grid costs is test_grid_linear_computes_the_files_weights_…)
    comp = manifest["compression"]
    assert comp["recipe"] == "gguf" and comp["linear"]["scheme"] == "gguf"
    assert any(n.endswith("q_proj") for n in comp["quantized_layers"]) and "embed_tokens" in comp["quantized_layers"]
    # the block sums, offset GEMMs and their adds all run inside XNNPACK: nothing falls out that does
    # not fall out of plain 8da4w too
    plain = pocketlm.load(tiny_bundle(family, "8da4w")).manifest["report"]["delegation"]["ops_outside_delegate"]
    assert manifest["report"]["delegation"]["ops_outside_delegate"] == plain


def test_gguf_recipe_refuses_bad_options_and_weights_it_cannot_keep(tiny_model_dir, tmp_path, monkeypatch):
    from rich.console import Console

    from pocketlm.converter import gguf_grid
    from pocketlm.converter.convert import convert
    from pocketlm.errors import RecipeError

    for options, message in (({"group_size": 64}, "blocks of 32"), ({"embedding": "int8"}, "drop --embedding-quant")):
        with pytest.raises(RecipeError, match=message):
            convert(str(tiny_model_dir("llama")), tmp_path / "b", quant="gguf", max_context=64, max_prefill=16,
                    console=Console(quiet=True), **options)
    # a file whose tensors are in other types (K-quants, F16): named, nothing written
    monkeypatch.setattr(gguf_grid, "read_grid", lambda path, hf_model: {})
    monkeypatch.setattr(gguf_grid, "require_gguf", lambda path: path)
    with pytest.raises(RecipeError, match="not in a block format ExecuTorch holds unchanged"):
        convert(str(tiny_model_dir("llama")), tmp_path / "b", quant="gguf", max_context=64, max_prefill=16,
                console=Console(quiet=True))
    assert not (tmp_path / "b").exists()

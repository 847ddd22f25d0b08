"""The int8 KV cache (ExecuTorch's quantized cache + llama::custom_quantized_sdpa) on tiny models."""

from __future__ import annotations

import pytest
import torch
from conftest import FAMILIES, TINY_CONTEXT

from pocketlm.errors import RecipeError


def _decoders(tiny_model_dir, family):
    from transformers import AutoModelForCausalLM

    from pocketlm.converter.decoder import Decoder, load_custom_ops

    load_custom_ops()
    hf = AutoModelForCausalLM.from_pretrained(tiny_model_dir(family)).eval()
    return (Decoder(hf, max_context=TINY_CONTEXT).eval(),
            Decoder(hf, max_context=TINY_CONTEXT, kv_cache="int8").eval())


def test_per_token_quantization_error_is_bounded():
    from pocketlm.converter.decoder import load_custom_ops, quantize_per_token

    load_custom_ops()
    x = torch.randn(1, 7, 3, 64) * torch.linspace(0.01, 10, 7).reshape(1, 7, 1, 1)  # very different token scales
    q, scales, zero_points = quantize_per_token(x)
    assert q.dtype == torch.int8 and scales.shape == zero_points.shape == (1, 7, 3, 1)
    back = (q.float() - zero_points.float()) * scales
    step = (x.amax(-1, keepdim=True) - x.amin(-1, keepdim=True)) / 255
    assert ((back - x).abs() <= step / 2 + 1e-6).all()  # within half a step of its own token's grid


@pytest.mark.parametrize("family", FAMILIES)
@torch.no_grad()
def test_int8_cache_stays_close_to_float(tiny_model_dir, family):
    from pocketlm.converter import parity

    ref, int8 = _decoders(tiny_model_dir, family)
    tokens = list(range(3, 3 + 40))  # past the sliding windows of qwen2 and gemma3
    cmp = parity.compare(parity.eager_logits(ref, tokens), parity.eager_logits(int8, tokens))
    assert cmp["top1_agreement"] >= 0.95 and cmp["mean_kl"] < 1e-3
    assert int8.kv_cache_bytes() < ref.kv_cache_bytes() / 2.5


def test_int8_cache_bundle_runs_and_reports(tiny_bundle):
    from pocketlm.bundle import read_bundle

    m = read_bundle(tiny_bundle("gemma3", "8da8w", kv_cache="int8")).manifest
    assert m["runtime"]["kv_cache"] == "int8"
    kv = m["report"]["kv_cache"]
    assert kv["dtype"] == "int8" and kv["bytes"] < kv["fp32_bytes"] / 2.5
    assert abs(kv["perplexity_cost_pct"]) < 1.0
    assert m["report"]["parity"]["vs_quantized_eager"]["top1_agreement"] >= 0.95
    assert "llama.custom_quantized_sdpa.default" in m["report"]["delegation"]["ops_outside_delegate"]
    ppl = m["report"]["perplexity"]
    assert ppl["measured_on"] == "the bundle's engine" and abs(ppl["delta_pct"]) < 5


@pytest.mark.parametrize("target", ["tflite", "coreml"])
def test_int8_cache_is_refused_where_the_target_has_none(target, tmp_path):
    from pocketlm.converter.convert import convert

    with pytest.raises(RecipeError, match=f"--kv-cache int8 is not available for {target}"):
        convert(str(tmp_path / "missing"), target=target, kv_cache="int8")

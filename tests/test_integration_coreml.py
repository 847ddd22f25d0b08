"""Core ML on the real SmolLM2-135M-Instruct: converted once per session (int8, ~2–3 min).

Linux cannot run it (Core ML predicts on Apple systems only); what it can check is
checked on the saved program: the states and inputs the app drives, every one of the
211 weights stored int8, and the accuracy of those stored weights against the float
model. Running it is a macOS test, skipped elsewhere.
"""

from __future__ import annotations

import platform

import pytest

from pocketlm.bundle import read_bundle

CONTEXT = 512


@pytest.fixture(scope="module")
def bundle(real_bundle):
    return read_bundle(real_bundle("smollm2-135m", "int8", CONTEXT, target="coreml"))


def test_program_has_the_contract_the_apps_drive(bundle):
    from pocketlm.coreml_program import load_program, summarize

    summary = summarize(load_program(bundle.file("model.mlpackage")))
    cache = [30, 1, 3, CONTEXT, 64]
    assert [(s["name"], s["shape"], s["dtype"]) for s in summary.states] == [
        ("key_cache", cache, "fp16"), ("value_cache", cache, "fp16")]
    assert {i["name"]: i["shape"] for i in summary.inputs} == {
        "input_ids": [1, "flexible"], "causal_mask": [1, 1, "flexible", "flexible"]}
    assert summary.outputs == ["logits"]
    # 30 layers x 7 linears + the embedding table the tied head shares
    assert len(summary.weights) == 211 and {w.storage for w in summary.weights} == {"int8"}
    assert bundle.manifest["runtime"]["methods"]["main"]["states"][0]["shape"] == cache


def test_stored_weights_keep_the_model(bundle):
    check = bundle.manifest["report"]["weights_check"]
    assert check["vs_float"]["top1_agreement"] >= 0.9
    assert check["perplexity"]["float"] < 20  # SmolLM2 on English Wikipedia prose: ~12.6
    assert abs(check["perplexity"]["delta_pct"]) < 2.0
    assert 120e6 < bundle.manifest["report"]["size_bytes"] < 160e6  # int8 weights: ~140 MB


@pytest.mark.skipif(platform.system() != "Darwin", reason="Core ML predicts on macOS only")
def test_answers_like_the_float_model_on_macos(bundle):
    from shared_checks import assert_greedy_chat_answers_paris

    assert_greedy_chat_answers_paris(bundle.path)


@pytest.fixture(scope="module")
def gguf_bundle(real_bundle):
    return read_bundle(real_bundle("smollm2-135m", "gguf", CONTEXT, target="coreml"))


def test_gguf_blocks_are_kept_exactly(gguf_bundle):
    """--quant gguf: SmolLM2's Q4_1 linears and Q8_0 embedding stored as the file holds them, so the
    stored weights are the float model's own (it is the dequantized GGUF): no second rounding."""
    from pocketlm.coreml_program import load_program, summarize

    summary = summarize(load_program(gguf_bundle.file("model.mlpackage")))
    storage = {(w.storage, w.block_size) for w in summary.weights}
    assert storage == {("uint4", 32), ("int8", 32)}
    assert [w.name for w in summary.weights if w.storage == "int8"] == ["decoder_embed_tokens_weight"]
    check = gguf_bundle.manifest["report"]["weights_check"]
    assert check["vs_float"]["top1_agreement"] >= 0.98
    assert abs(check["perplexity"]["delta_pct"]) < 0.2  # int4-block requantized: +56%
    assert gguf_bundle.manifest["report"]["size_bytes"] < 115e6

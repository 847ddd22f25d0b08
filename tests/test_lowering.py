"""Eager vs lowered .pte parity on tiny models of every family, read back through the SDK."""

import numpy as np
import pytest
from conftest import FAMILIES, TINY_CONTEXT, TINY_PREFILL
from shared_checks import hf_logits

import pocketlm


def _bundle_logits(bundle, tokens, split):
    """Logits at positions split-1 .. len-1: prefill tokens[:split] (chunked), then decode the rest."""
    with pocketlm.load(bundle) as model:
        rows = [model.engine.prefill(tokens[:split])]
        rows += [model.engine.decode(t) for t in tokens[split:]]
    return np.stack(rows)


@pytest.mark.parametrize("family", FAMILIES)
def test_fp32_bundle_matches_hugging_face(tiny_bundle, tiny_model_dir, family):
    bundle = tiny_bundle(family, "fp32")
    tokens = list(np.random.default_rng(0).integers(3, 384, size=40))
    split = 2 * TINY_PREFILL + 3  # longer than one prefill call: exercises chunking
    reference = hf_logits(tiny_model_dir(family), tokens)[split - 1 :]
    lowered = _bundle_logits(bundle, tokens, split)
    assert np.abs(lowered - reference).max() < 1e-3
    report = pocketlm.load(bundle).manifest["report"]["parity"]["vs_float"]
    assert report["top1_agreement"] == 1.0 and report["max_abs_logit_diff"] < 1e-3


@pytest.mark.parametrize("family", FAMILIES)
def test_8da4w_bundle_matches_its_quantized_eager_model(tiny_bundle, family):
    manifest = pocketlm.load(tiny_bundle(family, "8da4w")).manifest
    parity = manifest["report"]["parity"]
    # Lowering must not add error beyond kernel rounding; quantization itself may move logits more.
    assert parity["vs_quantized_eager"]["max_abs_logit_diff"] < 0.05
    assert parity["vs_quantized_eager"]["mean_kl"] < 1e-3
    assert parity["vs_float"]["mean_kl"] > parity["vs_quantized_eager"]["mean_kl"]
    comp = manifest["compression"]
    assert comp["linear"]["scheme"] == "8da4w" and comp["linear"]["group_size"] == 32
    assert comp["embedding"] == {"bits": 8, "group_size": 0} and "embed_tokens" in comp["quantized_layers"]
    assert not comp["skipped_layers"]
    assert manifest["report"]["delegation"]["delegate_calls"] > 0


@pytest.mark.parametrize("quant,options", [("8da8w", {}), ("int8", {}), ("8da4w", {"embedding": "int4"})])
def test_other_recipes_lower_correctly(tiny_bundle, quant, options):
    parity = pocketlm.load(tiny_bundle("llama", quant, **options)).manifest["report"]["parity"]
    assert parity["vs_quantized_eager"]["max_abs_logit_diff"] < 0.05
    assert parity["vs_float"]["top1_agreement"] >= 0.6


def test_quantized_bundle_is_smaller(tiny_bundle):
    fp32 = pocketlm.load(tiny_bundle("qwen2", "fp32")).manifest["files"]["model.pte"]["bytes"]
    q4 = pocketlm.load(tiny_bundle("qwen2", "8da4w")).manifest["files"]["model.pte"]["bytes"]
    assert q4 < fp32 * 0.6


def test_runtime_metadata_methods_are_in_the_program(tiny_bundle):
    from executorch.runtime import Runtime

    bundle = tiny_bundle("llama", "fp32")
    program = Runtime.get().load_program(bundle / "model.pte")
    assert {"forward", "get_max_seq_len", "get_max_context_len", "get_eos_ids"} <= set(program.method_names)
    assert program.load_method("get_max_context_len").execute([])[0] == TINY_CONTEXT
    assert program.load_method("get_max_seq_len").execute([])[0] == TINY_PREFILL


@pytest.mark.parametrize("family", ["llama", "gemma3"])
def test_prefill_method_equals_forward_and_keeps_attention_in_the_delegate(tiny_bundle, family):
    """The bundle's prefill method (attention as XNNPACK GEMMs) gives forward's logits, prompt chunk after
    chunk over a shared cache (gemma3: sliding layers past their window), and decode continues from it."""
    bundle = tiny_bundle(family, "8da4w", prefill_method=True)
    tokens = list(np.random.default_rng(3).integers(3, 384, size=2 * TINY_PREFILL + 8))
    with pocketlm.load(bundle) as model:
        engine = model.engine
        assert engine._prefill is not None
        with_prefill = [engine.prefill(tokens[: 2 * TINY_PREFILL + 5]), engine.decode(tokens[-3])]
        engine.reset()
        engine._prefill = None  # the forward-only path, as for a bundle without the method
        forward_only = [engine.prefill(tokens[: 2 * TINY_PREFILL + 5]), engine.decode(tokens[-3])]
    for a, b in zip(with_prefill, forward_only):
        assert np.abs(a - b).max() < 1e-3 and a.argmax() == b.argmax()
    delegation = pocketlm.load(bundle).manifest["report"]["delegation"]
    outside = delegation["prefill"]["ops_outside_delegate"]
    assert not {op for op in outside if "sdpa" in op or "bmm" in op or "softmax" in op or "view_copy" in op}, outside
    assert delegation["prefill"]["delegate_calls"] == delegation["delegate_calls"]
    plain = pocketlm.load(tiny_bundle(family, "8da4w")).manifest
    assert set(plain["runtime"]["methods"]) == {"forward"} and "prefill" not in plain["report"]["delegation"]


def test_prefill_method_is_refused_where_it_cannot_run(tmp_path):
    from pocketlm.converter.convert import convert
    from pocketlm.errors import RecipeError

    for options, message in (({"kv_cache": "int8"}, "float KV cache"), ({"target": "tflite"}, "xnnpack delegate")):
        with pytest.raises(RecipeError, match=message):
            convert(str(tmp_path / "missing"), tmp_path / "out", prefill_method=True, **options)
    assert not (tmp_path / "out").exists()


def test_one_token_program_is_static_and_matches_hugging_face(tiny_bundle, tiny_model_dir):
    """--max-prefill 1 exports forward with static shapes (torch.export has no Dim with min == max): prompts
    then run one token per call, and the logits still match the eager model."""
    from executorch.runtime import Runtime

    bundle = tiny_bundle("llama", "fp32", max_prefill=1)
    tokens = list(np.random.default_rng(5).integers(3, 384, size=12))
    reference = hf_logits(tiny_model_dir("llama"), tokens)[7:]
    assert np.abs(_bundle_logits(bundle, tokens, 8) - reference).max() < 1e-3
    program = Runtime.get().load_program(bundle / "model.pte")
    assert program.load_method("get_max_seq_len").execute([])[0] == 1
    assert pocketlm.load(bundle).manifest["runtime"]["constant_methods"]["enable_dynamic_shape"] is False

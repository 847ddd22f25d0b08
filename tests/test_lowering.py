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

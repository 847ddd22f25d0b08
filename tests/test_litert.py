"""The LiteRT (tflite) target on tiny models of every family: eager parity per recipe, the
recipe checks, the engine's prefill padding, and the errors."""

import json
import shutil

import numpy as np
import pytest
from conftest import FAMILIES, TINY_CONTEXT
from shared_checks import hf_logits, unknown_family_folder

import pocketlm
from pocketlm.bundle import read_bundle, seal_manifest
from pocketlm.converter import litert_recipes
from pocketlm.converter.backends import litert as litert_backend
from pocketlm.converter.tflite_program import check_applied, read_program
from pocketlm.errors import BackendUnavailableError, RecipeError

pytest.importorskip("litert_torch")

LENGTHS = (8, 16)
TFLITE = {"target": "tflite", "prefill_lengths": LENGTHS}
TOKENS = list(np.random.default_rng(1).integers(3, 384, size=44))
SPLIT = 2 * max(LENGTHS) + 5  # prefill = two full chunks and a padded one, then decode




def _engine_logits(bundle, runner=None):
    options = {"runner": runner} if runner else {}
    with pocketlm.load(bundle, **options) as model:
        rows = [model.engine.prefill(TOKENS[:SPLIT])]
        rows += [model.engine.decode(t) for t in TOKENS[SPLIT:]]
    return np.stack(rows)


def _requantized(float_bundle, quant, group_size, tmp_path):
    """The fp32 bundle with its program re-quantized by `quant` (the backend's own step), resealed."""
    out = tmp_path / quant
    shutil.copytree(float_bundle, out)
    manifest = json.loads((out / "manifest.json").read_text())
    recipe = litert_recipes.build_recipe(quant, group_size)
    facts = litert_backend.quantize_program(float_bundle / "model.tflite", recipe, out / "model.tflite")
    manifest["compression"] = {**recipe.describe(), "quantized_layers": facts["quantized_layers"]}
    seal_manifest(out, manifest)
    return out, facts


@pytest.mark.parametrize("family", FAMILIES)
def test_fp32_program_matches_hugging_face(tiny_bundle, tiny_model_dir, family):
    bundle = tiny_bundle(family, "fp32", **TFLITE)
    reference = hf_logits(tiny_model_dir(family), TOKENS)[SPLIT - 1 :]
    assert np.abs(_engine_logits(bundle) - reference).max() < 1e-3
    manifest = read_bundle(bundle).manifest
    assert manifest["runtime"]["backend"] == "litert"
    assert manifest["runtime"]["prefill_lengths"] == list(LENGTHS)
    assert manifest["report"]["parity"]["vs_float"]["top1_agreement"] == 1.0
    assert sorted(manifest["report"]["delegation"]["signatures"]) == ["decode", "prefill_16", "prefill_8"]


# Error budgets per recipe on random tiny models: their next-token distributions are nearly flat,
# so top-1 flips on tiny logit moves and only the near-lossless recipes are held to it; KL is the
# measure for all. The real-model test holds int8 to >= 0.9 top-1.
BUDGET = {"fp16": (0.99, 1e-5), "int8": (0.0, 1e-3), "int8-wo": (0.9, 1e-4), "int4": (0.0, 5e-3), "mixed": (0.0, 5e-3)}


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("quant", list(BUDGET))
def test_each_recipe_keeps_parity(tiny_bundle, family, quant, tmp_path):
    float_bundle = tiny_bundle(family, "fp32", **TFLITE)
    bundle, facts = _requantized(float_bundle, quant, 32, tmp_path)
    reference = _engine_logits(float_bundle)
    got = _engine_logits(bundle)
    from pocketlm.converter.parity import compare

    result = compare(reference, got)
    min_top1, max_kl = BUDGET[quant]
    assert result["top1_agreement"] >= min_top1, result
    assert result["mean_kl"] <= max_kl, result
    assert (bundle / "model.tflite").stat().st_size < (float_bundle / "model.tflite").stat().st_size
    assert facts["quantized_layers"]


def test_mixed_recipe_really_mixes(tiny_bundle, tmp_path):
    """int4 blocks in the transformer blocks, int8 per channel for the embedding and the head —
    read back from the stored weights, not taken from the recipe."""
    float_bundle = tiny_bundle("qwen2", "fp32", **TFLITE)  # untied head: embedding and head are separate
    _, facts = _requantized(float_bundle, "mixed", 32, tmp_path)
    types = facts["weight_types"]
    assert types["blocks"] == {"INT4/block32": 14}  # 2 layers x 7 linears
    assert types["embedding"] == {"INT8": 1}
    assert types["head"] == {"INT8": 1}
    _, plain = _requantized(float_bundle, "int4", 32, tmp_path / "plain")
    assert plain["weight_types"]["head"] == {"INT4/block32": 1}


def test_check_applied_catches_a_rule_that_matched_nothing(tiny_bundle):
    summary = read_program(tiny_bundle("llama", "fp32", **TFLITE) / "model.tflite")
    with pytest.raises(RecipeError, match="were not quantized as 8-bit"):
        check_applied(litert_recipes.build_recipe("int8"), summary)
    check_applied(litert_recipes.build_recipe("fp32"), summary)


def test_full_conversion_with_a_recipe(tiny_bundle):
    manifest = read_bundle(tiny_bundle("gemma3", "int8", **TFLITE)).manifest
    assert manifest["compression"]["recipe"] == "int8"
    assert manifest["report"]["delegation"]["weight_types"]["blocks"] == {"INT8": 14}
    assert manifest["report"]["parity"]["vs_float"]["top1_agreement"] >= 0.8


def test_both_runners_agree(tiny_bundle):
    bundle = tiny_bundle("llama", "fp32", **TFLITE)
    np.testing.assert_allclose(_engine_logits(bundle, "compiled"), _engine_logits(bundle, "interpreter"), atol=1e-5)


def test_prefill_near_the_end_of_the_context_does_not_pad_past_it(tiny_bundle):
    """Near the end of the cache no padded signature fits: the engine falls back to exact-size
    chunks (down to single decode steps) and still matches a fresh run."""
    bundle = tiny_bundle("llama", "fp32", **TFLITE)
    tokens = list(np.random.default_rng(2).integers(3, 384, size=TINY_CONTEXT))
    with pocketlm.load(bundle) as model:
        model.engine.prefill(tokens[:50])
        tail = model.engine.prefill(tokens[50:])  # 14 tokens at position 50: 8 + 1 x 5 + decode
        model.engine.reset()
        for t in tokens[:-1]:
            model.engine.decode(t)
        stepwise = model.engine.decode(tokens[-1])
    np.testing.assert_allclose(tail, stepwise, atol=1e-4)


@pytest.mark.parametrize(
    "quant,group,message",
    [
        ("int4", 128, "block size must be one of 32, 64"),
        ("int3", 32, "unknown LiteRT quantization 'int3'"),
    ],
)
def test_bad_recipes_are_refused(quant, group, message):
    with pytest.raises(RecipeError, match=message):
        litert_recipes.build_recipe(quant, group)


def test_block_size_that_does_not_divide_a_width_is_refused_by_name():
    recipe = litert_recipes.build_recipe("mixed", 64)
    widths = {"model.layers.0.mlp.down_proj": 96, "model.layers.0.mlp.up_proj": 64, "lm_head": 96}
    with pytest.raises(RecipeError, match=r"does not divide the input width of 1 layers \(model.layers.0.mlp.down_pro"):
        litert_recipes.check_block_size(recipe, widths)


def test_cli_errors_are_one_line(capsys, tmp_path, tiny_model_dir):
    from test_errors import assert_one_line_error, cli

    folder = unknown_family_folder(tiny_model_dir("llama"), tmp_path / "hf")
    code, _, err = cli(capsys, "convert", str(folder), "--target", "tflite", "-o", str(tmp_path / "a"))
    assert_one_line_error(code, err, "model family 'gpt2' is not supported")
    code, _, err = cli(capsys, "convert", str(tiny_model_dir("llama")), "--target", "tflite", "--quant", "int4",
                       "--group-size", "128", "-o", str(tmp_path / "b"))
    assert_one_line_error(code, err, "LiteRT int4 block size must be one of 32, 64, got 128")
    assert not any((tmp_path / name).exists() for name in "ab")


def test_executorch_options_are_refused_for_tflite_and_back(tiny_model_dir, tmp_path):
    from rich.console import Console

    from pocketlm.converter.convert import convert

    source, quiet = str(tiny_model_dir("llama")), Console(quiet=True)
    with pytest.raises(RecipeError, match="unknown LiteRT quantization '8da4w'"):
        convert(source, tmp_path / "a", target="tflite", quant="8da4w", console=quiet)
    with pytest.raises(RecipeError, match="--prefill-lengths is for static-shape targets"):
        convert(source, tmp_path / "b", quant="8da4w", prefill_lengths=[8], console=quiet)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_engine_without_the_runtime_says_what_to_install(monkeypatch, tiny_bundle):
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name.startswith("ai_edge_litert"):
            raise ImportError(name=name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(BackendUnavailableError, match=r"install pocketlm\[litert\]"):
        pocketlm.load(tiny_bundle("llama", "fp32", **TFLITE))


def test_all_zero_block_is_refused_before_export():
    import torch

    w = torch.randn(4, 64)
    w[2, 32:] = 0.0
    with pytest.raises(RecipeError, match=r"all-zero 32-blocks in model.layers.0.mlp.up_proj \(1\)"):
        litert_recipes.check_no_zero_blocks(litert_recipes.build_recipe("int4", 32), {"model.layers.0.mlp.up_proj": w})
    litert_recipes.check_no_zero_blocks(litert_recipes.build_recipe("int8"), {"model.layers.0.mlp.up_proj": w})


def test_defaults_follow_the_target():
    from pocketlm.converter.backends import get_backend
    from pocketlm.converter.convert import default_output_name

    assert get_backend("tflite").DEFAULT_QUANT == "int8" and get_backend("executorch").DEFAULT_QUANT == "8da4w"
    assert default_output_name("smollm2-135m", get_backend("tflite").NAME_TAG, "int8") == "smollm2-135m-litert-int8"
    assert default_output_name("x/Model.Q4_1.gguf", "xnnpack", "8da4w-g32") == "model.q4_1-xnnpack-8da4w-g32"

"""Core ML target and ExecuTorch's Core ML / MPS delegates on tiny models of every family.

What Linux can verify is verified: the torch graphs that are converted match the eager
decoder; the saved ML program has the states, flexible inputs and, for every weight,
the compression its recipe claims; the decompressed weights are what the accuracy
check measured. Running the programs needs macOS: those tests are at the end, skipped
elsewhere with the reason.
"""

from __future__ import annotations

import json
import platform

import numpy as np
import pytest
import torch
from conftest import FAMILIES, TINY_CONTEXT, TINY_PREFILL

from pocketlm.errors import BackendUnavailableError, ConversionError, RecipeError

ON_MAC = platform.system() == "Darwin"
mac_only = pytest.mark.skipif(not ON_MAC, reason="Core ML predicts on macOS only (coremltools: "
                              "'Model prediction is only supported on macOS')")
coremltools = pytest.importorskip("coremltools")

RECIPES = ["fp16", "int8", "int4-block", "palettize4", "palettize6", "palettize8", "prune50", "prune50+palettize4"]
# What every weight must be stored as: (storage, bits, block, lut group, sparsity)
EXPECTED = {
    "fp16": ("float16", 16, None, None, None),
    "int8": ("int8", 8, None, None, None),
    "int4-block": ("int4", 4, 32, None, None),
    "palettize4": ("palettized", 4, None, 32, None),
    "palettize6": ("palettized", 6, None, 32, None),
    "palettize8": ("palettized", 8, None, 32, None),
    "prune50": ("sparse", 16, None, None, 0.5),
    "prune50+palettize4": ("sparse+palettized", 4, None, 32, 0.5),
}


@pytest.fixture(scope="session")
def coreml_bundle(tiny_model_dir, tmp_path_factory):
    """coreml_bundle(family, quant, **options) -> bundle path (converted once per session)."""
    from rich.console import Console

    from pocketlm.converter.convert import convert

    cache = {}

    def get(family: str, quant: str = "int8", target: str = "coreml", **options):
        key = (family, quant, target, tuple(sorted(options.items())))
        if key not in cache:
            out = tmp_path_factory.mktemp("coreml") / f"{family}-{target}-{quant}"
            convert(str(tiny_model_dir(family)), out, target=target, quant=quant, max_context=TINY_CONTEXT,
                    max_prefill=TINY_PREFILL, parity_tokens=40, console=Console(quiet=True), **options)
            cache[key] = out
        return cache[key]

    return get


def _decoder(tiny_model_dir, family):
    from transformers import AutoModelForCausalLM

    from pocketlm.converter.decoder import Decoder, load_custom_ops

    load_custom_ops()
    hf = AutoModelForCausalLM.from_pretrained(tiny_model_dir(family)).eval()
    return Decoder(hf, max_context=TINY_CONTEXT).eval()


def _eager_all(decoder, tokens):
    from pocketlm.converter.parity import eager_logits

    return torch.from_numpy(eager_logits(decoder, tokens))


# ---------------------------------------------------------------- the torch graphs that get converted
@pytest.mark.parametrize("family", FAMILIES)
@torch.no_grad()
def test_stateful_decoder_matches_eager_in_chunks(tiny_model_dir, family):
    """Prefill in two chunks then decode, through the mask contract, past the sliding windows."""
    from pocketlm.converter.stateful_decoder import StatefulDecoder, causal_mask

    decoder = _decoder(tiny_model_dir, family)
    tokens = torch.randint(0, 384, (1, 40), generator=torch.Generator().manual_seed(1))
    ref = _eager_all(decoder, tokens[0].tolist())
    model = StatefulDecoder(decoder).eval()
    rows = [model(tokens[:, :12].int(), causal_mask(0, 12))[0],
            model(tokens[:, 12:25].int(), causal_mask(12, 13))[0]]
    rows += [model(tokens[:, p : p + 1].int(), causal_mask(p, 1))[0] for p in range(25, 39)]
    got = torch.stack(rows)
    want = ref[[11, 24, *range(25, 39)]]
    assert (got - want).abs().max() < 1e-4


@pytest.mark.parametrize("family", FAMILIES)
@torch.no_grad()
def test_step_decoder_matches_eager(tiny_model_dir, family):
    from pocketlm.converter.stateful_decoder import StepDecoder

    decoder = _decoder(tiny_model_dir, family)
    tokens = torch.randint(0, 384, (1, 30), generator=torch.Generator().manual_seed(2))
    ref = _eager_all(decoder, tokens[0].tolist())
    step = StepDecoder(decoder).eval()
    got = torch.stack([step(tokens[:, p : p + 1], torch.tensor([p]))[0] for p in range(30)])
    assert (got - ref).abs().max() < 1e-4


def test_norm_survives_float16_where_the_plain_form_does_not():
    """SmolLM2's residual stream reaches ~25,000: x * x overflows float16, the scaled form does not."""
    from pocketlm.converter.decoder import RMSNorm
    from pocketlm.converter.stateful_decoder import fp16_safe_rms_norm

    norm = RMSNorm(torch.linspace(0.5, 1.5, 64), 1e-5)
    x = torch.randn(1, 3, 64)
    x[..., 7] = 25000.0  # one outlier channel, as in the real model
    want = norm(x)
    half = RMSNorm(norm.weight.data, 1e-5).half()
    assert not torch.isfinite(half.weight * 0 + (x.half() * x.half())).all()  # the plain squares overflow
    got = fp16_safe_rms_norm(half, x.half()).float()
    assert torch.allclose(got, want, rtol=1e-2, atol=2e-3)
    assert torch.allclose(fp16_safe_rms_norm(norm, x), want, rtol=1e-5, atol=1e-6)  # exact in float32


def test_causal_mask_contract():
    """The engine's mask (numpy, float16) equals the converter's (torch) for prefill and decode."""
    from pocketlm.converter.stateful_decoder import causal_mask
    from pocketlm.engines.coreml_engine import mask_for

    for start, count in ((0, 5), (7, 1), (3, 4)):
        a = causal_mask(start, count).numpy()
        b = mask_for(start, count).astype(np.float32)
        assert a.shape == b.shape == (1, 1, count, start + count)
        assert np.array_equal(a, b)
        assert (a[0, 0, -1] == 0).all()  # the last token sees every cached position


# ---------------------------------------------------------------- the saved ML program
@pytest.mark.parametrize("quant", RECIPES)
def test_every_recipe_compresses_every_weight(coreml_bundle, quant):
    from pocketlm.bundle import read_bundle
    from pocketlm.coreml_program import decompressed_weights, load_program, summarize

    b = read_bundle(coreml_bundle("llama", quant))
    prog = load_program(b.file("model.mlpackage"))
    summary = summarize(prog)
    storage, bits, block, group, sparsity = EXPECTED[quant]
    assert len(summary.weights) == 15  # 2 layers x 7 linears + the embedding shared with the tied head
    for w in summary.weights:
        assert (w.storage, w.bits, w.block_size, w.lut_group_size) == (storage, bits, block, group), w
        if sparsity is not None:
            assert abs(w.sparsity - sparsity) < 0.02
    embedding = next(w for w in summary.weights if "gather" in w.used_by)
    assert "linear" in embedding.used_by  # tied: one constant for the embedding and the head

    # The numbers the accuracy check used are the stored ones: their structure shows the compression.
    values = decompressed_weights(prog)
    q = values["decoder_layers_0_mlp_up_proj_weight"]  # [128, 64]
    if storage == "palettized":
        per_group = [len(np.unique(q[i : i + group])) for i in range(0, q.shape[0], group)]
        assert max(per_group) <= 2**bits
    if storage.startswith("sparse"):
        assert (q == 0).mean() >= 0.49
    if storage.startswith("int"):  # one scale per row (or per block of a row): at most 2^bits levels in each
        width = block or q.shape[1]
        levels = [len(np.unique(q[r, c : c + width])) for r in range(q.shape[0]) for c in range(0, q.shape[1], width)]
        assert max(levels) <= 2**bits and (bits == 8 or max(levels) > 8)

    m = b.manifest
    per_weight = m["report"]["delegation"]["program"]["per_weight"]
    assert len(per_weight) == 15 and len(set(per_weight.values())) == 1
    assert m["runtime"]["backend"] == "coreml" and m["runtime"]["compute_units"] == "cpu_and_ne"
    assert len(m["compression"]["quantized_layers"]) == (0 if quant == "fp16" else 15)
    check = m["report"]["weights_check"]
    assert check["vs_float"]["mean_kl"] < 0.05
    assert check["float16_compute"]["mean_kl"] < 0.05
    assert check["perplexity"]["float"] > 1 and abs(check["perplexity"]["delta_pct"]) < 25
    if not ON_MAC:
        assert m["report"]["parity"]["lowered_model_run"] is False
        assert m["report"]["parity"]["vs_float"] == check["vs_float"]


@pytest.mark.parametrize("family,quant", [("qwen2", "int4-block"), ("qwen3", "palettize4"),
                                          ("gemma3", "prune50+palettize4")])
def test_families_convert_with_states_and_flexible_inputs(coreml_bundle, family, quant):
    from pocketlm.bundle import read_bundle
    from pocketlm.coreml_program import load_program, summarize

    b = read_bundle(coreml_bundle(family, quant))
    summary = summarize(load_program(b.file("model.mlpackage")))
    shape = b.manifest["model"]["shape"]
    cache = [shape["num_layers"], 1, shape["num_kv_heads"], TINY_CONTEXT, shape["head_dim"]]
    assert [(s["name"], s["shape"]) for s in summary.states] == [("key_cache", cache), ("value_cache", cache)]
    inputs = {i["name"]: i["shape"] for i in summary.inputs}
    assert inputs == {"input_ids": [1, "flexible"], "causal_mask": [1, 1, "flexible", "flexible"]}
    assert summary.ops["coreml_update_state"] == 2 * shape["num_layers"]
    assert summary.ops["linear"] == 7 * shape["num_layers"] + 1
    storage = EXPECTED[quant][0]
    assert {w.storage for w in summary.weights} == {storage}
    names = b.manifest["compression"]["quantized_layers"]
    assert "layers.0.self_attn.q_proj" in names
    if family == "qwen2":  # untied: the head is a weight of its own
        assert "lm_head" in names and "embed_tokens" in names
    # random tiny models have near-uniform logits, so top-1 flips easily; the distribution must stay close
    assert b.manifest["report"]["weights_check"]["vs_float"]["mean_kl"] < 0.05


def test_embedding_options(coreml_bundle):
    from pocketlm.bundle import read_bundle
    from pocketlm.coreml_program import load_program, summarize

    for embedding, want in (("none", "float16"), ("int8", "int8")):
        b = read_bundle(coreml_bundle("llama", "palettize4", embedding=embedding))
        weights = summarize(load_program(b.file("model.mlpackage"))).weights
        emb = [w for w in weights if "gather" in w.used_by]
        assert [w.storage for w in emb] == [want]
        assert {w.storage for w in weights if w not in emb} == {"palettized"}
        assert b.manifest["compression"]["recipe"] == f"palettize4+emb-{embedding}"


def test_a_weight_left_uncompressed_fails_the_check(tiny_model_dir):
    """check_applied reads the program: a weight the recipe did not reach is named."""
    from pocketlm.converter import coreml_recipes
    from pocketlm.converter.backends import LoweringJob, coreml
    from pocketlm.coreml_program import non_weight_consts, summarize, weight_consts

    decoder = _decoder(tiny_model_dir, "llama")
    recipe = coreml_recipes.build_recipe("int8")
    job = LoweringJob(decoder=decoder, hf_model=None, hf_tokenizer=None, out_dir=None, recipe=recipe,
                      max_prefill=4, prefill_lengths=[], bos_id=None, eos_ids=[])
    model = coreml.convert_float(job)
    prog = model._mil_program
    left_out = [n for n in weight_consts(prog) if "layers_1_mlp_down_proj" in n]
    model = coreml_recipes.apply_steps(model, recipe, excluded=non_weight_consts(prog) + left_out, embedding_consts=[],
                                       all_weights=weight_consts(prog))
    with pytest.raises(ConversionError, match="not applied to 1 weight.*layers_1_mlp_down_proj"):
        coreml.check_applied(summarize(model._mil_program), recipe)


def test_float16_overflow_fails_the_conversion(tiny_model_dir, tmp_path, monkeypatch):
    """Core ML computes in float16: a model whose float16 logits are not finite gets no bundle."""
    from rich.console import Console

    from pocketlm.converter.backends import coreml
    from pocketlm.converter.convert import convert

    real = coreml.float16_logits

    def overflowing(job):
        logits, first = real(job)
        logits[0, 0] = np.inf
        return logits, first

    monkeypatch.setattr(coreml, "float16_logits", overflowing)
    with pytest.raises(ConversionError, match="float16 compute.*overflow"):
        convert(str(tiny_model_dir("llama")), tmp_path / "b", target="coreml", quant="fp16",
                max_context=TINY_CONTEXT, max_prefill=TINY_PREFILL, parity_tokens=16, console=Console(quiet=True))
    assert not (tmp_path / "b").exists()


# ---------------------------------------------------------------- ExecuTorch with the Core ML delegate
@pytest.mark.parametrize("family", ["llama", "gemma3"])
def test_executorch_coreml_delegates_the_whole_graph(coreml_bundle, family):
    from pocketlm.bundle import read_bundle

    b = read_bundle(coreml_bundle(family, "fp16", target="executorch", delegate="coreml"))
    m = b.manifest
    delegation = m["report"]["delegation"]
    assert delegation["delegate_calls"] == 1 and delegation["ops_outside_delegate"] == {}
    assert delegation["nodes_before_partition"] > 100
    assert m["runtime"]["delegate"] == "coreml" and m["runtime"]["max_prefill"] == 1
    assert m["runtime"]["methods"]["forward"]["inputs"][0]["name"] == "tokens"
    assert m["report"]["weights_check"]["vs_float"]["top1_agreement"] == 1.0
    assert b.file("model.pte").read_bytes()[4:8] == b"ET12"


def test_executorch_coreml_takes_fp16_only():
    from pocketlm.converter.convert import convert

    with pytest.raises(RecipeError, match="takes --quant fp16.*--target coreml"):
        convert("unused", target="executorch", delegate="coreml", quant="8da4w")


def test_mps_is_refused_with_what_to_do():
    from pocketlm.converter.convert import convert

    with pytest.raises(BackendUnavailableError, match="no MPS backend.*EXECUTORCH_BUILD_MPS"):
        convert("unused", target="executorch", delegate="mps")


# ---------------------------------------------------------------- options and errors
@pytest.mark.parametrize("options,message", [
    ({"quant": "int3"}, "unknown Core ML recipe 'int3'"),
    ({"quant": "int4-block", "group_size": 48}, "must be 8, 16, 32, 64 or 128"),
    ({"quant": "int8", "embedding": "int4"}, "--embedding-quant int4 is not available for Core ML"),
    ({"quant": "fp16", "embedding": "int8"}, "needs a compressing recipe"),
    ({"quant": "int8", "compute_units": "gpu"}, "unknown compute units 'gpu'"),
])
def test_bad_coreml_options_fail_before_loading(options, message, tmp_path):
    from pocketlm.converter.convert import convert

    with pytest.raises(RecipeError, match=message):
        convert(str(tmp_path / "missing-model"), target="coreml", **options)
    assert not any(tmp_path.iterdir())


def test_compute_units_belong_to_coreml():
    from pocketlm.converter.convert import convert

    with pytest.raises(RecipeError, match="--compute-units is for the coreml target"):
        convert("unused", target="executorch", compute_units="all")


def test_compute_units_recorded(coreml_bundle):
    from pocketlm.bundle import read_bundle

    b = read_bundle(coreml_bundle("llama", "int8", compute_units="cpu_and_gpu"))
    assert b.manifest["runtime"]["compute_units"] == "cpu_and_gpu"


@pytest.mark.skipif(ON_MAC, reason="off Apple systems only")
def test_running_a_coreml_bundle_here_is_one_clear_line(coreml_bundle, capsys):
    from pocketlm.bundle import read_bundle
    from pocketlm.cli import main
    from pocketlm.engines import open_engine

    et_coreml = coreml_bundle("llama", "fp16", target="executorch", delegate="coreml")
    for path in (coreml_bundle("llama", "int8"), et_coreml):
        with pytest.raises(BackendUnavailableError, match="runs on macOS/iOS; this bundle can be inspected here"):
            open_engine(read_bundle(path))
    assert main(["run", str(coreml_bundle("llama", "int8")), "hello"]) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "error: Core ML runs on macOS/iOS; this bundle can be inspected here but not run")


def test_cli_convert_and_info_weights(tiny_model_dir, tmp_path, capsys):
    from pocketlm.cli import main

    out = tmp_path / "b"
    assert main([
        "convert", str(tiny_model_dir("qwen3")), "-o", str(out), "--target", "coreml", "--quant", "int4-block",
        "--max-context", "32", "--max-prefill", "8", "--parity-tokens", "16", "--compute-units", "all",
    ]) == 0
    m = json.loads((out / "manifest.json").read_text())
    assert m["compression"]["recipe"] == "int4-block" and m["runtime"]["compute_units"] == "all"
    capsys.readouterr()
    assert main(["info", str(out), "--weights"]) == 0
    printed = capsys.readouterr().out
    assert "lowered model not run" in printed or ON_MAC
    assert "perplexity" in printed
    rows = [line for line in printed.splitlines() if line.startswith("decoder_")]
    assert len(rows) == 15 and all(" int4 " in r for r in rows)


def test_info_weights_refuses_other_backends(tiny_bundle, capsys):
    from pocketlm.cli import main

    assert main(["info", str(tiny_bundle("llama")), "--weights"]) == 1
    assert "--weights reads Core ML programs" in capsys.readouterr().err


# ---------------------------------------------------------------- macOS only: run what was converted
@mac_only
@pytest.mark.parametrize("family", FAMILIES)
def test_mlpackage_runs_like_eager_on_macos(coreml_bundle, tiny_model_dir, family):
    from pocketlm.bundle import read_bundle
    from pocketlm.converter import parity
    from pocketlm.engines import open_engine

    b = read_bundle(coreml_bundle(family, "fp16"))
    decoder = _decoder(tiny_model_dir, family)
    tokens = list(range(3, 33))
    ref = parity.eager_logits(decoder, tokens)
    engine = open_engine(b)
    try:
        got, first = parity.engine_logits(engine, tokens)
    finally:
        engine.close()
    assert parity.compare(ref[first:-1], got)["top1_agreement"] >= 0.9


@mac_only
def test_coreml_pte_runs_like_eager_on_macos(coreml_bundle, tiny_model_dir):
    from pocketlm.bundle import read_bundle
    from pocketlm.converter import parity
    from pocketlm.engines import open_engine

    b = read_bundle(coreml_bundle("llama", "fp16", target="executorch", delegate="coreml"))
    ref = parity.eager_logits(_decoder(tiny_model_dir, "llama"), list(range(3, 23)))
    engine = open_engine(b)
    try:
        got, first = parity.engine_logits(engine, list(range(3, 23)))
    finally:
        engine.close()
    assert parity.compare(ref[first:-1], got)["top1_agreement"] >= 0.9

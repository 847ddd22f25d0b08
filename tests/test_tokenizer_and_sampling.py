"""Tokenizer (streaming UTF-8, chat templates) and sampling, on the tiny byte-level BPE tokenizer."""

import numpy as np
import pytest
from tiny_models import CHAT_TEMPLATE

from pocketlm.errors import GenerationError
from pocketlm.sampling import Sampler, SamplingParams
from pocketlm.tokenizer import StreamDetokenizer, Tokenizer

TEXT = "Café naïve — 日本語 🙂 and unseen: Ωμέγα ∑ € 🚀, über."


@pytest.fixture(scope="module")
def tok(tiny_model_dir):
    spec = {
        "bos_token_id": 1, "eos_token_ids": [2], "add_bos_token": True, "chat_template": CHAT_TEMPLATE,
        "special_tokens": {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>"},
    }
    return Tokenizer(tiny_model_dir("llama") / "tokenizer.json", spec)


def test_streaming_detokenization_never_splits_a_character(tok):
    ids = tok.encode(TEXT, add_bos=False)
    # Characters the tiny vocabulary never saw arrive as single bytes: tokens that end mid-character.
    assert sum("\ufffd" in tok.decode([i]) for i in ids) >= 4
    detok = StreamDetokenizer(tok)
    pieces = [detok.add(i) for i in ids] + [detok.flush()]
    assert "".join(pieces) == TEXT
    assert all("\ufffd" not in p for p in pieces)
    assert sum(1 for p in pieces if p == "") > 5  # bytes of multi-byte characters were held back


def test_flush_releases_an_incomplete_character(tok):
    emoji = tok.encode("🙂", add_bos=False)
    detok = StreamDetokenizer(tok)
    assert [detok.add(i) for i in emoji[:-1]] == [""] * (len(emoji) - 1)
    assert detok.flush() == "\ufffd"


def test_bos_handling(tok):
    assert tok.encode("hi")[0] == 1
    assert tok.encode("hi", add_bos=False)[0] != 1
    assert tok.encode("<|im_start|>hi").count(1) == 1  # special token text maps to its id, BOS not doubled


def test_chat_template_matches_transformers(tok, tiny_model_dir):
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(tiny_model_dir("llama"))
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Où est Paris ?"}]
    expected = hf.apply_chat_template(messages, tokenize=True, add_generation_prompt=True, return_dict=False)
    assert tok.encode_chat(messages) == list(expected)


def test_chat_without_template_is_a_clear_error(tiny_model_dir):
    bare = Tokenizer(tiny_model_dir("llama") / "tokenizer.json", {"eos_token_ids": [2], "chat_template": None})
    with pytest.raises(GenerationError, match="no chat template"):
        bare.encode_chat([{"role": "user", "content": "hi"}])


# ---------------------------------------------------------------- sampling
LOGITS = np.log(np.array([0.05, 0.5, 0.3, 0.1, 0.05], dtype=np.float32))


def _draws(params, n=200):
    s = Sampler(params)
    return [s(LOGITS, []) for _ in range(n)]


def test_greedy_and_degenerate_filters_pick_the_argmax():
    assert set(_draws(SamplingParams())) == {1}
    assert set(_draws(SamplingParams(temperature=1.0, top_k=1, seed=0))) == {1}
    assert set(_draws(SamplingParams(temperature=1.0, top_p=0.4, seed=0))) == {1}


def test_sampling_is_deterministic_with_a_seed_and_varies_without():
    a = _draws(SamplingParams(temperature=1.0, seed=7))
    assert a == _draws(SamplingParams(temperature=1.0, seed=7))
    assert a != _draws(SamplingParams(temperature=1.0, seed=8))
    assert len(set(a)) >= 4  # full distribution: most tokens appear in 200 draws


def test_top_k_and_top_p_restrict_the_support():
    assert set(_draws(SamplingParams(temperature=1.0, top_k=2, seed=0))) == {1, 2}
    assert set(_draws(SamplingParams(temperature=1.0, top_p=0.75, seed=0))) == {1, 2}


def test_repetition_penalty_discourages_seen_tokens():
    s = Sampler(SamplingParams(repetition_penalty=10.0))
    assert s(LOGITS, history=[1]) == 2


@pytest.mark.parametrize("bad", [dict(temperature=-1), dict(top_k=-1), dict(top_p=0), dict(repetition_penalty=0)])
def test_bad_sampling_parameters_are_refused(bad):
    with pytest.raises(GenerationError):
        SamplingParams(**bad)


def test_log_softmax_is_normalized_and_shift_invariant():
    from pocketlm.sampling import log_softmax

    x = np.array([[1000.0, 1001.0, 999.0], [-5.0, 0.0, 5.0]], dtype=np.float32)
    lp = log_softmax(x)
    np.testing.assert_allclose(np.exp(lp).sum(-1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(lp[0], log_softmax(x[0] - 1000.0), atol=1e-12)  # no overflow at large logits

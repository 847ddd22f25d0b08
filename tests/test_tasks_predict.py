"""Text prediction mechanics (word assembly, partial words, cache reuse) independent of model quality."""

from types import SimpleNamespace

import numpy as np
import pytest

import pocketlm
from pocketlm.engines.base import Engine
from pocketlm.tasks import TextPredictor
from pocketlm.tasks.predict import WORD_CHARS
from pocketlm.tokenizer import Tokenizer


class ChainEngine(Engine):
    """Logits from the last token: `chain[last]` is made most likely; a tracked sequence supports rewind."""

    def __init__(self, chain: dict[int, int], fallback: int, vocab: int, max_context: int = 64):
        bundle = SimpleNamespace(manifest={"runtime": {"max_context": max_context, "max_prefill": 16}})
        super().__init__(bundle)
        self.chain, self.fallback, self.vocab = chain, fallback, vocab
        self.seq: list[int] = []
        self.tokens_run = 0

    def load(self):
        pass

    def _forward(self, tokens, start):
        self.seq = self.seq[:start] + list(tokens)
        self.tokens_run += len(tokens)
        logits = np.zeros(self.vocab, dtype=np.float32)
        logits[self.chain.get(self.seq[-1], self.fallback)] = 12.0
        return logits


@pytest.fixture(scope="module")
def tok(tiny_model_dir):
    spec = {"bos_token_id": 1, "eos_token_ids": [2], "add_bos_token": False, "chat_template": None}
    return Tokenizer(tiny_model_dir("llama") / "tokenizer.json", spec)


def _predictor(tok, chain, fallback):
    engine = ChainEngine(chain, fallback, tok.vocab_size)
    manifest = {"model": {"family": "llama", "parameters": 1000}, "tokenizer": {"chat_template": None}}
    return TextPredictor(SimpleNamespace(engine=engine, tokenizer=tok, manifest=manifest), time_budget=5.0), engine


def test_words_are_assembled_from_several_tokens(tok):
    context = tok.encode("The lazy", add_bos=False)
    word = tok.encode(" quick", add_bos=False)
    assert len(word) >= 2, "the tiny vocabulary should split ' quick' into pieces"
    end = tok.encode(" dog", add_bos=False)[0]  # a space-initial token: the word ends before it
    chain = {context[-1]: word[0], **{a: b for a, b in zip(word, word[1:])}, word[-1]: end}
    predictor, _ = _predictor(tok, chain, fallback=end)
    p = predictor.predict("The lazy ", k=3)
    assert p.partial == "" and p.words[0] == "quick"
    assert p.suggestions[0].probability > 0.5
    completion = predictor.predict("The lazy qu", k=3)
    assert completion.partial == "qu" and completion.words[0] == "quick"


def test_suggestions_are_whole_words_consistent_with_the_typed_start(tiny_bundle):
    with pocketlm.load(tiny_bundle("llama", "fp32")) as model:
        predictor = TextPredictor(model)
        for text in ("The quick brown ", "Paris is the cap", "Les élèves "):
            p = predictor.predict(text, k=3)
            assert len(p.suggestions) <= 3 and p.steps >= 0
            for w in p.words:
                assert w and all(c in WORD_CHARS for c in w) and w.startswith(p.partial)
            scores = [s.logprob for s in p.suggestions]
            assert scores == sorted(scores, reverse=True)


def test_the_unchanged_prefix_is_not_run_again(tok):
    end = tok.encode(" dog", add_bos=False)[0]
    predictor, engine = _predictor(tok, {}, fallback=end)
    first = predictor.predict("The quick brown fox jumps over the ", k=3)
    prefix_len = len(tok.encode("The quick brown fox jumps over the"))
    assert first.reused_tokens == 0 and first.new_tokens == prefix_len
    second = predictor.predict("The quick brown fox jumps over the la", k=3)
    assert second.reused_tokens == prefix_len - 1 and second.new_tokens == 1  # last token re-run for its logits
    engine.reset()  # what generate()/chat() do: the predictor must notice its cache is gone
    third = predictor.predict("The quick brown fox jumps over the ", k=3)
    assert third.reused_tokens == 0 and third.new_tokens == prefix_len


def test_branches_do_not_corrupt_the_cached_prefix(tiny_bundle):
    """After a search (branches written past the prefix), the prefix cache still gives exact logits."""
    bundle = tiny_bundle("qwen3", "fp32")
    with pocketlm.load(bundle) as model:
        predictor = TextPredictor(model)
        text = "The quick brown fox "
        predictor.predict(text, k=3)
        ids = model.tokenizer.encode(text.rstrip()) + model.tokenizer.encode(" jumps", add_bos=False)
        reused, _, _ = predictor._logits_after(ids)
        model.engine.reset()
        fresh = model.engine.prefill(ids)
    np.testing.assert_allclose(reused, fresh, atol=1e-4)


def test_eval_and_cli(capsys, tiny_bundle):
    from pocketlm.cli import main

    bundle = str(tiny_bundle("llama", "fp32"))
    assert main(["predict", bundle, "The quick brown "]) == 0
    assert "cached tokens reused" in capsys.readouterr().err
    assert main(["eval", bundle, "--task", "predict", "--max-words", "5"]) == 0
    import json

    scores = json.loads(capsys.readouterr().out)
    assert scores["words"] == 5 and 0 <= scores["top1_accuracy"] <= scores["top3_accuracy"] <= 1
    assert -1 < scores["keystroke_savings"] <= 1

"""Generation above the Engine interface: stop strings, EOS, limits, context, and a real tiny bundle."""

import numpy as np
import pytest

import pocketlm
from pocketlm.engines.base import Engine
from pocketlm.errors import GenerationError
from pocketlm.generation import GenerationStats, stream_generate
from pocketlm.sampling import SamplingParams
from pocketlm.tokenizer import Tokenizer


class ScriptedEngine(Engine):
    """Emits a fixed token sequence, one per call, as one-hot logits."""

    def __init__(self, script, vocab=384, max_context=64):
        bundle = type("B", (), {"manifest": {"runtime": {"max_context": max_context, "max_prefill": 8}}})()
        super().__init__(bundle)
        self.script, self.vocab, self.calls = list(script), vocab, 0

    def load(self):
        pass

    def _forward(self, tokens, start):
        logits = np.zeros(self.vocab, dtype=np.float32)
        logits[self.script[min(self.calls, len(self.script) - 1)]] = 10.0
        self.calls += 1
        return logits


@pytest.fixture(scope="module")
def tok(tiny_model_dir):
    return Tokenizer(tiny_model_dir("llama") / "tokenizer.json", {"eos_token_ids": [2], "chat_template": None})


def _run(tok, text_or_ids, stop=(), max_new=50, max_context=64, eos=True):
    ids = tok.encode(text_or_ids, add_bos=False) if isinstance(text_or_ids, str) else text_or_ids
    engine = ScriptedEngine(ids + ([2] if eos else []), max_context=max_context)
    stats = GenerationStats()
    out = "".join(stream_generate(engine, tok, [5, 6, 7], max_new, SamplingParams(), stop, stats))
    return out, stats


def test_eos_ends_generation_and_is_not_printed(tok):
    out, stats = _run(tok, "Paris is nice.")
    assert out == "Paris is nice." and stats.finish_reason == "eos"
    assert stats.generated_tokens == len(tok.encode("Paris is nice.", add_bos=False)) + 1


def test_stop_string_is_honoured_even_across_tokens(tok):
    out, stats = _run(tok, "The answer: Paris\nUser: next", stop=["\nUser:"])
    assert out == "The answer: Paris" and stats.finish_reason == "stop"


def test_partial_stop_string_is_released_at_the_end(tok):
    out, stats = _run(tok, "ends with \nUs", stop=["\nUser:"])
    assert out == "ends with \nUs" and stats.finish_reason == "eos"


def test_max_new_tokens_and_context_limits(tok):
    out, stats = _run(tok, "x" * 40, max_new=5, eos=False)
    assert stats.generated_tokens == 5 and stats.finish_reason == "length"
    out, stats = _run(tok, "y" * 80, max_new=100, max_context=20, eos=False)
    assert stats.finish_reason == "context" and stats.generated_tokens == 20 - 3 + 1


def test_prompt_longer_than_context_is_refused_before_running(tok):
    engine = ScriptedEngine([3], max_context=8)
    with pytest.raises(GenerationError, match="prompt is 10 tokens; this bundle's context is 8"):
        stream_generate(engine, tok, list(range(3, 13)), 5)
    assert engine.calls == 0


def test_tiny_bundle_generates_deterministically(tiny_bundle):
    with pocketlm.load(tiny_bundle("qwen3", "fp32")) as model:
        greedy = "".join(model.generate("The quick brown fox", max_new_tokens=12))
        assert greedy == "".join(model.generate("The quick brown fox", max_new_tokens=12))
        seeded = ["".join(model.generate("The quick", max_new_tokens=12, temperature=1.0, seed=s)) for s in (1, 1, 2)]
        assert seeded[0] == seeded[1] != seeded[2]
        stats = model.last_stats
        assert stats.generated_tokens == 12 and stats.prefill_tokens_per_second > 0
        # 11 decode steps: the runtime's share is measured apart from sampling and detokenizing
        assert 0 < stats.decode_runtime_seconds < stats.decode_seconds and 0 < stats.sdk_overhead < 1
        chat = "".join(model.chat([{"role": "user", "content": "hi"}], max_new_tokens=4))
        assert isinstance(chat, str) and model.last_stats.prompt_tokens > 3


def test_generation_equals_eager_greedy_decoding(tiny_bundle, tiny_model_dir):
    """The bundle's greedy tokens are the Hugging Face model's greedy tokens (fp32)."""
    import torch
    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(tiny_model_dir("gemma3"), dtype=torch.float32).eval()
    with pocketlm.load(tiny_bundle("gemma3", "fp32")) as model:
        prompt = model.tokenizer.encode("Paris is the capital of")
        list(model.generate(prompt, max_new_tokens=20))
        ours = model.last_stats.tokens
    with torch.no_grad():
        ref = hf.generate(torch.tensor([prompt]), max_new_tokens=20, do_sample=False, eos_token_id=None)[0]
    assert ours == ref[len(prompt) : len(prompt) + len(ours)].tolist()

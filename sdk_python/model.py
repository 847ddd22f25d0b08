"""Model: a loaded bundle (manifest + tokenizer + engine) with generate() and chat()."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

from .bundle import Bundle, read_bundle
from .engines import open_engine
from .generation import GenerationStats, stream_generate
from .sampling import SamplingParams
from .tokenizer import Tokenizer


class Model:
    def __init__(self, bundle: Bundle, tokenizer: Tokenizer, engine):
        self.bundle = bundle
        self.tokenizer = tokenizer
        self.engine = engine
        self.last_stats: GenerationStats | None = None

    @classmethod
    def load(cls, path: str | os.PathLike, threads: int | None = None, verify: bool = True, **engine_options) -> Model:
        """Read the bundle (checking every file's sha256 unless verify=False) and load its engine."""
        bundle = read_bundle(path, verify=verify)
        tokenizer = Tokenizer.from_bundle(bundle)
        return cls(bundle, tokenizer, open_engine(bundle, threads=threads, **engine_options))

    @property
    def manifest(self) -> dict:
        return self.bundle.manifest

    def generate(
        self,
        prompt: str | Sequence[int],
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        top_k: int = 0,
        top_p: float = 1.0,
        repetition_penalty: float = 1.0,
        seed: int | None = None,
        stop: Sequence[str] = (),
    ) -> Iterator[str]:
        """Stream the continuation of `prompt` (text, or token ids) as text pieces.

        Greedy by default (temperature 0). Stops at an end-of-sequence token, a
        stop string (not included in the output), max_new_tokens, or the context end.
        Statistics of the run are in `model.last_stats` once the iterator is exhausted.
        """
        ids = self.tokenizer.encode(prompt) if isinstance(prompt, str) else list(prompt)
        return self._stream(ids, max_new_tokens, temperature, top_k, top_p, repetition_penalty, seed, stop)

    def chat(self, messages: list[dict], max_new_tokens: int = 256, **kwargs) -> Iterator[str]:
        """Stream the assistant's reply to `messages` ([{role, content}, …]) using the model's chat template."""
        ids = self.tokenizer.encode_chat(messages, add_generation_prompt=True)
        return self.generate(ids, max_new_tokens=max_new_tokens, **kwargs)

    def _stream(self, ids, max_new_tokens, temperature, top_k, top_p, repetition_penalty, seed, stop):
        sampling = SamplingParams(temperature, top_k, top_p, repetition_penalty, seed)  # validates eagerly
        self.last_stats = GenerationStats()
        return stream_generate(
            self.engine, self.tokenizer, ids, max_new_tokens, sampling, stop, stats=self.last_stats
        )

    def close(self) -> None:
        self.engine.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

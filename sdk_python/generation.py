"""Streaming generation over any Engine: prefill, then decode token by token."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from .engines.base import Engine
from .errors import GenerationError
from .sampling import Sampler, SamplingParams
from .tokenizer import StreamDetokenizer, Tokenizer


@dataclass
class GenerationStats:
    prompt_tokens: int = 0
    generated_tokens: int = 0
    prefill_seconds: float = 0.0
    decode_seconds: float = 0.0  # from the first sampled token to the last
    decode_runtime_seconds: float = 0.0  # of which inside the runtime (the rest: sampling, detokenizing, glue)
    finish_reason: str = ""  # "eos", "stop", "length" or "context"
    tokens: list[int] = field(default_factory=list)

    @property
    def prefill_tokens_per_second(self) -> float:
        return self.prompt_tokens / self.prefill_seconds if self.prefill_seconds else 0.0

    @property
    def decode_tokens_per_second(self) -> float:
        # The first generated token comes from the prefill logits; decode runs generated_tokens - 1 steps.
        steps = max(self.generated_tokens - 1, 0)
        return steps / self.decode_seconds if self.decode_seconds and steps else 0.0

    @property
    def sdk_overhead(self) -> float:
        """Share of decode time spent outside the runtime call (0 when the engine cannot tell)."""
        if not self.decode_seconds or not self.decode_runtime_seconds:
            return 0.0
        return 1 - self.decode_runtime_seconds / self.decode_seconds

    @property
    def time_to_first_token(self) -> float:
        return self.prefill_seconds


class _StopMatcher:
    """Holds back text that could be the start of a stop string; reports where one completes."""

    def __init__(self, stops: Sequence[str]):
        self.stops = [s for s in stops if s]
        self.pending = ""

    def feed(self, text: str) -> tuple[str, bool]:
        self.pending += text
        for s in self.stops:
            i = self.pending.find(s)
            if i >= 0:
                out, self.pending = self.pending[:i], ""
                return out, True
        hold = 0
        for s in self.stops:
            for k in range(min(len(s) - 1, len(self.pending)), 0, -1):
                if self.pending.endswith(s[:k]):
                    hold = max(hold, k)
                    break
        out = self.pending[: len(self.pending) - hold]
        self.pending = self.pending[len(out) :]
        return out, False

    def flush(self) -> str:
        out, self.pending = self.pending, ""
        return out


def stream_generate(
    engine: Engine,
    tokenizer: Tokenizer,
    prompt_ids: Sequence[int],
    max_new_tokens: int = 256,
    sampling: SamplingParams | None = None,
    stop: Sequence[str] = (),
    stats: GenerationStats | None = None,
) -> Iterator[str]:
    """Yield text pieces as they are generated. The engine is reset first (a new conversation)."""
    if max_new_tokens < 1:
        raise GenerationError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    prompt_ids = list(prompt_ids)
    if not prompt_ids:
        raise GenerationError("the prompt is empty")
    if len(prompt_ids) >= engine.max_context:
        raise GenerationError(
            f"the prompt is {len(prompt_ids)} tokens; this bundle's context is {engine.max_context} "
            "(prompt and answer together)"
        )
    stats = stats if stats is not None else GenerationStats()
    stats.prompt_tokens = len(prompt_ids)
    # Checked above, before the first next(): bad requests fail where they are made.
    return _run(engine, tokenizer, prompt_ids, max_new_tokens, Sampler(sampling or SamplingParams()), stop, stats)


def _run(engine, tokenizer, prompt_ids, max_new_tokens, sampler, stop, stats) -> Iterator[str]:
    detok = StreamDetokenizer(tokenizer)
    stopper = _StopMatcher(stop)
    history = list(prompt_ids)

    engine.reset()
    t0 = time.perf_counter()
    logits = engine.prefill(prompt_ids)
    t1 = time.perf_counter()
    runtime_before = engine.runtime_seconds
    stats.prefill_seconds = t1 - t0
    stats.finish_reason = "length"
    try:
        for i in range(max_new_tokens):
            token = sampler(logits, history)
            history.append(token)
            stats.tokens.append(token)
            stats.generated_tokens += 1
            if token in tokenizer.eos_token_ids:
                stats.finish_reason = "eos"
                break
            text, stopped = stopper.feed(detok.add(token))
            if text:
                yield text
            if stopped:
                stats.finish_reason = "stop"
                return
            if i + 1 == max_new_tokens:
                break
            if engine.room < 1:
                stats.finish_reason = "context"
                break
            logits = engine.decode(token)
        text, stopped = stopper.feed(detok.flush())
        if stopped:
            stats.finish_reason = "stop"
        tail = text if stopped else text + stopper.flush()
        if tail:
            yield tail
    finally:
        stats.decode_seconds = time.perf_counter() - t1
        stats.decode_runtime_seconds = engine.runtime_seconds - runtime_before

"""The Engine interface every runtime implements; generation, tasks, evaluation and
profiling are written once above it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np

from ..errors import GenerationError


class Engine(ABC):
    """A loaded model with a KV cache. Positions advance with every token fed in.

    prefill(tokens) -> logits of the last token   (any number of tokens)
    decode(token)   -> logits of the next token   (one token)
    reset()         -> forget the cache (position 0)
    rewind(n)       -> keep the first n cached tokens (prefix reuse)
    """

    name = "engine"

    def __init__(self, bundle, threads: int | None = None):
        self.bundle = bundle
        self.threads = threads
        runtime = bundle.manifest["runtime"]
        self.max_context: int = runtime["max_context"]
        self.max_prefill: int = runtime["max_prefill"]
        self.position = 0
        self.epoch = 0  # counts reset() calls: a holder of cached positions can tell its cache was dropped
        self.runtime_seconds = 0.0  # time inside the runtime's own call, summed (engines that can tell)

    @classmethod
    def unavailable_reason(cls, runtime: dict | None = None) -> str | None:
        """Why this runtime cannot run a bundle with this manifest `runtime` on this machine (None: it can).
        Core ML, for one, needs macOS."""
        return None

    @classmethod
    def prepare(cls) -> None:  # noqa: B027  optional hook
        """Import the runtime (once per process), so that load() measures loading the model only."""
        return None

    @abstractmethod
    def load(self) -> None: ...

    @abstractmethod
    def _forward(self, tokens: Sequence[int], start: int) -> np.ndarray:
        """Run tokens at positions start.. and return the last token's logits (float32 [vocab])."""

    def prefill(self, tokens: Sequence[int]) -> np.ndarray:
        tokens = list(tokens)
        if not tokens:
            raise GenerationError("prefill needs at least one token")
        self._check_room(len(tokens))
        logits = None
        for i in range(0, len(tokens), self.max_prefill):  # chunk prompts longer than one call takes
            chunk = tokens[i : i + self.max_prefill]
            logits = self._forward(chunk, self.position)
            self.position += len(chunk)
        return logits

    def decode(self, token: int) -> np.ndarray:
        self._check_room(1)
        logits = self._forward([token], self.position)
        self.position += 1
        return logits

    def reset(self) -> None:
        self.rewind(0)
        self.epoch += 1

    def rewind(self, position: int) -> None:
        """Keep the first `position` cached tokens and forget the rest (their entries are overwritten later).

        Valid because attention reads the cache only up to the current position.
        """
        if not 0 <= position <= self.position:
            raise GenerationError(f"cannot rewind to {position}: {self.position} tokens are cached")
        self.position = position

    def close(self) -> None:  # noqa: B027  optional hook: most engines free nothing explicitly
        return None

    @property
    def room(self) -> int:
        return self.max_context - self.position

    def _check_room(self, n: int) -> None:
        if n > self.room:
            raise GenerationError(
                f"{n} more tokens do not fit: {self.position} of this bundle's {self.max_context}-token context used"
            )

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

"""Next-token selection from logits: repetition penalty, temperature, top-k, top-p (NumPy, seeded)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import GenerationError


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 0.0  # 0 means greedy
    top_k: int = 0  # 0 disables
    top_p: float = 1.0  # 1 disables
    repetition_penalty: float = 1.0  # 1 disables; Hugging Face / CTRL convention
    seed: int | None = None

    def __post_init__(self):
        if self.temperature < 0:
            raise GenerationError(f"temperature must be >= 0, got {self.temperature}")
        if self.top_k < 0:
            raise GenerationError(f"top_k must be >= 0, got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise GenerationError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.repetition_penalty <= 0:
            raise GenerationError(f"repetition_penalty must be > 0, got {self.repetition_penalty}")


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Log-probabilities over the last axis, in float64 (used for scores, perplexity and parity)."""
    x = np.asarray(logits, dtype=np.float64)
    m = x.max(-1, keepdims=True)
    return x - (m + np.log(np.exp(x - m).sum(-1, keepdims=True)))


class Sampler:
    def __init__(self, params: SamplingParams):
        self.params = params
        self.rng = np.random.default_rng(params.seed)

    def __call__(self, logits: np.ndarray, history: list[int]) -> int:
        logits = self.penalized(logits, history)
        if self.params.temperature == 0.0:
            return int(np.argmax(logits))
        probs = self.probabilities(logits)
        return int(self.rng.choice(probs.shape[0], p=probs))

    def penalized(self, logits: np.ndarray, history: list[int]) -> np.ndarray:
        """Logits with the repetition penalty applied to every token already in `history`."""
        p = self.params
        logits = np.asarray(logits, dtype=np.float32).reshape(-1)
        if p.repetition_penalty != 1.0 and history:
            logits = logits.copy()
            seen = np.unique(np.asarray(history, dtype=np.int64))
            seen = seen[seen < logits.shape[0]]
            vals = logits[seen]
            logits[seen] = np.where(vals > 0, vals / p.repetition_penalty, vals * p.repetition_penalty)
        return logits

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """The distribution a token is drawn from (temperature > 0): tempered, top-k, then top-p."""
        p = self.params
        logits = logits / p.temperature
        if p.top_k and p.top_k < logits.shape[0]:
            kth = np.partition(logits, -p.top_k)[-p.top_k]
            logits = np.where(logits < kth, -np.inf, logits)
        probs = np.exp(logits - logits.max())
        probs /= probs.sum()
        if p.top_p < 1.0:
            order = np.argsort(-probs, kind="stable")
            cumulative = np.cumsum(probs[order])
            keep = order[: int(np.searchsorted(cumulative, p.top_p)) + 1]  # smallest set reaching top_p
            mask = np.zeros_like(probs)
            mask[keep] = probs[keep]
            probs = mask / mask.sum()
        return probs

"""Perplexity over a long text with a sliding window, written once for any model that gives
per-token logits (an eager torch model, or an engine through its KV cache).

The first window scores all its tokens but the first; each later window moves on by
`stride` tokens and scores only those, with the `context - stride` tokens before them
as history — every token is scored exactly once (the Hugging Face "strided
perplexity" procedure, except that no token is scored without history).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .errors import PocketLMError
from .sampling import log_softmax


@dataclass(frozen=True)
class Window:
    begin: int
    end: int
    first_scored: int  # positions first_scored .. end-1 are scored (predicted from the tokens before)


def windows(n_tokens: int, context: int, stride: int) -> list[Window]:
    if context < 2:
        raise PocketLMError(f"perplexity context must be at least 2 tokens, got {context}")
    if not 1 <= stride <= context:
        raise PocketLMError(f"perplexity stride must be between 1 and the context ({context}), got {stride}")
    if n_tokens < 2:
        raise PocketLMError("perplexity needs a text of at least 2 tokens")
    # Each window scores `step` new tokens with the rest of the window as history (at least one
    # token: a window that began at its first scored token would predict it from nothing).
    step = min(stride, context - 1)
    out, first = [], 1
    while first < n_tokens:
        end = min(context if first == 1 else first + step, n_tokens)
        out.append(Window(max(0, end - context), end, first))
        first = end
    return out


def perplexity(logits_fn: Callable[[Sequence[int]], np.ndarray], ids: Sequence[int], context: int,
               stride: int) -> dict:
    """logits_fn(window_ids) -> [len(window_ids), vocab] next-token logits for every position."""
    nll, count = 0.0, 0
    ids = list(ids)
    for w in windows(len(ids), context, stride):
        logits = np.asarray(logits_fn(ids[w.begin : w.end]), dtype=np.float64)
        rows = logits[w.first_scored - 1 - w.begin : w.end - 1 - w.begin]
        targets = np.asarray(ids[w.first_scored : w.end])
        logp = log_softmax(rows)
        nll -= float(logp[np.arange(len(targets)), targets].sum())
        count += len(targets)
    return {"perplexity": round(math.exp(nll / count), 4), "tokens": count, "context": context, "stride": stride}

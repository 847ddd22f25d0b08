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


RowsFn = Callable[[Sequence[int], int], np.ndarray]


def perplexity(rows_fn: RowsFn, ids: Sequence[int], context: int, stride: int, progress=None) -> dict:
    """rows_fn(window_ids, first) -> [len(window_ids) - first, vocab]: the logits that predict
    window_ids[first:] (each from the tokens before it in the window)."""
    nll, count = 0.0, 0
    ids = list(ids)
    for w in windows(len(ids), context, stride):
        rows = np.asarray(rows_fn(ids[w.begin : w.end], w.first_scored - w.begin), dtype=np.float64)
        targets = np.asarray(ids[w.first_scored : w.end])
        if rows.shape[0] != len(targets):
            raise PocketLMError(f"perplexity: got {rows.shape[0]} rows of logits for {len(targets)} tokens")
        nll -= float(log_softmax(rows)[np.arange(len(targets)), targets].sum())
        count += len(targets)
        if progress:
            progress(len(targets))
    return {"perplexity": round(math.exp(nll / count), 4), "tokens": count, "context": context, "stride": stride}


def rows_from_full(logits_fn: Callable[[Sequence[int]], np.ndarray]) -> RowsFn:
    """For a model that returns logits at every position of a sequence (an eager model)."""
    return lambda window, first: np.asarray(logits_fn(window))[first - 1 : -1]


def rows_from_engine(engine) -> RowsFn:
    """Through an engine's KV cache, as generation runs: prefill the window's history in one
    call, then decode the scored tokens one at a time."""

    def rows(window, first):
        engine.reset()
        out = [engine.prefill(window[:first])]
        out += [engine.decode(t) for t in window[first:-1]]
        engine.reset()
        return np.stack(out)

    return rows


DEFAULT_TEXT = "eval_en.txt"
# The conversion report's perplexity: the first REPORT_TOKENS tokens of DEFAULT_TEXT, windows of
# REPORT_CONTEXT tokens (or the bundle's context if shorter) moving by half a window.
REPORT_CONTEXT = 256
REPORT_TOKENS = 2048


def report_settings(max_context: int) -> tuple[int, int]:
    context = min(REPORT_CONTEXT, max_context)
    return context, max(1, context // 2)


def text_ids(encode: Callable[[str], list[int]], text: str, max_tokens: int | None) -> list[int]:
    ids = encode(text)
    if len(ids) < 2:
        raise PocketLMError("the perplexity text is empty (fewer than 2 tokens)")
    return ids[:max_tokens] if max_tokens else ids


def bundle_perplexity(bundle, text: str, context: int = 256, stride: int | None = None,
                      max_tokens: int | None = None, threads: int | None = None, progress=None) -> dict:
    """Perplexity of a bundle through its engine (the numbers an app would get)."""
    from .bundle import read_bundle
    from .engines import open_engine
    from .tokenizer import Tokenizer

    bundle = read_bundle(bundle) if not hasattr(bundle, "manifest") else bundle
    context = min(context, bundle.runtime["max_context"])
    ids = text_ids(lambda t: Tokenizer.from_bundle(bundle).encode(t, add_bos=False), text, max_tokens)
    engine = open_engine(bundle, threads=threads)
    try:
        return perplexity(rows_from_engine(engine), ids, context, stride or context // 2, progress)
    finally:
        engine.close()

"""Keyboard-style text prediction: the k most likely next whole words, or completions of a
partly typed word, from any bundle.

Words are assembled from tokens by a small beam search over a token tree: a
candidate grows while its tokens continue a word, and is scored when the model
would end the word there (probability of a word boundary: a space-initial
token, punctuation, a newline or end of text). The search stops at a time
budget. The KV cache of the text before the word is kept between calls and only
the changed tail is run again, so typing one more character costs little.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field

import numpy as np

from ..errors import GenerationError
from ..sampling import log_softmax
from .presets import task_presets

WORD_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'-") | {
    chr(c) for c in range(0xC0, 0x250)  # Latin letters with diacritics
}


@dataclass
class Suggestion:
    word: str
    logprob: float

    @property
    def probability(self) -> float:
        return math.exp(self.logprob)


@dataclass
class Prediction:
    partial: str  # the typed start of the current word ("" after a space)
    suggestions: list[Suggestion]
    reused_tokens: int  # cached prefix tokens not run again
    new_tokens: int  # prefix tokens run for this call
    steps: int  # engine calls spent on the word search
    seconds: float

    @property
    def words(self) -> list[str]:
        return [s.word for s in self.suggestions]


@dataclass
class _Candidate:
    logprob: float
    tokens: list[int] = field(default_factory=list)
    text: str = ""


class TokenTable:
    """What each token adds to a text, and whether it starts a word, continues one, or ends one."""

    def __init__(self, tokenizer):
        anchor = tokenizer.encode("a", add_bos=False)[:1]
        base = tokenizer.decode(anchor, skip_special_tokens=False)
        n = tokenizer.vocab_size
        texts = []
        for i in range(n):
            full = tokenizer.decode(anchor + [i], skip_special_tokens=False)
            texts.append(full[len(base):] if full.startswith(base) else "\ufffd")
        self.texts = texts
        self._array = np.array(texts, dtype=object)
        self._ids_by_text: dict[str, list[int]] = {}
        for i, t in enumerate(texts):
            self._ids_by_text.setdefault(t, []).append(i)
        specials = set(tokenizer.eos_token_ids) | ({tokenizer.bos_token_id} - {None})
        self.starts = np.array([_starts_word(t) for t in texts])
        self.continues = np.array([bool(t) and all(c in WORD_CHARS for c in t) for t in texts])
        self.boundary = np.array([
            i in specials or (bool(t) and (t[0].isspace() or (t[0] not in WORD_CHARS and t[0] != "\ufffd")))
            for i, t in enumerate(texts)
        ])
        self.special = np.zeros(n, dtype=bool)
        self.special[list(specials)] = True

    def consistent_with(self, rest: str) -> np.ndarray:
        """Tokens whose text starts with `rest`, or is itself a start of `rest`."""
        mask = np.char.startswith(self._array.astype(str), rest)
        for end in range(1, len(rest)):
            mask[self._ids_by_text.get(rest[:end], [])] = True
        return mask


def _starts_word(text: str) -> bool:
    return len(text) >= 2 and text[0] == " " and all(c in WORD_CHARS for c in text[1:])


class TextPredictor:
    """predict(text, k) over a loaded Model; reuses the engine's cache across calls.

    The predictor owns the engine while in use: generate()/chat() on the same model reset it.
    """

    def __init__(self, model, beam: int | None = None, max_word_tokens: int | None = None,
                 time_budget: float | None = None, min_ratio: float = 1e-3):
        preset = task_presets(model.manifest)["predict"]  # defaults: beam 6, 4 tokens a word, 0.25 s
        self.model = model
        self.engine = model.engine
        self.tokenizer = model.tokenizer
        self.beam = beam or preset["beam"]
        self.max_word_tokens = max_word_tokens or preset["max_word_tokens"]
        self.time_budget = time_budget if time_budget is not None else preset["time_budget_ms"] / 1000
        self.min_ratio = min_ratio  # suggestions less likely than this fraction of the best are dropped
        self.table = TokenTable(self.tokenizer)
        self._cached: list[int] = []  # tokens whose K/V are in the engine, positions 0..len-1
        self._last_logits: np.ndarray | None = None  # logits after all of _cached
        self._epoch = self.engine.epoch  # generate()/chat() reset the engine: then the cache is gone
        self._consistent_memo: dict[str, np.ndarray] = {}

    # ---------------------------------------------------------------- prefix cache
    def _logits_after(self, tokens: list[int]) -> tuple[np.ndarray, int, int]:
        """Logits after `tokens`, running only what differs from the cached tokens."""
        if self.engine.epoch != self._epoch:
            self._cached, self._last_logits, self._epoch = [], None, self.engine.epoch
        common = 0
        for a, b in zip(self._cached, tokens):
            if a != b:
                break
            common += 1
        if common == len(tokens) == len(self._cached) and self._last_logits is not None:
            return self._last_logits, common, 0
        common = min(common, len(tokens) - 1, self.engine.position)  # at least one token must run
        self.engine.rewind(common)
        logits = self.engine.prefill(tokens[common:])
        self._cached, self._last_logits = list(tokens), logits
        return logits, common, len(tokens) - common

    def _branch_logits(self, base_len: int, base_logits: np.ndarray, tokens: list[int]) -> np.ndarray:
        """Logits after prefix + tokens; the branch overwrites cache entries past the prefix."""
        if not tokens:
            return base_logits
        self.engine.rewind(base_len)
        logits = self.engine.prefill(tokens)
        self._cached = self._cached[:base_len]
        self._last_logits = None  # the cache now holds a branch, not the bare prefix
        return logits

    # ---------------------------------------------------------------- search
    def predict(self, text: str, k: int = 3) -> Prediction:
        if k < 1:
            raise GenerationError(f"k must be >= 1, got {k}")
        start = time.perf_counter()
        cut = len(text)
        while cut > 0 and text[cut - 1] in WORD_CHARS:
            cut -= 1
        partial = text[cut:]  # empty after a space or punctuation
        context = text[:cut].rstrip()
        prefix = self.tokenizer.encode(context) if context else []
        if not prefix:
            if self.tokenizer.bos_token_id is None:
                raise GenerationError("this tokenizer has no BOS token to predict the first word from")
            prefix = [self.tokenizer.bos_token_id]
        if len(prefix) + self.max_word_tokens + 1 > self.engine.max_context:
            prefix = prefix[-(self.engine.max_context - self.max_word_tokens - 1):]
            self._cached, self._last_logits = [], None
        base_logits, reused, new = self._logits_after(prefix)
        base_len = len(prefix)
        want = (" " if context else "") + partial
        table = self.table
        deadline = start + self.time_budget
        frontier = [_Candidate(0.0)]
        complete: dict[str, float] = {}
        steps = 0
        for depth in range(self.max_word_tokens + 1):
            grown: list[_Candidate] = []
            for cand in frontier:
                if time.perf_counter() > deadline and complete:
                    break
                if cand.logprob <= self._kth(complete, k):
                    continue  # its log-prob bounds every word it can become: it cannot enter the top k
                logits = self._branch_logits(base_len, base_logits, cand.tokens)
                steps += bool(cand.tokens)
                logp = log_softmax(logits)
                logp[table.special & ~table.boundary] = -np.inf
                word = cand.text.strip()
                if cand.tokens and word and word.startswith(partial):
                    p_end = float(np.logaddexp.reduce(logp[table.boundary]))
                    score = cand.logprob + p_end
                    if score > complete.get(word, -np.inf):
                        complete[word] = score
                if depth == self.max_word_tokens:
                    continue
                allowed = (table.starts if (not cand.tokens and context) else table.continues).copy()
                if not cand.tokens and not context:
                    allowed |= table.continues
                allowed &= self._consistent(cand.text, want)
                scores = np.where(allowed, logp, -np.inf)
                top = np.argpartition(-scores, min(self.beam, len(scores) - 1))[: self.beam]
                for t in top:
                    if np.isfinite(scores[t]):
                        grown.append(_Candidate(cand.logprob + float(scores[t]), cand.tokens + [int(t)],
                                                cand.text + table.texts[t]))
            kth = self._kth(complete, k)
            frontier = [c for c in sorted(grown, key=lambda c: -c.logprob)[: self.beam] if c.logprob > kth]
            if not frontier or (time.perf_counter() > deadline and complete):
                break
        best = sorted(complete.items(), key=lambda kv: -kv[1])[:k]
        best = [(w, s) for w, s in best if s >= best[0][1] + math.log(self.min_ratio)]
        return Prediction(partial, [Suggestion(w, s) for w, s in best], reused, new, steps,
                          time.perf_counter() - start)

    @staticmethod
    def _kth(complete: dict[str, float], k: int) -> float:
        return sorted(complete.values())[-k] if len(complete) >= k else -np.inf

    def _consistent(self, text: str, want: str) -> np.ndarray:
        """Tokens that keep `text + token` compatible with the typed start `want`."""
        if len(text) >= len(want):
            return np.ones(len(self.table.texts), dtype=bool)
        rest = want[len(text):]
        if rest not in self._consistent_memo:
            self._consistent_memo[rest] = self.table.consistent_with(rest)
        return self._consistent_memo[rest]


def evaluate_prediction(predictor: TextPredictor, text: str, max_words: int = 60, k: int = 3) -> dict:
    """Next-word top-1/top-k accuracy and keystroke savings over the words of `text`.

    Keystrokes: a word is typed letter by letter until it appears among the k
    suggestions, then taken with one tap; savings = 1 - keystrokes / letters
    (spaces and punctuation are not counted on either side).
    """
    words = list(re.finditer(r"[A-Za-z][A-Za-z'-]*", text))[1 : max_words + 1]  # the first word has no context
    if not words:
        raise GenerationError("the evaluation text has no words to predict")
    top1 = topk = letters = keystrokes = 0
    for m in words:
        word, context = m.group(), text[: m.start()]
        first = predictor.predict(context, k=k).words
        top1 += bool(first) and first[0] == word
        topk += word in first
        letters += len(word)
        typed = len(word)
        for j in range(len(word)):
            shown = first if j == 0 else predictor.predict(context + word[:j], k=k).words
            if word in shown:
                typed = j + 1
                break
        keystrokes += typed
    n = len(words)
    return {
        "words": n,
        "top1_accuracy": round(top1 / n, 4),
        f"top{k}_accuracy": round(topk / n, 4),
        "keystroke_savings": round(1 - keystrokes / letters, 4),
    }

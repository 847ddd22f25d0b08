"""The sliding-window perplexity that the Core ML accuracy check (and evaluation) use."""

import math

import numpy as np
import pytest

from pocketlm.errors import PocketLMError
from pocketlm.perplexity import perplexity, windows
from pocketlm.sampling import log_softmax


@pytest.mark.parametrize("n,context,stride", [(10, 4, 2), (100, 32, 16), (33, 32, 32), (7, 64, 32), (50, 8, 3)])
def test_every_token_but_the_first_is_scored_once(n, context, stride):
    scored = []
    for w in windows(n, context, stride):
        assert w.end - w.begin <= context and w.begin < w.first_scored <= w.end
        scored += range(w.first_scored, w.end)
    assert scored == list(range(1, n))


def test_matches_one_pass_when_the_window_holds_the_text():
    rng = np.random.default_rng(0)
    table = rng.normal(size=(20, 11))  # logits depend on the current token only: windows cannot change them
    ids = rng.integers(0, 11, size=20).tolist()
    ids = [i % 11 for i in ids]

    def logits_fn(window):
        return table[np.asarray(window)]

    logp = log_softmax(table[np.asarray(ids[:-1])])
    want = math.exp(-logp[np.arange(19), ids[1:]].mean())
    for context, stride in ((32, 16), (6, 3), (5, 5)):
        got = perplexity(logits_fn, ids, context, stride)
        assert got["tokens"] == 19
        assert got["perplexity"] == pytest.approx(want, rel=1e-4)


@pytest.mark.parametrize("n,context,stride,message", [
    (10, 1, 1, "context must be at least 2"),
    (10, 8, 9, "stride must be between 1 and the context"),
    (1, 8, 4, "at least 2 tokens"),
])
def test_bad_arguments(n, context, stride, message):
    with pytest.raises(PocketLMError, match=message):
        windows(n, context, stride)

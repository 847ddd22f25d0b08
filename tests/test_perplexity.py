"""The sliding-window perplexity that the Core ML accuracy check (and evaluation) use."""

import math

import numpy as np
import pytest

from pocketlm.errors import PocketLMError
from pocketlm.perplexity import perplexity, rows_from_full, windows
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
        got = perplexity(rows_from_full(logits_fn), ids, context, stride)
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


@pytest.mark.parametrize("family", ["llama", "qwen2"])  # qwen2: a sliding window shorter than the context
def test_same_number_eager_and_through_a_bundle(tiny_model_dir, tiny_bundle, family):
    from pocketlm.converter.eager_perplexity import model_perplexity
    from pocketlm.datafiles import data_text
    from pocketlm.perplexity import bundle_perplexity

    text = data_text("eval_en.txt")
    eager = model_perplexity(str(tiny_model_dir(family)), text, context=32, max_tokens=300)
    bundled = bundle_perplexity(tiny_bundle(family, "fp32"), text, context=32, max_tokens=300)
    assert eager["tokens"] == bundled["tokens"] == 299
    assert bundled["perplexity"] == pytest.approx(eager["perplexity"], rel=1e-4)


def test_cli_ppl_on_a_bundle_and_on_a_model(tiny_model_dir, tiny_bundle, tmp_path, capsys):
    import json

    from pocketlm.cli import main

    text = tmp_path / "text.txt"
    text.write_text("The cat sat on the mat. " * 40)
    results = []
    for target in (str(tiny_bundle("llama", "fp32")), str(tiny_model_dir("llama"))):
        capsys.readouterr()
        assert main(["eval", target, "--ppl", str(text), "--context", "32", "--stride", "8"]) == 0
        results.append(json.loads(capsys.readouterr().out))
    assert [r["runs_on"] for r in results] == ["bundle", "eager float32"]
    assert results[0]["perplexity"] == pytest.approx(results[1]["perplexity"], rel=1e-4)
    assert main(["eval", target, "--ppl", str(tmp_path / "missing.txt")]) == 2
    (tmp_path / "empty.txt").write_text("")
    capsys.readouterr()
    assert main(["eval", target, "--ppl", str(tmp_path / "empty.txt")]) == 1
    assert "the perplexity text is empty" in capsys.readouterr().err
    assert main(["eval", target]) == 2  # neither --task nor --ppl

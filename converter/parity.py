"""Parity: compare a lowered model's next-token logits with the eager model's on real text.

Teacher-forced: both see the same tokens; the bundle's engine prefills the first
half in one call (the prefill path) and decodes the rest one token at a time
(the decode path), so both exported paths are checked.
"""

from __future__ import annotations

import contextlib
import os
import sys

import numpy as np
import torch

from pocketlm.sampling import log_softmax

PARITY_QUESTION = "How does the water cycle work?"
PARITY_ANSWER = (
    "Water evaporates from oceans, lakes and rivers when the sun warms them. The vapour rises, cools and "
    "condenses into clouds. When the droplets grow heavy they fall back as rain or snow, which runs into "
    "rivers or soaks into the ground, and the cycle begins again. Plants also release water through their "
    "leaves, and glaciers store it as ice for thousands of years before it melts and returns to the sea."
)


def parity_token_ids(hf_tokenizer, n_tokens: int) -> list[int]:
    """A chat exchange when the model has a template (what it will see in use), plain text otherwise."""
    if isinstance(getattr(hf_tokenizer, "chat_template", None), str):
        messages = [{"role": "user", "content": PARITY_QUESTION}, {"role": "assistant", "content": PARITY_ANSWER}]
        ids = hf_tokenizer.apply_chat_template(messages, tokenize=True, return_dict=False)
        if isinstance(ids, dict):
            ids = ids["input_ids"]
    else:
        ids = hf_tokenizer(PARITY_QUESTION + "\n" + PARITY_ANSWER, add_special_tokens=True)["input_ids"]
    ids = [int(i) for i in ids]
    return ids[:n_tokens]


@contextlib.contextmanager
def native_stderr_silenced():
    """Mute C++ log lines written straight to fd 2 (the eager llama:: kernels log every call)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@torch.no_grad()
def eager_logits(decoder, tokens: list[int]) -> np.ndarray:
    """[len(tokens), vocab] logits of the eager decoder over the whole sequence at once."""
    decoder.reset_cache()
    decoder.all_logits = True
    try:
        with native_stderr_silenced():
            out = decoder(torch.tensor([tokens], dtype=torch.long), torch.tensor([0], dtype=torch.long))
    finally:
        decoder.all_logits = False
        decoder.reset_cache()
    return out[0].float().numpy()


def engine_logits(engine, tokens: list[int]) -> tuple[np.ndarray, int]:
    """Logits at positions split-1 .. len-2 from an Engine (prefill tokens[:split], then decode)."""
    split = max(1, len(tokens) // 2)
    engine.reset()
    rows = [engine.prefill(tokens[:split])]
    for t in tokens[split:-1]:
        rows.append(engine.decode(t))
    engine.reset()
    return np.stack(rows), split - 1


def compare(reference: np.ndarray, candidate: np.ndarray) -> dict:
    ref = reference.astype(np.float64)
    cand = candidate.astype(np.float64)
    ref_logp, cand_logp = log_softmax(ref), log_softmax(cand)
    kl = (np.exp(ref_logp) * (ref_logp - cand_logp)).sum(-1)
    return {
        "top1_agreement": round(float((ref.argmax(-1) == cand.argmax(-1)).mean()), 4),
        "max_abs_logit_diff": round(float(np.abs(ref - cand).max()), 5),
        "mean_kl": round(float(kl.mean()), 6),
    }


"""Checks more than one test file makes: the same assertion on every target, written once."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import torch

import pocketlm


def hf_logits(model_dir, tokens) -> np.ndarray:
    """[len(tokens), vocab] logits of the Hugging Face model itself (the reference for parity)."""
    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        return hf(torch.tensor([tokens])).logits[0].numpy()


def assert_greedy_chat_answers_paris(bundle, **load_options) -> None:
    with pocketlm.load(bundle, **load_options) as model:
        answer = "".join(model.chat([{"role": "user", "content": "What is the capital of France?"}], max_new_tokens=24))
        stats = model.last_stats
    assert "Paris" in answer, answer
    assert stats.prefill_tokens_per_second > 0 and stats.decode_tokens_per_second > 0


def unknown_family_folder(tiny_folder: Path, out: Path, model_type: str = "gpt2") -> Path:
    """A copy of a tiny model folder whose config names a family pocketlm does not support."""
    shutil.copytree(tiny_folder, out)
    config = json.loads((out / "config.json").read_text())
    config["model_type"] = model_type
    (out / "config.json").write_text(json.dumps(config))
    return out

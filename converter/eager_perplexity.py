"""Perplexity of a model source (Hugging Face folder, GGUF, named model) in eager PyTorch,
float32 — the reference a bundle's number is compared with."""

from __future__ import annotations

from pocketlm.datafiles import data_text
from pocketlm.perplexity import DEFAULT_TEXT, REPORT_TOKENS, perplexity, report_settings, rows_from_full, text_ids

from . import parity


def decoder_perplexity(decoder, hf_tokenizer) -> dict:
    """The conversion report's perplexity of an eager decoder (see pocketlm.perplexity.report_settings)."""
    context, stride = report_settings(decoder.shape.max_context)
    ids = text_ids(lambda t: hf_tokenizer(t, add_special_tokens=False)["input_ids"], data_text(DEFAULT_TEXT),
                   REPORT_TOKENS)
    result = perplexity(rows_from_full(lambda window: parity.eager_logits(decoder, window)), ids, context, stride)
    return {**result, "text": DEFAULT_TEXT}


def model_perplexity(source: str, text: str, context: int = 256, stride: int | None = None,
                     max_tokens: int | None = None, progress=None, echo=None) -> dict:
    from .decoder import Decoder, load_custom_ops
    from .sources import load_source

    loaded = load_source(source, echo=echo)
    load_custom_ops()
    decoder = Decoder(loaded.model, max_context=context).eval()
    ids = text_ids(lambda t: loaded.tokenizer(t, add_special_tokens=False)["input_ids"], text, max_tokens)
    rows = rows_from_full(lambda window: parity.eager_logits(decoder, window))
    return perplexity(rows, ids, context, stride or context // 2, progress)

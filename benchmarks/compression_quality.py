"""Perplexity and top-1 agreement with the float model, per compression recipe, on one model.

Each ROW is LABEL=SOURCE[@QUANT]: a model source (named model, GGUF, or a folder written by
pocketlm prune / distill / finetune) and optionally the ExecuTorch recipe applied to it
eagerly, exactly as `pocketlm convert --quant QUANT` quantizes before lowering (the lowered
bundle matches the eager quantized model: see each conversion report's vs_quantized_eager).
Perplexity: eval_en.txt, the conversion report's windows (2,048 tokens, window 256, stride
128). Top-1: the share of those scored positions where the row's most likely next token is
the reference's.

    python benchmarks/compression_quality.py --reference smollm2-135m \\
        float=smollm2-135m 8da4w=smollm2-135m@8da4w gguf=smollm2-135m@gguf qat=/tmp/smol-qat@8da4w \\
        --out benchmarks/results/$(date +%F)-compression-smollm2.md
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from pocketlm.converter import parity
from pocketlm.converter.decoder import Decoder, load_custom_ops
from pocketlm.converter.prune import count_parameters
from pocketlm.converter.recipes import apply_recipe, build_recipe
from pocketlm.converter.sources import load_source
from pocketlm.datafiles import data_text
from pocketlm.perplexity import DEFAULT_TEXT, REPORT_TOKENS, perplexity, report_settings, rows_from_full, text_ids

MAX_CONTEXT = 1024


def evaluate(source: str, quant: str | None, reference_top1: list | None):
    loaded = load_source(source, echo=lambda m: None)
    params = count_parameters(loaded.model)
    decoder = Decoder(loaded.model, max_context=MAX_CONTEXT).eval()
    if quant:
        recipe = build_recipe(quant, 32)
        gguf_source = (loaded.gguf_path, loaded.model) if recipe.needs_gguf_source else None
        apply_recipe(decoder, recipe, gguf_source=gguf_source)
    context, stride = report_settings(MAX_CONTEXT)
    ids = text_ids(lambda t: loaded.tokenizer(t, add_special_tokens=False)["input_ids"], data_text(DEFAULT_TEXT),
                   REPORT_TOKENS)
    top1: list[int] = []
    full = rows_from_full(lambda window: parity.eager_logits(decoder, window))

    def rows(window, first):
        out = full(window, first)
        top1.extend(np.asarray(out).argmax(-1).tolist())
        return out

    result = perplexity(rows, ids, context, stride)
    agreement = None if reference_top1 is None else float(np.mean(np.asarray(top1) == np.asarray(reference_top1)))
    return result["perplexity"], agreement, top1, params


def history_line(source: str) -> str:
    history_file = Path(source) / "pocketlm_history.json"
    if not history_file.is_file():
        return ""
    parts = []
    for step in json.loads(history_file.read_text())["steps"]:
        if step["step"] == "prune":
            parts.append(f"prune ({step['parameters_removed_pct']}% of parameters)")
        else:
            seen = step.get("tokens_seen") or step["steps"] * 8 * 256  # runs before tokens_seen: batch 8 x 256
            qat = f", QAT {step['settings']['qat']}" if step.get("settings", {}).get("qat") else ""
            parts.append(f"{step['step']}{qat}: {step['steps']} steps, {seen / 1e3:.0f}k tokens, "
                         f"{step['seconds'] / 60:.1f} min")
    return "; ".join(parts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("rows", nargs="+", metavar="LABEL=SOURCE[@QUANT]")
    ap.add_argument("--reference", required=True, help="the float model the rows are compared with")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    load_custom_ops()
    ref_ppl, _, ref_top1, ref_params = evaluate(args.reference, None, None)
    lines = [
        "| row | source | recipe | parameters | perplexity | vs float | top-1 vs float | what was done |",
        "|---|---|---|---|---|---|---|---|",
        f"| reference | {args.reference} | float32 | {ref_params / 1e6:.1f} M | {ref_ppl:.2f} | — | 1.00 | |",
    ]
    for row in args.rows:
        label, _, spec = row.partition("=")
        source, _, quant = spec.partition("@")
        start = time.perf_counter()
        ppl, top1, _, params = evaluate(source, quant or None, ref_top1)
        line = (f"| {label} | {Path(source).name} | {quant or 'float32'} | {params / 1e6:.1f} M | {ppl:.2f} | "
                f"{100 * (ppl / ref_ppl - 1):+.1f}% | {top1:.2f} | {history_line(source)} |")
        lines.append(line)
        print(line, f"({time.perf_counter() - start:.0f} s)", flush=True)
    machine = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, {platform.platform()}"
    text = ("\n".join(lines) + "\n\nPerplexity on eval_en.txt (2,047 scored tokens, window 256, stride 128); "
            f"top-1 over the same positions. Machine: {machine}.\n")
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()

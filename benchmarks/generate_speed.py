"""Prefill and decode speed of bundles on this machine, llama-bench style.

    python benchmarks/generate_speed.py BUNDLE [BUNDLE …] --threads 2 --prompt-lengths 32,128 --gen 64 --runs 5

Per bundle and prompt length: one warm-up, then R runs interleaved across
bundles (A B A B …, so machine drift hits all alike). Prefill is timed over one
prompt of real English tokens (pocketlm/data/profile_prompt.txt), decode over --gen greedy tokens after it.
Prints a markdown table (median, mean ± sd, min–max) with the machine described;
--out FILE also writes it.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
from pathlib import Path


def machine() -> str:
    from pocketlm.profiling.host import cpu_model
    from pocketlm.versions import installed

    et = installed(("executorch",)).get("executorch", "not installed")
    return f"{cpu_model()}, {os.cpu_count()} CPUs, {platform.platform()}, executorch {et}"


def one_run(model, prompt: list[int], gen: int) -> tuple[float, float]:
    """(prefill tok/s, decode tok/s): the same timed run as `pocketlm profile`."""
    from pocketlm.profiling.host import _timed_run

    run = _timed_run(model.engine, prompt, gen + 1)  # gen tokens decoded after the first
    return run["prompt_tokens"] / (run["prefill_ms"] / 1e3), run["decode_tokens"] / (run["decode_ms"] / 1e3)


def summarize(xs: list[float]) -> str:
    sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return f"{statistics.median(xs):.1f} | {statistics.mean(xs):.1f} ± {sd:.1f} | {min(xs):.1f}–{max(xs):.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundles", nargs="+")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prompt-lengths", default="32,128")
    ap.add_argument("--gen", type=int, default=64)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()

    import pocketlm
    from pocketlm.profiling.host import prompt_tokens

    models = [pocketlm.load(b, threads=args.threads) for b in args.bundles]
    lengths = [int(x) for x in args.prompt_lengths.split(",")]
    results: dict[tuple[int, int], tuple[list, list]] = {}
    for length in lengths:
        prompts = []
        for m in models:
            ids = prompt_tokens(m.tokenizer, length)
            if length + args.gen > m.engine.max_context:
                raise SystemExit(f"{m.bundle.name}: {length}+{args.gen} tokens exceed its context")
            prompts.append(ids[:length])
        for i, m in enumerate(models):  # warm-up
            one_run(m, prompts[i], args.gen)
        for _ in range(args.runs):
            for i, m in enumerate(models):
                p, d = one_run(m, prompts[i], args.gen)
                pre, dec = results.setdefault((i, length), ([], []))
                pre.append(p)
                dec.append(d)

    lines = [
        f"Machine: {machine()}; threads {args.threads}; {args.runs} runs after 1 warm-up, interleaved; "
        f"decode = {args.gen} greedy tokens after the prompt.",
        "",
        "| bundle | size MB | prompt | prefill tok/s median | mean ± sd | min–max "
        "| decode tok/s median | mean ± sd | min–max |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for (i, length), (pre, dec) in sorted(results.items()):
        m = models[i]
        size = m.manifest["report"]["size_bytes"] / 1e6
        lines.append(f"| {m.bundle.name} | {size:.0f} | {length} | {summarize(pre)} | {summarize(dec)} |")
    report = "\n".join(lines)
    print(report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report + "\n")


if __name__ == "__main__":
    main()

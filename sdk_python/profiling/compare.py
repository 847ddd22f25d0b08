"""`pocketlm compare`: the trade-offs of several bundles in one table and one plot.

Each bundle is profiled in its own process (peak memory and the runtime's
thread pool are per process), with its perplexity on the profile text measured
there too unless its manifest already reports one.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from ..bundle import MANIFEST
from .report import _plt
from .results import ProfileError

# metric -> True when larger is better
METRICS = {"size_mb": False, "perplexity": False, "prefill_tok_s": True, "decode_tok_s": True, "peak_mb": False}


def find_bundles(paths: list[str]) -> list[Path]:
    found: list[Path] = []
    for p in map(Path, paths):
        if (p / MANIFEST).is_file():
            found.append(p)
        elif p.is_dir():
            found += sorted(q.parent for q in p.glob(f"*/{MANIFEST}"))
        else:
            raise ProfileError(f"{p} is neither a bundle nor a folder of bundles")
    if len(found) < 1:
        raise ProfileError("no bundles found to compare")
    return found


def profile_in_subprocess(bundle: Path, prompt_length: int, gen: int, runs: int, threads: int | None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pocketlm", "profile", str(bundle), "--out", tmp,
               "--prompt-lengths", str(prompt_length), "--gen", str(gen), "--runs", str(runs), "--warmup", "1",
               "--no-operators", "--no-plots", "--perplexity"]
        if threads:
            cmd += ["--threads", str(threads)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["failed"])[-1]
            raise ProfileError(f"profiling {bundle} failed: {last}")
        return json.loads((Path(tmp) / "report.json").read_text())


def row_from_report(report: dict) -> dict:
    p = report["prompt_lengths"][0]
    return {
        "bundle": report["bundle"]["name"],
        "recipe": report["bundle"].get("recipe", "?"),
        "size_mb": round(report["bundle"].get("size_bytes", 0) / 1e6, 1),
        "perplexity": (report.get("quality") or {}).get("perplexity"),
        "prefill_tok_s": p["prefill_tokens_per_second"]["median"],
        "decode_tok_s": p["decode_tokens_per_second"]["median"],
        "peak_mb": report["memory"]["peak_rss_mb"],
    }


def pareto(rows: list[dict]) -> list[bool]:
    """A row is on the front when no other row is at least as good on every metric and better on one."""

    def better_or_equal(a, b, m):
        if a[m] is None or b[m] is None:
            return True  # a missing number neither helps nor hurts
        return a[m] >= b[m] if METRICS[m] else a[m] <= b[m]

    def dominates(a, b):
        return all(better_or_equal(a, b, m) for m in METRICS) and any(
            a[m] is not None and b[m] is not None and a[m] != b[m] for m in METRICS
        )

    return [not any(dominates(o, r) for o in rows if o is not r) for r in rows]


def markdown(rows: list[dict], settings: str) -> str:
    lines = [
        "# Bundle trade-offs",
        "",
        settings,
        "",
        "| bundle | recipe | size MB | perplexity | prefill tok/s | decode tok/s | peak MB | Pareto |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ppl = f"{r['perplexity']:.2f}" if r["perplexity"] is not None else "—"
        lines.append(f"| {r['bundle']} | {r['recipe']} | {r['size_mb']:.1f} | {ppl} | {r['prefill_tok_s']:.1f} | "
                     f"{r['decode_tok_s']:.1f} | {r['peak_mb']:.0f} | {'★' if r['pareto'] else ''} |")
    lines += ["", "★ = on the Pareto front (no other bundle is at least as good on every column and better on one)."]
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in rows:
        ax.scatter(r["size_mb"], r["decode_tok_s"], s=90 if r["pareto"] else 40,
                   marker="*" if r["pareto"] else "o", color="tab:red" if r["pareto"] else "tab:gray", zorder=3)
        ppl = f", ppl {r['perplexity']:.1f}" if r["perplexity"] is not None else ""
        ax.annotate(f"{r['bundle']}{ppl}", (r["size_mb"], r["decode_tok_s"]), textcoords="offset points",
                    xytext=(6, 4), fontsize=8)
    front = sorted((r for r in rows if r["pareto"]), key=lambda r: r["size_mb"])
    if len(front) > 1:
        ax.plot([r["size_mb"] for r in front], [r["decode_tok_s"] for r in front], "--", color="tab:red", lw=1)
    ax.set_xlabel("bundle size (MB)")
    ax.set_ylabel("decode tokens / s (median)")
    ax.set_title("size against speed; ★ Pareto front over size, perplexity, speed and memory")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def compare(paths: list[str], out_dir: Path, prompt_length=128, gen=32, runs=3, threads=None, echo=print) -> Path:
    bundles = find_bundles(paths)
    rows = []
    for b in bundles:
        echo(f"profiling {b} …")
        report = profile_in_subprocess(b, prompt_length, gen, runs, threads)
        rows.append(row_from_report(report))  # every perplexity from the same measurement (profile --perplexity)
    for row, front in zip(rows, pareto(rows)):
        row["pareto"] = front
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    settings = (f"Measured on the host, each bundle in its own process: prompt {prompt_length} tokens, "
                f"{gen} generated, {runs} runs after 1 warm-up (medians); "
                f"perplexity on pocketlm's English evaluation text (eval_en.txt).")
    (out_dir / "compare.json").write_text(json.dumps({"settings": settings, "bundles": rows}, indent=2) + "\n")
    (out_dir / "compare.md").write_text(markdown(rows, settings))
    plot(rows, out_dir / "compare.png")
    return out_dir

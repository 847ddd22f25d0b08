"""Profile reports on disk: report.json, report.md and the PNG plots people look at first."""

from __future__ import annotations

import json
from pathlib import Path

from .results import ProfileError


def _plt():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ProfileError("plots need matplotlib; install pocketlm[profile]") from None
    return plt


def _fmt(s: dict) -> str:
    return f"{s['median']:.1f} ({s['mean']:.1f} ± {s['sd']:.1f}, min {s['min']:.1f})"


def markdown(report: dict) -> str:
    d, b, rt = report["device"], report["bundle"], report["runtime"]
    versions = ", ".join(f"{k} {v}" for k, v in sorted(rt["versions"].items()))
    lines = [
        f"# Profile of {b['name']} on {d['kind']} ({d['model']})",
        "",
        f"- device: {d['id']}, {d['os']}, {d['cores']} cores; runtime {rt['backend']} with {rt['threads']} threads "
        f"({versions})",
        f"- bundle: {b.get('recipe', '?')}, {b.get('size_bytes', 0) / 1e6:.1f} MB",
        f"- settings: {report['settings']['runs']} runs after {report['settings']['warmup']} warm-up, "
        f"{report['settings']['gen_tokens']} generated tokens per run",
        f"- load: {report['load_ms']:.0f} ms; peak resident memory: {report['memory']['peak_rss_mb']:.0f} MB",
        f"- energy: {_energy(report['energy'])}",
        "",
        "| prompt tokens | prefill tok/s median (mean ± sd, min) | time to first token ms | decode tok/s |",
        "|---|---|---|---|",
    ]
    for p in report["prompt_lengths"]:
        lines.append(
            f"| {p['prompt_tokens']} | {_fmt(p['prefill_tokens_per_second'])} | "
            f"{_fmt(p['time_to_first_token_ms'])} | {_fmt(p['decode_tokens_per_second'])} |"
        )
    ops = report["operators"]
    lines += ["", "## Per operator", ""]
    if ops["available"]:
        calls = ops.get("delegate_calls") or {}
        lines += [
            f"One prefill + decode pass recorded with ETDump: {ops['total_ms']:.1f} ms in Method::execute, "
            f"{calls.get('count', 0)} delegate calls taking {calls.get('total_ms', 0):.1f} ms. "
            f"Module mapping: {ops['module_mapping']}.",
            "",
            "| operator | delegated | calls | total ms | share |",
            "|---|---|---|---|---|",
        ]
        for r in ops["by_op"][:25]:
            lines.append(f"| {r['name']} | {'yes' if r['delegated'] else 'no'} | {r['calls']} | "
                         f"{r['total_ms']:.3f} | {r['share']:.1%} |")
        step = ops.get("decode_step")
        if ops.get("decode_step_unavailable"):
            lines += ["", f"No decode-step table: {ops['decode_step_unavailable']}."]
        if step:
            lines += ["", f"One decode step (the mean of the pass's last {step['steps']}): {step['step_ms']:.3f} ms. "
                      "XNNPACK times its operators in whole microseconds, so the remainders of its small ones "
                      "are counted in the delegate call overhead.", "",
                      "| operator | delegated | calls per step | ms per step | share |", "|---|---|---|---|---|"]
            lines += [f"| {r['name']} | {'yes' if r['delegated'] else 'no'} | {r['calls_per_step']:g} | "
                      f"{r['ms_per_step']:.4f} | {r['share']:.1%} |" for r in step["by_op"][:15]]
        per_call = sorted((ops.get("delegate_calls") or {}).get("per_call", []), key=lambda c: -c["total_ms"])
        if per_call:
            lines += ["", "Slowest delegate calls (index = order in the program):", "",
                      "| delegate call | calls | total ms |", "|---|---|---|"]
            lines += [f"| #{c['index']} {c['backend']} | {c['calls']} | {c['total_ms']:.3f} |" for c in per_call[:5]]
    else:
        lines.append(f"Not available: {ops['reason']}.")
    return "\n".join(lines) + "\n"


def _energy(e: dict) -> str:
    if not e.get("available"):
        return f"unavailable ({e.get('reason', 'not reported')})"
    c = e.get("charge_counter_uah", {})
    used = c.get("start", 0) - c.get("end", 0)
    return f"{used:.0f} µAh of battery charge over {e.get('duration_s', 0):.0f} s (charge counter)"


def plot_throughput(report: dict, path: Path) -> None:
    plt = _plt()
    lengths = [p["prompt_tokens"] for p in report["prompt_lengths"]]
    fig, ax = plt.subplots(figsize=(6.4, 4))
    series = (("prefill_tokens_per_second", "prefill", "o"), ("decode_tokens_per_second", "decode", "s"))
    for key, label, marker in series:
        med = [p[key]["median"] for p in report["prompt_lengths"]]
        lo = [m - p[key]["min"] for m, p in zip(med, report["prompt_lengths"])]
        hi = [p[key]["max"] - m for m, p in zip(med, report["prompt_lengths"])]
        ax.errorbar(lengths, med, yerr=[lo, hi], marker=marker, capsize=4, label=f"{label} (median, min–max)")
    ax.set_xscale("log", base=2)
    ax.set_xticks(lengths, [str(n) for n in lengths])
    ax.set_xlabel("prompt length (tokens)")
    ax.set_ylabel("tokens / s")
    ax.set_title(f"{report['bundle']['name']} — {report['device']['kind']}, {report['runtime']['threads']} threads")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_memory(report: dict, path: Path) -> None:
    plt = _plt()
    timeline = report["memory"]["timeline"]
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    if timeline:
        ax.plot([t for t, _ in timeline], [mb for _, mb in timeline], lw=1.2, marker=".")
    ax.axhline(report["memory"]["peak_rss_mb"], ls="--", color="gray", lw=0.8,
               label=f"peak {report['memory']['peak_rss_mb']:.0f} MB")
    ax.axvline(report["load_ms"] / 1e3, ls=":", color="tab:green", lw=1, label="model loaded")
    ax.set_xlabel("seconds since the start (read before and after the load, then after every run)")
    ax.set_ylabel("resident memory (MB)")
    ax.set_title("memory over the run")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_operators(report: dict, path: Path, top: int = 15) -> None:
    plt = _plt()
    rows = report["operators"]["by_op"][:top][::-1]
    fig, ax = plt.subplots(figsize=(7.5, 0.35 * len(rows) + 1.2))
    colors = ["tab:gray" if r.get("overhead") else "tab:blue" if r["delegated"] else "tab:orange" for r in rows]
    ax.barh([r["name"] for r in rows], [r["total_ms"] for r in rows], color=colors)
    for i, r in enumerate(rows):
        ax.text(r["total_ms"], i, f" {r['share']:.0%}", va="center", fontsize=8)
    ax.set_xlabel("ms in one recorded pass\n(blue: inside the delegate, orange: outside, gray: overhead)")
    ax.set_title("time per operator type")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(report: dict, out_dir: Path) -> list[Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [out_dir / "report.json", out_dir / "report.md", out_dir / "throughput.png", out_dir / "memory.png"]
    written[0].write_text(json.dumps(report, indent=2) + "\n")
    written[1].write_text(markdown(report))
    plot_throughput(report, written[2])
    plot_memory(report, written[3])
    if report["operators"]["available"]:
        written.append(out_dir / "operators.png")
        plot_operators(report, written[-1])
    return written

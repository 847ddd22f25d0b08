"""What each conversion cost and kept, from the bundles' own reports (no re-measuring):

    python benchmarks/conversion_table.py BUNDLE [BUNDLE …] [--out FILE]

Prints a markdown table: target, recipe, size, export time, conversion time, peak RSS,
teacher-forced top-1 agreement and KL against the float model, perplexity of the stored
weights against float where the conversion measured it (Core ML), weights per kind.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def row(path: Path) -> str:
    m = json.loads((path / "manifest.json").read_text())
    r = m["report"]
    p = r["parity"]["vs_float"]
    rt = m["runtime"]
    delegation = r.get("delegation", {})
    weights = delegation.get("weight_types")
    if weights:
        weights = "; ".join(
            f"{kind} {', '.join(f'{n}×{t}' for t, n in types.items())}" for kind, types in weights.items()
        )
    elif "program" in delegation:  # Core ML: storage of every weight, read back from the program
        weights = ", ".join(f"{n}×{kind}" for kind, n in delegation["program"]["weights"].items())
    ppl = r.get("weights_check", {}).get("perplexity")
    ppl = f"{ppl['float']:.2f} → {ppl['stored_weights']:.2f} ({ppl['delta_pct']:+.1f}%)" if ppl else ""
    return (
        f"| {path.name} | {rt['backend']} | {m['compression']['recipe']} | {rt['max_context']} | "
        f"{r['size_bytes'] / 1e6:.0f} | {r['export_seconds']:.0f} | {r['conversion_seconds']:.0f} | "
        f"{r['peak_rss_mb'] / 1024:.1f} | {p['top1_agreement']:.2f} ({r['parity']['tokens']}) | "
        f"{p['mean_kl']:.4f} | {ppl} | {weights or ''} |"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("bundles", nargs="+", type=Path)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    lines = [
        "| bundle | runtime | recipe | context | size MB | export s | conversion s | peak RSS GB "
        "| top-1 vs float (tokens) | KL vs float | perplexity float → stored | weights |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
        *(row(b) for b in args.bundles),
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()

"""The two JSON formats of profiling, shared by the host runner and the phone apps.

benchmark result (raw)  what a runner measured: one entry per timed run. The
                        host runner writes it; the Android and iOS apps write
                        it in their benchmark mode (schemas/benchmark-result.schema.json).
profile report          a raw result folded into statistics per prompt length
                        (mean ± sd, min, median, max) plus the bundle's facts
                        (schemas/profile-report.schema.json). Plots and tables
                        are drawn from the report only.
"""

from __future__ import annotations

import json
import statistics
from datetime import UTC, datetime
from importlib import resources

from ..errors import PocketLMError

RESULT_FORMAT = "pocketlm-benchmark-result"
REPORT_FORMAT = "pocketlm-profile-report"
VERSION = 1


class ProfileError(PocketLMError):
    """A profiling run that cannot be done or a result that cannot be read."""


def _schema(name: str) -> dict:
    return json.loads(resources.files("pocketlm").joinpath(f"schemas/{name}").read_text())


def validate(doc: dict, schema_name: str, where: str) -> None:
    import jsonschema

    try:
        jsonschema.validate(doc, _schema(schema_name))
    except jsonschema.ValidationError as e:
        field = "/".join(str(p) for p in e.absolute_path) or "(top level)"
        raise ProfileError(f"{where} is not a valid {schema_name.split('.')[0]} at {field}: {e.message}") from None


def summarize(values: list[float]) -> dict:
    vals = [float(v) for v in values]
    return {
        "mean": round(statistics.fmean(vals), 3),
        "sd": round(statistics.stdev(vals), 3) if len(vals) > 1 else 0.0,
        "min": round(min(vals), 3),
        "median": round(statistics.median(vals), 3),
        "max": round(max(vals), 3),
        "n": len(vals),
    }


def fold(result: dict, manifest: dict | None = None) -> dict:
    """Turn a raw benchmark result into a profile report."""
    validate(result, "benchmark-result.schema.json", "the benchmark result")
    by_length: dict[int, list[dict]] = {}
    for run in result["runs"]:
        by_length.setdefault(run["prompt_tokens"], []).append(run)
    lengths = []
    for length, runs in sorted(by_length.items()):
        lengths.append({
            "prompt_tokens": length,
            "runs": len(runs),
            "prefill_tokens_per_second": summarize([length / (r["prefill_ms"] / 1e3) for r in runs]),
            "time_to_first_token_ms": summarize([r["first_token_ms"] for r in runs]),
            "decode_tokens_per_second": summarize(
                [r["decode_tokens"] / (r["decode_ms"] / 1e3) for r in runs if r["decode_tokens"] > 0]
            ),
        })
    bundle = dict(result["bundle"])
    if manifest is not None:
        bundle.update({
            "recipe": manifest["compression"]["recipe"],
            "family": manifest["model"]["family"],
            "size_bytes": manifest["report"]["size_bytes"],
            "backend": manifest["runtime"]["backend"],
            "delegate": manifest["runtime"].get("delegate"),
        })
    memory = result["memory"]
    report = {
        "format": REPORT_FORMAT,
        "version": VERSION,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "device": result["device"],
        "runtime": result["runtime"],
        "bundle": bundle,
        "settings": result["settings"],
        "load_ms": result["load_ms"],
        "prompt_lengths": lengths,
        "memory": {
            "peak_rss_mb": round(memory["peak_rss_kb"] / 1024, 1),
            "timeline": [[round(t / 1e3, 3), round(kb / 1024, 1)] for t, kb in memory.get("samples", [])],
        },
        "energy": result["energy"],
        "operators": _operators(result.get("operators")),
    }
    validate(report, "profile-report.schema.json", "the profile report")
    return report


def _operators(ops: dict | None) -> dict:
    if not ops or not ops.get("available", True):
        reason = (ops or {}).get("reason") or "no per-operator data was recorded"
        return {"available": False, "reason": reason}
    total = ops["total_ms"] or 1e-9
    rows = sorted(ops["by_op"], key=lambda r: -r["total_ms"])
    folded = {
        "available": True,
        "source": ops["source"],
        "total_ms": round(ops["total_ms"], 3),
        "delegate_calls": ops.get("delegate_calls"),
        "module_mapping": ops.get("module_mapping", "not available"),
        "by_op": [{**r, "total_ms": round(r["total_ms"], 4), "share": round(r["total_ms"] / total, 4)} for r in rows],
    }
    if ops.get("decode_step_unavailable"):
        folded["decode_step_unavailable"] = ops["decode_step_unavailable"]
    step = ops.get("decode_step")
    if step:  # one mean decode step: what a generated token costs, without the prefill in it
        step_ms = step["step_ms"] or 1e-9
        folded["decode_step"] = {
            "steps": step["steps"],
            "step_ms": round(step["step_ms"], 4),
            "by_op": [{**r, "calls_per_step": round(r["calls_per_step"], 2), "ms_per_step": round(r["ms_per_step"], 4),
                       "share": round(r["ms_per_step"] / step_ms, 4)}
                      for r in sorted(step["by_op"], key=lambda r: -r["ms_per_step"])],
        }
    return folded


def load_json(path, what: str) -> dict:
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise ProfileError(f"{what} {path} does not exist") from None
    except json.JSONDecodeError as e:
        raise ProfileError(f"{what} {path} is not valid JSON ({e})") from None

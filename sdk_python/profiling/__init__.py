"""Profiling: measure a bundle on this computer or a phone, fold the result into a report.

    report = pocketlm.profiling.profile("bundle", device="host", prompt_lengths=[32, 128])
    pocketlm.profiling.write_report(report, "profile-out")
"""

from __future__ import annotations

from ..bundle import read_bundle
from .devices import parse_device, run_android, run_ios
from .host import measure_perplexity, run_host
from .report import write_report
from .results import ProfileError, fold

RUNNERS = {"host": run_host, "android": run_android, "ios": run_ios}


def profile(
    bundle_path,
    device: str = "host",
    prompt_lengths=(32, 128, 512),
    gen: int = 128,
    runs: int = 5,
    warmup: int = 1,
    threads: int | None = None,
    operators: bool = True,
    perplexity: bool = False,
    progress=None,
) -> dict:
    kind, ident = parse_device(device)
    manifest = read_bundle(bundle_path).manifest
    lengths = [int(n) for n in prompt_lengths]
    if kind == "host":
        raw = run_host(bundle_path, lengths, gen, runs, warmup, threads, operators=operators, progress=progress)
    else:
        raw = RUNNERS[kind](bundle_path, ident, lengths, gen, runs, warmup, threads)
    report = fold(raw, manifest)
    if perplexity:
        report["quality"] = measure_perplexity(bundle_path, threads)
    return report


__all__ = ["ProfileError", "fold", "profile", "write_report"]

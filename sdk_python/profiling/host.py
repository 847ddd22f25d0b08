"""Benchmark a bundle on this computer: the host runner of `pocketlm profile`.

Timed runs and the per-operator pass are separate: ETDump's event recording
costs time, so the timed runs use a plain engine and the operator table comes
from one more run on an engine loaded with ETDump enabled.
"""

from __future__ import annotations

import os
import platform
import resource
import socket
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from ..bundle import read_bundle
from ..datafiles import data_text
from ..engines import engine_class, open_engine
from ..tokenizer import Tokenizer
from ..versions import installed
from .results import RESULT_FORMAT, VERSION, ProfileError


class MemoryTimeline:
    """Resident memory read at phase boundaries (start, after the load, after every run).

    Not a sampling thread: on a 2-core phone or laptop a thread waking every few
    milliseconds stalls the runtime's worker threads and the timings with them.
    The peak inside a run comes from the kernel's own high-water mark (ru_maxrss).
    """

    def __init__(self):
        self.samples: list[list[float]] = []
        self._t0 = time.perf_counter()
        self._page_kb = os.sysconf("SC_PAGE_SIZE") // 1024 if hasattr(os, "sysconf") else 4

    def rss_kb(self) -> int:
        try:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * self._page_kb
        except OSError:  # not Linux: psutil where installed, else the peak so far
            try:
                import psutil

                return psutil.Process().memory_info().rss // 1024
            except ImportError:
                return peak_rss_kb()

    def mark(self) -> None:
        self.samples.append([round((time.perf_counter() - self._t0) * 1e3, 1), self.rss_kb()])

    @property
    def peak_kb(self) -> int:
        return max([peak_rss_kb()] + [kb for _, kb in self.samples])


def peak_rss_kb() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak // 1024 if platform.system() == "Darwin" else peak)  # bytes on macOS, kB on Linux


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def prompt_tokens(tokenizer: Tokenizer, length: int) -> list[int]:
    """`length` tokens of real English text (repeated if the text is shorter)."""
    text = data_text("profile_prompt.txt")
    ids = tokenizer.encode(text)
    while len(ids) < length:
        ids += tokenizer.encode(text, add_bos=False)
    return ids[:length]


def _timed_run(engine, prompt: list[int], gen: int) -> dict:
    engine.reset()
    t0 = time.perf_counter()
    logits = engine.prefill(prompt)
    t1 = time.perf_counter()
    token = int(np.argmax(logits))
    t2 = time.perf_counter()
    for _ in range(gen - 1):
        token = int(np.argmax(engine.decode(token)))
    t3 = time.perf_counter()
    return {
        "prompt_tokens": len(prompt),
        "prefill_ms": (t1 - t0) * 1e3,
        "first_token_ms": (t2 - t0) * 1e3,
        "decode_tokens": max(gen - 1, 0),
        "decode_ms": (t3 - t2) * 1e3,
    }


def run_host(
    bundle_path,
    prompt_lengths: list[int],
    gen: int = 128,
    runs: int = 5,
    warmup: int = 1,
    threads: int | None = None,
    operators: bool = True,
    progress=None,
) -> dict:
    """Measure `bundle_path` here and return a raw benchmark result (benchmark-result schema)."""
    if runs < 1 or warmup < 0 or gen < 1:
        raise ProfileError("--runs must be >= 1, --warmup >= 0 and --gen >= 1")
    bundle = read_bundle(bundle_path)
    max_context = bundle.runtime["max_context"]
    too_long = [n for n in prompt_lengths if n + gen > max_context]
    if too_long:
        raise ProfileError(
            f"prompt length {too_long[0]} + {gen} generated tokens exceed this bundle's {max_context}-token context"
        )
    tokenizer = Tokenizer.from_bundle(bundle)
    prompts = {n: prompt_tokens(tokenizer, n) for n in prompt_lengths}
    note = progress or (lambda msg: None)

    engine_class(bundle.runtime["backend"]).prepare()  # imports are not the model's load time
    timed = []
    memory = MemoryTimeline()
    memory.mark()
    t0 = time.perf_counter()
    engine = open_engine(bundle, threads=threads)
    load_ms = (time.perf_counter() - t0) * 1e3
    memory.mark()
    try:
        for n in prompt_lengths:
            note(f"prompt {n}: {warmup} warm-up + {runs} runs")
            for i in range(warmup + runs):
                run = _timed_run(engine, prompts[n], gen)
                memory.mark()
                if i >= warmup:
                    timed.append(run)
        threads_used = engine.threads
    finally:
        engine.close()
    result = {
        "format": RESULT_FORMAT,
        "version": VERSION,
        "device": {
            "kind": "host",
            "id": socket.gethostname(),
            "model": cpu_model(),
            "os": platform.platform(),
            "cpu": platform.machine(),
            "cores": os.cpu_count() or 1,
        },
        "runtime": {"backend": bundle.runtime["backend"], "threads": int(threads_used), "versions": installed(
            ("pocketlm", "executorch", "torch", "ai-edge-litert", "coremltools"))},
        "bundle": {
            "name": bundle.name,
            "program_sha256": bundle.manifest["files"][bundle.runtime["program"]]["sha256"],
        },
        "settings": {"prompt_lengths": list(prompt_lengths), "gen_tokens": gen, "runs": runs, "warmup": warmup},
        "load_ms": round(load_ms, 3),
        "runs": timed,
        "memory": {"peak_rss_kb": memory.peak_kb, "samples": memory.samples},
        "energy": {
            "available": False,
            "reason": "no battery or power counters are read on a host; pocketlm reports energy only where a "
            "device provides them (Android)",
        },
        "operators": None,
    }
    if operators:
        note("per-operator pass (ETDump)")
        result["operators"] = operator_profile(bundle, prompts[prompt_lengths[0]], min(gen, 16), threads)
    return result


def operator_profile(bundle, prompt: list[int], gen: int, threads: int | None) -> dict:
    """One prefill + `gen` decode steps with ETDump on; time per operator type and per delegate call."""
    if bundle.runtime["backend"] != "executorch":
        return {"available": False, "reason": f"per-operator timing is not available for {bundle.runtime['backend']}"}
    try:
        from executorch.devtools import Inspector
    except ImportError as e:
        return {"available": False, "reason": f"executorch.devtools is not importable ({e})"}
    engine = open_engine(bundle, threads=threads, enable_etdump=True)
    try:
        run = _timed_run(engine, prompt, gen)
        with tempfile.TemporaryDirectory() as tmp:
            etdump = Path(tmp) / "run.etdp"
            engine.write_etdump(etdump, Path(tmp) / "debug.bin")
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "Output Buffer not found": no tensor debug data was asked for
                inspector = Inspector(etdump_path=str(etdump))
    finally:
        engine.close()
    return summarize_etdump(inspector, decode_steps=run["decode_tokens"])


def summarize_etdump(inspector, decode_steps: int = 0) -> dict:
    """Per op type: delegated ops by XNNPACK's op name (without '#n'), others by kernel name; the whole
    pass, and the last `decode_steps` executions of the method run most often (forward: every decode
    step runs it once, a prefill runs it once or runs a method of its own) as one mean decode step."""
    blocks = [b for b in inspector.event_blocks if b.name == "Execute"]
    whole = _op_table(blocks, lambda raw: raw)
    if whole is None:
        return {"available": False, "reason": "the ETDump held no operator events"}
    rows, total, delegate_total, delegate_count, per_call = whole
    result = {
        "available": True,
        "source": "etdump",
        "total_ms": total,
        "delegate_calls": {"count": delegate_count, "total_ms": round(delegate_total, 3), "per_call": per_call},
        "module_mapping": "not available: the bundle carries no ETRecord to map operators to modules",
        "by_op": rows,
    }
    ranked = sorted(((_executions(b), b) for b in blocks), key=lambda nb: -nb[0])  # forward first
    if decode_steps > 0 and len(ranked) > 1 and ranked[0][0] == ranked[1][0]:
        # a prefill method that ran as often as forward: which block is decode is not known
        result["decode_step_unavailable"] = "the prefill and decode methods ran equally often in the pass"
    elif decode_steps > 0:
        runs, forward = ranked[0]
        if runs < decode_steps:
            raise ProfileError(f"the ETDump holds {runs} executions of the decode method, "
                               f"not the {decode_steps} decode steps that were run")
        rows, step_total, _, _, _ = _op_table([forward], lambda raw: raw[-decode_steps:])
        result["decode_step"] = {
            "steps": decode_steps,
            "step_ms": step_total / decode_steps,
            "by_op": [{"name": r["name"], "delegated": r["delegated"], "overhead": r.get("overhead", False),
                       "calls_per_step": r["calls"] / decode_steps, "ms_per_step": r["total_ms"] / decode_steps}
                      for r in rows],
        }
    return result


def _executions(block) -> int:
    """How many times the method of this ETDump block ran."""
    return max((len(e.perf_data.raw) for e in block.events if e.name == "Method::execute" and e.perf_data),
               default=0)


def _op_table(blocks, pick):
    """(rows, Method::execute ms, delegate ms, delegate calls, per delegate call) over the executions
    that `pick` selects from each event's list of per-execution times; None without operator events."""
    by_op: dict[tuple[str, bool], list] = defaultdict(lambda: [0, 0.0])
    total = delegate_total = 0.0
    delegate_count = 0
    per_call: list[dict] = []  # each delegate piece of the program, in execution order
    for block in blocks:
        for event in block.events:
            if not event.perf_data:
                continue
            raw = pick(list(event.perf_data.raw))
            ms = float(sum(raw))
            name = event.name
            if name == "Method::execute":
                total += ms
            elif name == "DELEGATE_CALL":
                delegate_total += ms
                delegate_count += len(raw)
                per_call.append({"index": len(per_call), "backend": event.delegate_backend_name or "",
                                 "calls": len(raw), "total_ms": round(ms, 4)})
            elif name == "OPERATOR_CALL":
                continue  # wraps the kernel event that follows it
            else:
                key = (name.split(" #")[0].removeprefix("native_call_"), bool(event.is_delegated_op))
                by_op[key][0] += len(raw)
                by_op[key][1] += ms
    if not by_op:
        return None
    rows = [{"name": n, "delegated": d, "calls": c, "total_ms": ms} for (n, d), (c, ms) in by_op.items()]
    # What the operator events do not cover, so that the table adds up to Method::execute. XNNPACK's
    # own per-op times are whole microseconds, so its tiny ops' remainders land in the first of these.
    inside = sum(r["total_ms"] for r in rows if r["delegated"])
    outside = sum(r["total_ms"] for r in rows if not r["delegated"])
    rows.append({"name": "(delegate call overhead)", "delegated": True, "calls": delegate_count,
                 "total_ms": max(delegate_total - inside, 0.0), "overhead": True})
    rows.append({"name": "(runtime between operators)", "delegated": False, "calls": 0,
                 "total_ms": max(total - delegate_total - outside, 0.0), "overhead": True})
    return rows, total, delegate_total, delegate_count, per_call


def measure_perplexity(bundle_path, threads: int | None = None, max_tokens: int = 512) -> dict:
    """Perplexity of the bundle through its engine on pocketlm's English evaluation text
    (the first `max_tokens` tokens, the conversion report's windows)."""
    from ..perplexity import DEFAULT_TEXT, bundle_perplexity, report_settings

    bundle = read_bundle(bundle_path, verify=False)
    context, stride = report_settings(bundle.runtime["max_context"])
    result = bundle_perplexity(bundle, data_text(DEFAULT_TEXT), context, stride, max_tokens, threads)
    return {"perplexity": result["perplexity"], "tokens": result["tokens"], "text": f"pocketlm/data/{DEFAULT_TEXT}"}

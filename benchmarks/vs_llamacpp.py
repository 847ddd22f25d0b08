"""pocketlm against llama.cpp on this machine: same model, same bit width, same threads, interleaved.

    python benchmarks/vs_llamacpp.py --q4 SMOLLM2_8DA4W_BUNDLE --q8 SMOLLM2_8DA8W_BUNDLE \\
        --threads 1,2 --runs 5 --out benchmarks/results/DATE-vs-llamacpp.md

1. The peer: llama.cpp's own llama-bench and llama-quantize, built with CMake from the
   llama.cpp sources vendored in the llama-cpp-python sdist on PyPI (the only registry
   reachable here), into $POCKETLM_HOME/peers (default ~/.cache/pocketlm/peers), once.
2. Its models: SmolLM2-135M-Instruct's Q4_1 GGUF requantized with llama-quantize to Q4_0
   (against pocketlm 8da4w) and Q8_0 (against pocketlm 8da8w). Speed only: the Q4_1→Q4_0
   requantization degrades answers (see FACTS), which does not change its speed.
3. Per repetition, per thread count, per bit width: one llama-bench run (-r 1, after its own
   warm-up), then one pocketlm run in a worker process that keeps the bundle loaded (ExecuTorch's
   thread pool is sized once per process). A B A B …: machine drift hits both alike. Measured:
   prefill tok/s of 128- and 512-token prompts, decode tok/s of 128 tokens from an empty cache
   (llama-bench `tg128`; pocketlm: after a 1-token prompt).
4. Memory bandwidth (STREAM-style copy and add over 256 MB arrays with numpy, split over the
   threads) and from it the decode ceiling: bytes read per decoded token / bandwidth.
5. SDK overhead: greedy `Model.generate` of 128 tokens, time outside the ExecuTorch runtime call
   (sampling, detokenization, stop strings, Python glue) as a share of decode time.

Prints and writes a markdown table: medians and min/median/max of the per-repetition ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

LLAMA_CPP_PYTHON = "0.3.36"  # its sdist vendors llama.cpp's sources
TARGETS = ("llama-bench", "llama-quantize")


def peers_home() -> Path:
    return Path(os.environ.get("POCKETLM_HOME", Path.home() / ".cache" / "pocketlm")) / "peers"


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- the peer
NO_AMX = "-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"


def build_llama_cpp(version: str = LLAMA_CPP_PYTHON, amx: bool = True) -> Path:
    """llama.cpp's bin/ folder, built once from the sdist's vendored sources with native CPU flags
    (less AMX when `amx` is False)."""
    home = peers_home() / f"llama.cpp-from-llama-cpp-python-{version}"
    build = home / ("build" if amx else "build-no-amx")
    bin_dir = build / "bin"
    if all((bin_dir / t).exists() for t in TARGETS):
        return bin_dir
    for tool in ("cmake", "c++"):
        if not shutil.which(tool):
            raise SystemExit(f"building llama.cpp needs {tool} (apt-get install cmake g++)")
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "src").is_dir():
        with tempfile.TemporaryDirectory() as tmp:
            say(f"downloading llama-cpp-python=={version} (sdist with llama.cpp's sources) …")
            subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                            f"llama-cpp-python=={version}", "-d", tmp], check=True)
            sdist = next(Path(tmp).glob("llama_cpp_python-*.tar.gz"))
            with tarfile.open(sdist) as tar:
                members = [m for m in tar.getmembers() if "/vendor/llama.cpp/" in m.name]
                tar.extractall(tmp, members=members, filter="data")
            src = next(Path(tmp).glob("llama_cpp_python-*/vendor/llama.cpp"))
            shutil.move(str(src), home / "src")
    say(f"building llama-bench and llama-quantize (CMake, native CPU flags{'' if amx else ' without AMX'}; "
        "minutes on 2 cores) …")
    generator = "Ninja" if shutil.which("ninja") else "Unix Makefiles"
    options = ["-DCMAKE_BUILD_TYPE=Release", "-DGGML_NATIVE=ON", "-DLLAMA_CURL=OFF", "-DLLAMA_BUILD_TESTS=OFF",
               "-DLLAMA_BUILD_SERVER=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF"]
    if not amx:
        options += [f"-DCMAKE_C_FLAGS={NO_AMX}", f"-DCMAKE_CXX_FLAGS={NO_AMX}"]
    subprocess.run(["cmake", "-S", home / "src", "-B", build, "-G", generator, *options], check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", build, "--target", *TARGETS, "-j", str(os.cpu_count() or 2)], check=True,
                   stdout=subprocess.DEVNULL)
    return bin_dir


def working_llama_cpp(source: Path, kinds: list[str]) -> tuple[Path, dict[str, Path], str]:
    """The native build if it runs here, else the native build without AMX; the requantized models;
    and a line saying which build.

    A CPU can report AMX while the machine (a VM) cannot run its tile instructions: llama.cpp's AMX
    matmul then dies at `ldtilecfg` (seen on an Intel Xeon VM). The peer must run to be measured.
    """
    bin_dir = build_llama_cpp()
    ggufs = {kind: requantize(bin_dir, source, kind) for kind in kinds}
    if all(subprocess.run([bin_dir / "llama-bench", "-m", g, "-t", "1", "-r", "1", "-p", "64", "-n", "2"],
                          capture_output=True).returncode >= 0 for g in ggufs.values()):
        return bin_dir, ggufs, "llama.cpp built with -march=native"
    say("the native llama.cpp build dies on this machine (its AMX path); using the build without AMX …")
    return build_llama_cpp(amx=False), ggufs, (
        f"llama.cpp built with -march=native {NO_AMX}: the CPU reports AMX, but llama.cpp's AMX matmul "
        "faults here (SIGSEGV at ldtilecfg)")


def requantize(bin_dir: Path, source: Path, kind: str) -> Path:
    out = peers_home() / "models" / f"{source.stem}.{kind}.gguf"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_suffix(".partial")
        subprocess.run([bin_dir / "llama-quantize", "--allow-requantize", source, partial, kind], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        partial.rename(out)
    return out


def llama_bench(bin_dir: Path, gguf: Path, threads: int, prompts: list[int], gen: int) -> dict[str, float]:
    cmd = [bin_dir / "llama-bench", "-m", gguf, "-t", str(threads), "-r", "1", "-o", "json",
           "-p", ",".join(map(str, prompts)), "-n", str(gen)]
    rows = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    out = {}
    for r in rows:
        key = f"prefill{r['n_prompt']}" if r["n_gen"] == 0 else "decode"
        out[key] = r["avg_ts"]
    return out


# ---------------------------------------------------------------- pocketlm side
class Worker:
    """A process that keeps one bundle loaded with a fixed thread count and times runs on request."""

    def __init__(self, bundle: Path, threads: int):
        self.proc = subprocess.Popen([sys.executable, __file__, "--worker", str(bundle), "--threads", str(threads)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.ask({"op": "ping"})

    def ask(self, request: dict) -> dict:
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"the pocketlm worker exited ({self.proc.wait()})")
        return json.loads(line)

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


def worker_main(bundle: str, threads: int) -> None:
    import pocketlm
    from pocketlm.profiling.host import _timed_run, prompt_tokens

    model = pocketlm.load(bundle, threads=threads)
    engine = model.engine
    for line in sys.stdin:
        req = json.loads(line)
        if req["op"] == "ping":
            res = {"ok": True}
        elif req["op"] == "speed":
            res = {}
            for n in req["prompts"]:
                run = _timed_run(engine, prompt_tokens(model.tokenizer, n)[:n], 1)
                res[f"prefill{n}"] = n / (run["prefill_ms"] / 1e3)
            run = _timed_run(engine, prompt_tokens(model.tokenizer, 1)[:1], req["gen"] + 1)
            res["decode"] = run["decode_tokens"] / (run["decode_ms"] / 1e3)
        elif req["op"] == "overhead":
            ids = prompt_tokens(model.tokenizer, 16)[:16]
            for _ in model.generate(ids, max_new_tokens=req["gen"], stop=["<never>"]):
                pass
            s = model.last_stats
            res = {"decode_seconds": s.decode_seconds, "runtime_seconds": s.decode_runtime_seconds,
                   "tokens": s.generated_tokens}
        else:
            res = {"error": f"unknown op {req['op']}"}
        print(json.dumps(res), flush=True)


# ---------------------------------------------------------------- bandwidth
def bandwidth_gbs(threads: int, mb: int = 256, reps: int = 5) -> dict[str, float]:
    """Best-of-reps GB/s of copy (a = b: 2 bytes moved per byte) and add (a = b + c: 3) on `threads` threads."""
    n = mb * 2**20 // 8
    a, b, c = np.zeros(n), np.ones(n), np.full(n, 2.0)
    chunks = np.array_split(np.arange(n), threads)
    bounds = [(int(ch[0]), int(ch[-1]) + 1) for ch in chunks]
    out = {}
    with ThreadPoolExecutor(threads) as pool:  # numpy releases the GIL inside these loops
        for name, moved, fn in (
            ("copy", 2, lambda lo, hi: np.copyto(a[lo:hi], b[lo:hi])),
            ("add", 3, lambda lo, hi: np.add(b[lo:hi], c[lo:hi], out=a[lo:hi])),
        ):
            best = float("inf")
            for _ in range(reps):
                t0 = time.perf_counter()
                list(pool.map(lambda bd, f=fn: f(*bd), bounds))
                best = min(best, time.perf_counter() - t0)
            out[name] = moved * n * 8 / best / 1e9
    return out


def bytes_per_token(bundle: Path) -> float:
    """Program bytes minus the embedding table (one row is read per token), plus nothing for the
    near-empty KV cache: what a decode step must stream from memory."""
    manifest = json.loads((bundle / "manifest.json").read_text())
    program = (bundle / manifest["runtime"]["program"]).stat().st_size
    shape = manifest["model"]["shape"]
    emb = manifest["compression"].get("embedding") or {}
    bits = emb.get("bits", 32)
    return program - shape["vocab_size"] * shape["hidden_size"] * bits / 8


# ---------------------------------------------------------------- report
def spread(xs: list[float]) -> str:
    return f"{min(xs):.2f} / {statistics.median(xs):.2f} / {max(xs):.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--q4", type=Path, help="pocketlm 8da4w bundle of SmolLM2-135M-Instruct (vs Q4_0)")
    ap.add_argument("--q8", type=Path, help="pocketlm 8da8w bundle of SmolLM2-135M-Instruct (vs Q8_0)")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--prompts", default="128,512")
    ap.add_argument("--gen", type=int, default=128)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker_main(args.worker, int(args.threads))

    from generate_speed import machine  # same folder: one machine description for every benchmark

    from pocketlm.converter import named_models
    from pocketlm.versions import installed

    pairs = [(kind, b) for kind, b in (("Q4_0", args.q4), ("Q8_0", args.q8)) if b]
    if not pairs:
        raise SystemExit("give --q4 and/or --q8 bundles")
    threads = [int(t) for t in args.threads.split(",")]
    prompts = [int(p) for p in args.prompts.split(",")]
    source = named_models.resolve("smollm2-135m")
    bin_dir, ggufs, build_note = working_llama_cpp(source, [kind for kind, _ in pairs])
    metrics = [f"prefill{p}" for p in prompts] + ["decode"]

    samples: dict[tuple, dict[str, list[float]]] = {}
    overhead: dict[tuple, dict] = {}
    for t in threads:
        workers = {kind: Worker(b, t) for kind, b in pairs}
        for kind, _ in pairs:  # warm-up of both sides
            llama_bench(bin_dir, ggufs[kind], t, prompts, args.gen)
            workers[kind].ask({"op": "speed", "prompts": prompts, "gen": args.gen})
        for rep in range(args.runs):
            for kind, _ in pairs:
                peer = llama_bench(bin_dir, ggufs[kind], t, prompts, args.gen)
                ours = workers[kind].ask({"op": "speed", "prompts": prompts, "gen": args.gen})
                for m in metrics:
                    samples.setdefault((kind, t, m), {"peer": [], "ours": []})
                    samples[(kind, t, m)]["peer"].append(peer[m])
                    samples[(kind, t, m)]["ours"].append(ours[m])
            say(f"threads {t}: repetition {rep + 1}/{args.runs} done")
        for kind, _ in pairs:
            overhead[(kind, t)] = workers[kind].ask({"op": "overhead", "gen": args.gen})
            workers[kind].close()

    bw = {t: bandwidth_gbs(t) for t in threads}
    lines = [
        f"Machine: {machine()}; pocketlm {installed(('pocketlm',)).get('pocketlm', '?')}; "
        f"llama.cpp from llama-cpp-python {LLAMA_CPP_PYTHON}'s "
        f"sources (llama-bench). SmolLM2-135M-Instruct. {args.runs} interleaved repetitions after a warm-up; "
        f"decode = {args.gen} tokens from an empty cache. {build_note}.",
        "",
        "| pocketlm vs llama.cpp | threads | metric | pocketlm tok/s (median) | llama.cpp tok/s (median) "
        "| ratio min / median / max |",
        "|---|---|---|---|---|---|",
    ]
    for (kind, t, m), s in samples.items():
        name = dict(pairs)[kind].name
        ratios = [o / p for o, p in zip(s["ours"], s["peer"], strict=True)]
        lines.append(f"| {name} vs {kind} | {t} | {m} | {statistics.median(s['ours']):.1f} "
                     f"| {statistics.median(s['peer']):.1f} | {spread(ratios)} |")
    lines += ["", "| bundle | threads | bandwidth copy / add GB/s | bytes per decoded token | decode ceiling tok/s "
              "| pocketlm decode (share of ceiling) | llama.cpp decode (share) |", "|---|---|---|---|---|---|---|"]
    for kind, b in pairs:
        per_token = bytes_per_token(b)
        for t in threads:
            best = max(bw[t].values())
            ceiling = best * 1e9 / per_token
            ours = statistics.median(samples[(kind, t, "decode")]["ours"])
            peer = statistics.median(samples[(kind, t, "decode")]["peer"])
            lines.append(f"| {b.name} | {t} | {bw[t]['copy']:.1f} / {bw[t]['add']:.1f} | {per_token / 1e6:.1f} MB "
                         f"| {ceiling:.0f} | {ours:.0f} ({ours / ceiling:.0%}) | {peer:.0f} ({peer / ceiling:.0%}) |")
    lines += ["", "| bundle | threads | SDK overhead in decode (outside the runtime call) |", "|---|---|---|"]
    for (kind, t), o in overhead.items():
        share = 1 - o["runtime_seconds"] / o["decode_seconds"]
        per_tok = (o["decode_seconds"] - o["runtime_seconds"]) / max(o["tokens"] - 1, 1) * 1e3
        lines.append(f"| {dict(pairs)[kind].name} | {t} | {share:.1%} ({per_tok:.2f} ms per token) |")
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report)


if __name__ == "__main__":
    main()

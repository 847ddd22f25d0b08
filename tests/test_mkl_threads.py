"""MKL stays single-threaded on the threads that run ExecuTorch programs (pocketlm.mkl_threads).

Each check runs in a fresh interpreter: MKL reads its process-wide thread count once, when libtorch loads.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from pocketlm import mkl_threads

pytestmark = pytest.mark.skipif(mkl_threads.max_threads() is None, reason="this torch has no MKL")

PROBE = """
import json, os, sys, threading
{before}
from pocketlm import mkl_threads
torch = mkl_threads.import_torch()
other = []
t = threading.Thread(target=lambda: other.append(mkl_threads.max_threads())); t.start(); t.join()
with mkl_threads.single_threaded():
    inside = mkl_threads.max_threads()
print(json.dumps({{"pinned": mkl_threads.pool_pinned(), "other_thread": other[0], "main": mkl_threads.max_threads(),
                  "inside": inside, "torch_threads": torch.get_num_threads(),
                  "default_threads": torch.get_num_interop_threads(),
                  "env_left": "MKL_NUM_THREADS" in os.environ}}))
"""


def probe(before: str = "", **env) -> dict:
    environ = {k: v for k, v in os.environ.items() if k not in ("MKL_NUM_THREADS", "OMP_NUM_THREADS")}
    environ.update(env)
    out = subprocess.run([sys.executable, "-c", PROBE.format(before=before)], capture_output=True, text=True,
                         env=environ, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_torch_pins_other_threads_and_gives_torch_its_default_back():
    r = probe()
    assert r["pinned"] and r["other_thread"] == 1
    assert r["torch_threads"] == r["default_threads"] == r["main"]  # torch's own ops keep every core
    assert r["inside"] == 1  # the calling thread, while it runs a program
    assert not r["env_left"]  # child processes do not inherit the pin


def test_torch_imported_first_is_reported_not_pinned():
    r = probe(before="import torch")
    if r["default_threads"] == 1:
        pytest.skip("one core: MKL's default is already one thread")
    assert not r["pinned"] and r["other_thread"] > 1
    assert r["inside"] == 1  # the per-call pin still holds for the calling thread


def test_a_users_mkl_setting_is_kept():
    r = probe(MKL_NUM_THREADS="1")
    assert r["pinned"] and r["torch_threads"] == 1 and r["env_left"]


def test_engine_warns_when_it_cannot_pin(tiny_bundle):
    bundle = tiny_bundle("llama")
    code = ("import torch, warnings, pocketlm; warnings.simplefilter('always'); "
            f"pocketlm.load({str(bundle)!r}, threads=2)")
    environ = {k: v for k, v in os.environ.items() if k != "MKL_NUM_THREADS"}
    if probe(before="import torch")["default_threads"] == 1:
        pytest.skip("one core: MKL's default is already one thread")
    warned = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environ, check=True)
    assert "MKL runs multi-threaded inside ExecuTorch's thread pool" in warned.stderr
    quiet = subprocess.run([sys.executable, "-c", code.replace("import torch, ", "import ")], capture_output=True,
                           text=True, env=environ, check=True)
    assert "MKL runs multi-threaded" not in quiet.stderr

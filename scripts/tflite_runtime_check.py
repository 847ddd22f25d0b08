"""Run a pocketlm LiteRT bundle's decode signature in the old `tflite-runtime` package and save
the logits, for comparison with ai-edge-litert (tests/test_tflite_runtime.py does both).

tflite-runtime 2.14 needs numpy 1.x, so this runs in its own environment, without pocketlm:

    python3.11 -m venv /tmp/tfrt && /tmp/tfrt/bin/pip install tflite-runtime==2.14.0 "numpy<2"
    /tmp/tfrt/bin/python scripts/tflite_runtime_check.py BUNDLE OUT.npy --tokens 100,101,102

It feeds the tokens one by one through `decode` (positions 0.., causal mask, KV cache
carried from output to input), exactly as the SDK's engines do, and writes [n, vocab].
"""

import argparse
import json
from pathlib import Path

import numpy as np
from tflite_runtime.interpreter import Interpreter


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("bundle", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--tokens", required=True, help="comma-separated token ids")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    manifest = json.loads((args.bundle / "manifest.json").read_text())
    context = manifest["runtime"]["max_context"]
    interpreter = Interpreter(model_path=str(args.bundle / manifest["runtime"]["program"]), num_threads=args.threads)
    decode = interpreter.get_signature_runner("decode")
    details = decode.get_input_details()
    cache = {k: np.zeros(v["shape"], v["dtype"]) for k, v in details.items() if k.startswith("kv_cache_")}
    mask = np.triu(np.full((context, context), np.finfo(np.float32).min, np.float32), k=1)
    rows = []
    for pos, token in enumerate(int(t) for t in args.tokens.split(",")):
        out = decode(
            tokens=np.array([[token]], np.int32),
            input_pos=np.array([pos], np.int32),
            mask=mask[pos : pos + 1][None, None],
            **cache,
        )
        cache = {k: out[k] for k in cache}
        rows.append(out["logits"].reshape(-1).copy())
    np.save(args.out, np.stack(rows))


if __name__ == "__main__":
    main()

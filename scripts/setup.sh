#!/usr/bin/env bash
# Create .venv with the pinned toolchain (constraints.txt) and install pocketlm into it, editable.
# Idempotent: a second run only checks that everything is in place.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check --upgrade pip
fi
.venv/bin/pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[converter,coreml,litert,litert-converter,profile,eval,dev]"
# The old tflite-runtime (numpy 1.x) in its own environment: tests check `--compat tflite-runtime` programs in it.
if [ ! -x .venv-tflite-runtime/bin/python ]; then
  "$PYTHON" -m venv .venv-tflite-runtime
fi
.venv-tflite-runtime/bin/pip install --quiet --disable-pip-version-check -r constraints-tflite-runtime.txt

# The two front doors of the README: `make demo` and `make test`. Both set up .venv first.
VENV := .venv
BUNDLE := bundles/smollm2-135m-xnnpack-8da4w
PROMPT ?= What is the capital of France?

.PHONY: setup demo test lint clean app-toolchains

setup:
	bash scripts/setup.sh

# Convert SmolLM2-135M-Instruct to an 8da4w ExecuTorch bundle (once), then answer a prompt, streaming.
demo: setup $(BUNDLE)/manifest.json
	$(VENV)/bin/pocketlm run $(BUNDLE) "$(PROMPT)" --threads 2

$(BUNDLE)/manifest.json:
	$(VENV)/bin/pocketlm pull smollm2-135m
	$(VENV)/bin/pocketlm pull gemma3-270m
	$(VENV)/bin/pocketlm convert smollm2-135m -o $(BUNDLE) --quant 8da4w --force

test: setup app-toolchains
	$(VENV)/bin/ruff check sdk_python converter tests benchmarks scripts
	$(VENV)/bin/pocketlm pull smollm2-135m
	$(VENV)/bin/pocketlm pull gemma3-270m
	POCKETLM_TFLITE_RUNTIME_PYTHON=$(CURDIR)/.venv-tflite-runtime/bin/python $(VENV)/bin/python -m pytest -ra

# The demo apps' logic is tested here too: Kotlin (npm) + JUnit (Debian) for android_demo/core, and
# Swift 6 (Debian trixie via debootstrap, needs root) for ios_demo/PocketLMKit.
app-toolchains:
	bash scripts/jvm_toolchain.sh >/dev/null
	@if [ "$$(id -u)" = 0 ]; then bash scripts/swift_toolchain.sh >/dev/null; \
	else echo "note: the Swift toolchain needs root (debootstrap); ios_demo/PocketLMKit's tests will be skipped"; fi

lint: setup
	$(VENV)/bin/ruff check sdk_python converter tests benchmarks scripts

clean:
	rm -rf bundles .pytest_cache

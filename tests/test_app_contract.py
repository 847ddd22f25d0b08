"""The demo apps' shared logic against the SDK: Python writes the vectors, the apps' code must agree.

android_demo/core is plain Kotlin: it is compiled here with the Kotlin compiler from npm and its
JUnit 5 tests run on this machine's JVM against vectors the SDK computes in this test session
(real SmolLM2 and Gemma 3 tokenizers included). ios_demo/PocketLMKit is plain Swift: it is built and
tested with `swift test` (Swift 6.0.3 from Debian trixie, in a debootstrapped root) on the same vectors.
The toolchains come from scripts/jvm_toolchain.sh and scripts/swift_toolchain.sh (`make app-toolchains`,
part of `make test`).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from app_contract import write_vectors

from pocketlm.chat_format import derive_chat_format, render_chat_format
from pocketlm.errors import GenerationError
from pocketlm.profiling.results import fold, validate
from pocketlm.tokenizer import chat_format_of, compile_template, render_template

REPO = Path(__file__).resolve().parent.parent
JVM_TESTS = REPO / "android_demo" / "core" / "run-jvm-tests.sh"
SWIFT_TESTS = REPO / "ios_demo" / "PocketLMKit" / "run-swift-tests.sh"


def _render_with(source: str, special: dict | None = None):
    template = compile_template(source)
    return lambda messages, prompt: render_template(template, special or {}, messages, prompt)


def test_chat_format_matches_the_template_or_is_withheld():
    chatml = "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}" \
             "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    fmt = derive_chat_format(_render_with(chatml))
    assert fmt["roles"]["user"] == ["<|im_start|>user\n", "<|im_end|>\n"] and fmt["system_style"] == "own"
    messages = [{"role": "system", "content": "S"}, {"role": "user", "content": "Hi"}]
    assert render_chat_format(fmt, messages) == _render_with(chatml)(messages, True)
    # Not a concatenation of per-role strings (turns are numbered): no format rather than a wrong one.
    numbered = "{% for m in messages %}[{{ loop.index }}] {{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    assert derive_chat_format(_render_with(numbered)) is None
    # A template without a system role: system messages are refused by name.
    no_system = "{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('no system') }}{% endif %}" \
                "<{{ m['role'] }}>{{ m['content'] }}</{{ m['role'] }}>{% endfor %}" \
                "{% if add_generation_prompt %}<assistant>{% endif %}"
    fmt = derive_chat_format(_render_with(no_system))
    assert fmt["system_style"] == "none"
    with pytest.raises(GenerationError, match="has no system role"):
        render_chat_format(fmt, messages)
    assert chat_format_of({"chat_template": None}) is None


def test_converted_bundle_carries_its_chat_format(tiny_bundle):
    manifest = json.loads((tiny_bundle("llama") / "manifest.json").read_text())
    tok = manifest["tokenizer"]
    assert tok["chat_format"] == chat_format_of(tok)
    assert tok["chat_format"]["generation_prompt"] == "<|im_start|>assistant\n"


@pytest.fixture(scope="module")
def vectors(tiny_bundle, real_bundle, tmp_path_factory):
    return write_vectors(tmp_path_factory.mktemp("app") / "vectors", tiny_bundle("llama"),
                         real_bundle("smollm2-135m", "8da4w", 1024), real_bundle("gemma3-270m", "8da8w", 512))


def _check_written_result(path: Path) -> None:
    """Benchmark mode's file is a valid benchmark result that `pocketlm profile` folds into a report."""
    written = json.loads(path.read_text())
    validate(written, "benchmark-result.schema.json", "the app's benchmark result")
    report = fold(written)
    assert [p["prompt_tokens"] for p in report["prompt_lengths"]] == [8, 20]
    assert report["prompt_lengths"][0]["runs"] == 3


def test_android_core_agrees_with_the_sdk_on_shared_vectors(vectors, tmp_path):
    env = {**os.environ, "POCKETLM_VECTORS": str(vectors), "POCKETLM_JVM_BUILD": str(tmp_path / "jvm")}
    proc = subprocess.run(["bash", str(JVM_TESTS)], capture_output=True, text=True, env=env, timeout=900)
    output = proc.stdout + proc.stderr
    summary = {m.group(2): int(m.group(1)) for m in re.finditer(r"\[\s+(\d+) tests (\w+)\s+\]", output)}
    failed = [line for line in output.splitlines() if "✘" in line]
    assert proc.returncode == 0 and summary.get("failed") == 0, "\n".join(failed) or output[-4000:]
    # Every vector family ran: 3 tokenizers x 20 cases, 3 chat formats, 8 bundle cases, the single tests.
    assert summary["successful"] >= 100 and summary.get("skipped", 0) == 0, summary
    _check_written_result(vectors / "written" / "benchmark-result.json")


def test_ios_kit_agrees_with_the_sdk_on_shared_vectors(vectors):
    if os.geteuid() != 0:
        pytest.skip("the Swift toolchain runs in a debootstrapped root (chroot, bind mount): run as root (CI does)")
    env = {**os.environ, "POCKETLM_VECTORS": str(vectors)}
    proc = subprocess.run(["bash", str(SWIFT_TESTS)], capture_output=True, text=True, env=env, timeout=900)
    output = proc.stdout + proc.stderr
    failures = [line for line in output.splitlines() if "error:" in line or "failed" in line]
    assert proc.returncode == 0, "\n".join(failures[-30:]) or output[-4000:]
    executed = re.findall(r"Executed (\d+) tests?, with (\d+) failures? \((\d+) unexpected\)", output)
    assert executed and int(executed[-1][0]) >= 12 and executed[-1][1] == "0", output[-2000:]
    assert "skipped" not in output.lower(), output[-2000:]
    _check_written_result(vectors / "written" / "benchmark-result-ios.json")

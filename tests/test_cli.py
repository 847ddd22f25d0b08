"""The CLI as a user drives it: run, chat (interactive), info, doctor."""

import json
import subprocess
import sys

from pocketlm.cli import main


def test_run_streams_text_then_speed(capsys, tiny_bundle):
    code = main(["run", str(tiny_bundle("llama", "fp32")), "Hello there", "-n", "8", "--raw"])
    out = capsys.readouterr()
    assert code == 0
    assert "prefill" in out.err and "decode" in out.err and "tok/s" in out.err
    assert "8 generated" in out.err or "finish: eos" in out.err


def test_chat_is_interactive_and_keeps_history(tiny_bundle):
    bundle = tiny_bundle("qwen3", "fp32")
    proc = subprocess.run(
        [sys.executable, "-m", "pocketlm", "chat", str(bundle), "-n", "3", "--system", "Hi"],
        input="hello\nok\n/reset\nfresh start\n/quit\n", capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count(">>> ") == 5  # one prompt per line read, including /reset and /quit
    # the second turn's prompt holds the first exchange; /reset drops it again
    prompts = [int(line.split()[0][1:]) for line in proc.stderr.splitlines() if "prompt tokens" in line]
    assert len(prompts) == 3 and prompts[1] > prompts[0] and prompts[2] < prompts[1]


def test_info_describes_the_bundle(capsys, tiny_bundle):
    bundle = tiny_bundle("gemma3", "8da4w")
    assert main(["info", str(bundle)]) == 0
    out = capsys.readouterr().out
    for expected in ("gemma3", "executorch/xnnpack", "8da4w-g32", "parity vs_float", "all 3 files match"):
        assert expected in out, out
    assert main(["info", str(bundle), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["model"]["family"] == "gemma3"


def test_doctor_lists_backends(capsys):
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "ok  executorch runtime (run)" in out
    assert "ok  executorch/xnnpack (convert)" in out
    assert "executorch/mps (convert)" in out  # reported either way, never silently dropped


def test_help_and_version(capsys):
    assert main(["--help"]) == 0
    assert "convert" in capsys.readouterr().out
    assert main(["--version"]) == 0
    assert "0.1.0" in capsys.readouterr().out


def test_chat_drops_old_turns_instead_of_overflowing(tiny_bundle):
    bundle = tiny_bundle("qwen3", "fp32")  # 64-token context
    turns = "".join(f"turn number {i} is here\n" for i in range(6))
    proc = subprocess.run([sys.executable, "-m", "pocketlm", "chat", str(bundle), "-n", "3"],
                          input=turns, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "oldest exchange was dropped" in proc.stderr and "error:" not in proc.stderr
    assert proc.stderr.count("prompt tokens") == 6


def test_cli_reference_is_current():
    """docs/cli.md's full help is the CLI's own (regenerate: python scripts/cli_reference.py)."""
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "scripts" / "cli_reference.py"
    spec = importlib.util.spec_from_file_location("cli_reference", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = module.DOC.read_text()
    assert module.render(text) == text, "docs/cli.md is out of date: run python scripts/cli_reference.py"

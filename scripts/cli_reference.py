"""Rewrite the "Full help" block of docs/cli.md from the CLI itself: python scripts/cli_reference.py"""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from pocketlm.cli import cli

DOC = Path(__file__).resolve().parent.parent / "docs" / "cli.md"


def render(text: str) -> str:
    start = text.index("```\n=== ")
    end = text.index("```", start + 3)
    parts = []
    for name in cli.commands:  # every command, in the order the CLI defines them
        result = CliRunner().invoke(cli, [name, "--help"], prog_name="pocketlm", terminal_width=100)
        parts.append(f"=== {name}\n{result.output.rstrip()}\n")
    return text[:start] + "```\n" + "\n".join(parts) + text[end:]


def main() -> None:
    DOC.write_text(render(DOC.read_text()))


if __name__ == "__main__":
    main()

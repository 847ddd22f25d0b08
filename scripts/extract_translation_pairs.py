"""Build pocketlm/data/translate_eval.jsonl: English→X sentence pairs from Django's translations.

Django (BSD-3-Clause) ships human translations of its UI strings. Only full sentences are
kept: no placeholders, markup or plural forms, at least MIN_WORDS words, each English
source once per language. Reproduce with:

    pip download --no-deps "django==5.2.19" -d /tmp/dl && pip install polib
    python scripts/extract_translation_pairs.py /tmp/dl/django-5.2.19-py3-none-any.whl
"""

from __future__ import annotations

import io
import json
import random
import re
import sys
import zipfile
from pathlib import Path

import polib

LANGUAGES = ["fr", "de", "es", "it", "pt"]
PER_LANGUAGE = 40
MIN_WORDS = 6
SKIP = re.compile(r"%|\{|\}|<|>|&|\\|\bhttps?:|_|\"|“|”|«|»|\t|\n")
OUT = Path(__file__).resolve().parents[1] / "sdk_python" / "data" / "translate_eval.jsonl"


def pairs(wheel: zipfile.ZipFile, lang: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for name in sorted(wheel.namelist()):
        if f"/locale/{lang}/LC_MESSAGES/" in name and name.endswith("django.po"):
            for entry in polib.pofile(io.TextIOWrapper(wheel.open(name), encoding="utf-8").read()):
                src, tgt = entry.msgid.strip(), entry.msgstr.strip()
                if entry.msgid_plural or entry.msgctxt or not tgt or "fuzzy" in entry.flags or entry.obsolete:
                    continue
                if len(src.split()) < MIN_WORDS or SKIP.search(src) or SKIP.search(tgt):
                    continue
                if not src[0].isupper() or src[-1] not in ".?!":
                    continue
                found.setdefault(src, tgt)
    return found


def main(wheel_path: str) -> None:
    wheel = zipfile.ZipFile(wheel_path)
    version = re.search(r"django-([\d.]+)-", wheel_path).group(1)
    rows = []
    for lang in LANGUAGES:
        found = sorted(pairs(wheel, lang).items())
        random.Random(f"pocketlm-{lang}").shuffle(found)
        rows += [{"source": "en", "target": lang, "en": s, lang: t} for s, t in found[:PER_LANGUAGE]]
        print(f"{lang}: {len(found)} candidate pairs, kept {min(PER_LANGUAGE, len(found))}")
    header = {"about": f"English→X sentence pairs from Django {version} translations (BSD-3-Clause, "
              "Copyright Django Software Foundation and contributors); built by scripts/extract_translation_pairs.py"}
    with open(OUT, "w", encoding="utf-8") as f:
        for row in [header, *rows]:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"wrote {len(rows)} pairs to {OUT}")


if __name__ == "__main__":
    main(sys.argv[1])

"""Build sdk_python/data/distill_en.txt: English Wikipedia prose for distillation and fine-tuning
runs, from the article dump that ships in gensim 4.4.0's test data (CC BY-SA; see data/SOURCES.md).

    pip download --no-deps gensim==4.4.0 -d /tmp/gensim && pip install mwparserfromhell
    python scripts/extract_distill_text.py /tmp/gensim/gensim-4.4.0-*.whl

Wiki markup is stripped with mwparserfromhell; redirects, lists, tables and short lines are
dropped; articles that share a subject with the evaluation or calibration texts are left out.
"""

from __future__ import annotations

import bz2
import re
import sys
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

DUMP = "gensim/test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
EXCLUDE = re.compile(r"new york|berlin", re.I)  # eval_en.txt and calibration_en.txt
MAX_CHARS = 1_200_000
OUT = Path(__file__).resolve().parents[1] / "sdk_python" / "data" / "distill_en.txt"


def paragraphs(wikitext: str):
    import mwparserfromhell

    text = mwparserfromhell.parse(wikitext).strip_code(normalize=True, collapse=True)
    for para in text.split("\n"):
        para = re.sub(r"\s+", " ", para).strip()
        if len(para) >= 200 and not para.startswith(("*", "|", "{", "!", "Category:", "thumb")):
            yield para


def main(wheel: str) -> None:
    raw = bz2.decompress(zipfile.ZipFile(wheel).read(DUMP))
    ns = ""
    chosen, size, articles = [], 0, 0
    for _, elem in ET.iterparse(__import__("io").BytesIO(raw)):
        tag = elem.tag.rsplit("}", 1)[-1]
        if tag != "page":
            continue
        ns = elem.tag[: -len("page")]
        title = elem.findtext(f"{ns}title") or ""
        text = elem.findtext(f"{ns}revision/{ns}text") or ""
        elem.clear()
        if text.lower().startswith("#redirect") or EXCLUDE.search(title) or EXCLUDE.search(text[:2000]):
            continue
        paras = list(paragraphs(text))
        if not paras:
            continue
        articles += 1
        for para in paras:
            chosen.append(para)
            size += len(para) + 2
        if size >= MAX_CHARS:
            break
    OUT.write_text("\n\n".join(chosen) + "\n", encoding="utf-8")
    print(f"{OUT}: {articles} articles, {len(chosen)} paragraphs, {size:,} characters")


if __name__ == "__main__":
    main(sys.argv[1])

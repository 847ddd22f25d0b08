"""Translation on any bundle: per-family prompts from the task presets, sentence by sentence.

Instruction models get the preset's instruction through their chat template; base models
(Gemma 3 270M) get a few-shot prompt of parallel example sentences, the target line left
open and a newline as the stop. Longer text is split into sentences (a rule the apps share,
from the presets) and line breaks are kept. Languages outside the model card's list are refused.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..datafiles import data_jsonl
from ..errors import TaskError
from .presets import task_presets

NO_SPACE_SCRIPTS = {"ja", "zh", "th"}  # sentences are joined without a space


@dataclass
class Translation:
    text: str
    source: str
    target: str
    sentences: list[tuple[str, str]] = field(default_factory=list)  # (source sentence, its translation)
    generated_tokens: int = 0
    seconds: float = 0.0


def split_sentences(text: str, preset: dict) -> list[str]:
    """Sentences of one line of text, by the preset's boundary rule and abbreviation list."""
    pieces = [p for p in re.split(preset["sentence_boundary"], text.strip()) if p and p.strip()]
    sentences: list[str] = []
    for piece in pieces:
        if sentences and any(sentences[-1].endswith(" " + a) or sentences[-1] == a for a in preset["abbreviations"]):
            sentences[-1] = f"{sentences[-1]} {piece.strip()}"
        else:
            sentences.append(piece.strip())
    return sentences


def build_prompt(preset: dict, text: str, source: str, target: str) -> str | list[dict]:
    """The prompt for one sentence: chat messages (chat style) or plain text (few-shot style)."""
    names = preset["languages"]
    src, tgt = names[source], names[target]
    if preset["style"] == "chat":
        instruction = preset["instruction"].format(source=src, target=tgt)
        return [{"role": "user", "content": f"{instruction}\n\n{text}"}]
    lines = [preset["few_shot_header"].format(source=src, target=tgt), ""]
    for example in preset["examples"]:
        if source in example and target in example:
            lines += [f"{src}: {example[source]}", f"{tgt}: {example[target]}", ""]
    lines += [f"{src}: {text}", f"{tgt}:"]
    return "\n".join(lines)


class Translator:
    def __init__(self, model, presets: dict | None = None):
        self.model = model
        self.preset = (presets or task_presets(model.manifest))["translate"]

    @property
    def languages(self) -> dict[str, str]:
        """Language codes this bundle's model covers, with their names."""
        return dict(self.preset["languages"])

    def check_pair(self, source: str, target: str) -> None:
        covered = self.preset["languages"]
        for code in (source, target):
            if code not in covered:
                raise TaskError(
                    f"this model does not cover language {code!r} (its model card lists: {', '.join(covered)}); "
                    "translation refused rather than guessed"
                )
        if source == target:
            raise TaskError(f"source and target are both {source!r}")

    def translate(self, text: str, source: str = "en", target: str = "fr", on_sentence=None) -> Translation:
        """Translate `text`; `on_sentence(src, translated)` is called as each sentence is done."""
        self.check_pair(source, target)
        joiner = "" if target in NO_SPACE_SCRIPTS else " "
        result = Translation(text="", source=source, target=target)
        start = time.perf_counter()
        out_lines = []
        for line in text.split("\n"):
            done = []
            for sentence in split_sentences(line, self.preset):
                translated, n = self._one(sentence, source, target)
                result.sentences.append((sentence, translated))
                result.generated_tokens += n
                done.append(translated)
                if on_sentence:
                    on_sentence(sentence, translated)
            out_lines.append(joiner.join(done))
        result.text = "\n".join(out_lines)
        result.seconds = time.perf_counter() - start
        return result

    def _one(self, sentence: str, source: str, target: str) -> tuple[str, int]:
        prompt = build_prompt(self.preset, sentence, source, target)
        tok = self.model.tokenizer
        ids = tok.encode_chat(prompt) if isinstance(prompt, list) else tok.encode(prompt)
        budget = self.preset["max_new_tokens"]
        limit = budget["per_source_token"] * len(tok.encode(sentence, add_bos=False)) + budget["extra"]
        pieces = self.model.generate(ids, max_new_tokens=limit, stop=self.preset["stop"], **self.preset["sampling"])
        text = "".join(pieces).strip()
        return text, self.model.last_stats.generated_tokens


def load_translation_pairs(path: str | Path | None = None) -> list[dict]:
    """Evaluation pairs (JSON lines with source, target and the two texts keyed by language code).

    Default: pocketlm's 200 English→fr/de/es/it/pt pairs from Django's translations (BSD-3-Clause).
    """
    pairs = [r for r in data_jsonl("translate_eval.jsonl", path) if "source" in r and "target" in r]
    for r in pairs:
        if r["source"] not in r or r["target"] not in r:
            raise TaskError(f"translation pair without its {r['source']!r}/{r['target']!r} text: {r}")
    return pairs


def evaluate_translation(translator: Translator, pairs: list[dict], per_pair: int | None = None,
                         progress=None) -> dict:
    """chrF (sacrebleu, default settings) per language pair, over the first `per_pair` pairs of each."""
    try:
        from sacrebleu.metrics import CHRF
    except ImportError:
        raise TaskError("translation scores need sacrebleu: pip install 'pocketlm[eval]'") from None
    by_pair: dict[tuple[str, str], list[dict]] = {}
    for row in pairs:
        by_pair.setdefault((row["source"], row["target"]), []).append(row)
    results, skipped = {}, []
    for (src, tgt), rows in by_pair.items():
        rows = rows[:per_pair] if per_pair else rows
        try:
            translator.check_pair(src, tgt)
        except TaskError as e:
            skipped.append({"pair": f"{src}-{tgt}", "reason": str(e)})
            continue
        hyps, refs, seconds, tokens = [], [], 0.0, 0
        for row in rows:
            t = translator.translate(row[src], src, tgt)
            hyps.append(t.text)
            refs.append(row[tgt])
            seconds += t.seconds
            tokens += t.generated_tokens
            if progress:
                progress(1)
        results[f"{src}-{tgt}"] = {
            "chrf": round(CHRF().corpus_score(hyps, [refs]).score, 2),
            # chrF of the untranslated source against the references: names, numbers and cognates
            # alone score ~20 on short UI sentences, so a score means something only above this.
            "chrf_copy_source": round(CHRF().corpus_score([r[src] for r in rows], [refs]).score, 2),
            "sentences": len(rows),
            "seconds_per_sentence": round(seconds / len(rows), 3),
            "generated_tokens": tokens,
            "examples": [{"source": r[src], "reference": r[tgt], "output": h} for r, h in list(zip(rows, hyps))[:3]],
        }
    scored = [v["chrf"] for v in results.values()]
    copied = [v["chrf_copy_source"] for v in results.values()]
    return {"pairs": results, "mean_chrf": round(sum(scored) / len(scored), 2) if scored else None,
            "mean_chrf_copy_source": round(sum(copied) / len(copied), 2) if copied else None,
            "skipped": skipped, "metric": "chrF (sacrebleu CHRF defaults: char order 6, beta 2)"}

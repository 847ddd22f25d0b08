"""A private-by-design health assistant on any bundle.

Order of work for each question, all on the device:
1. red flags (chest pain, stroke signs, breathing, severe bleeding, suicidal thoughts,
   anaphylaxis, seizures, poisoning) are matched before anything is generated and answered
   with emergency guidance only;
2. requests for doses, prescriptions or a diagnosis are declined with a pointer to a clinician;
3. otherwise the question is matched against a local knowledge file (BM25 over its passages);
   with no passage above the threshold the assistant says it does not know; else it answers
   from the retrieved passages, which are returned with the answer: in "generate" mode the
   model writes the answer from them, in "extractive" mode the answer is the passage sentences
   that match the question, verbatim. Presets choose extractive for models under 1B parameters:
   on SmolLM2-135M, generated answers invented medical claims the notes do not make.
Every answer carries the not-a-diagnosis notice. The log (optional) receives redacted text only.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import snowballstemmer

from ..datafiles import data_jsonl, data_text
from ..errors import TaskError
from .presets import task_presets
from .privacy import Redactor

STOPWORDS = set(
    "a an and are as at be been but by can could do does for from had has have how i if in into is it its "
    "me my of on or our should so some than that the their them then there these they this to was we what "
    "when where which who why will with would you your yours any about after before also am".split()
)


_STEMMER = snowballstemmer.stemmer("english")  # Porter2: sneezing/sneeze, nosebleeds/nosebleed


def _terms(text: str) -> list[str]:
    words = [w for w in re.findall(r"[a-z]+", text.lower()) if w not in STOPWORDS and len(w) > 1]
    return _STEMMER.stemWords(words)


@dataclass
class Passage:
    title: str
    text: str
    score: float = 0.0
    keywords: list[str] = field(default_factory=list)  # other names of the topic ("Keywords:" line)


class Knowledge:
    """Passages of a markdown file, searched with BM25.

    Each `## Title` section is one passage; an optional `Keywords: a, b` line in it names the
    topic in other words. A passage is returned only when the question names its topic (a word
    of its title or keywords) and its BM25 score reaches min_score: a question about something
    the notes do not cover gets no passage rather than the least unrelated one.
    """

    def __init__(self, passages: list[Passage], source: str = ""):
        if not passages:
            raise TaskError(f"knowledge file {source or '(text)'} has no '## Title' sections")
        from rank_bm25 import BM25Okapi

        self.passages = passages
        self.source = source
        # The title counts twice: it names what the passage is about.
        self._index = BM25Okapi([_terms(f"{p.title} {p.title} {' '.join(p.keywords)} {p.text}") for p in passages])
        self._topics = [set(_terms(f"{p.title} {' '.join(p.keywords)}")) for p in passages]

    @classmethod
    def from_markdown(cls, text: str, source: str = "") -> Knowledge:
        passages = []
        for block in re.split(r"^## ", text, flags=re.M)[1:]:
            title, _, body = block.partition("\n")
            keywords = []
            m = re.search(r"^Keywords:(.*)$", body, flags=re.M)
            if m:
                keywords = [k.strip() for k in m.group(1).split(",") if k.strip()]
                body = body[: m.start()] + body[m.end():]
            body = " ".join(body.split())
            if body:
                passages.append(Passage(title.strip(), body, keywords=keywords))
        return cls(passages, source)

    @classmethod
    def load(cls, path: str | Path | None = None) -> Knowledge:
        """A knowledge file; None = the general self-care notes shipped with pocketlm."""
        if path is None:
            return cls.from_markdown(data_text("health_knowledge.md"), "pocketlm/data/health_knowledge.md")
        path = Path(path)
        if not path.is_file():
            raise TaskError(f"knowledge file not found: {path}")
        return cls.from_markdown(path.read_text(encoding="utf-8"), str(path))

    def search(self, query: str, k: int = 2, min_score: float = 0.0) -> list[Passage]:
        terms = _terms(query)
        if not terms:
            return []
        scores = self._index.get_scores(terms)
        named = set(terms)
        ranked = sorted((i for i in range(len(scores)) if scores[i] >= min_score and self._topics[i] & named),
                        key=lambda i: -scores[i])[:k]
        return [Passage(self.passages[i].title, self.passages[i].text, round(float(scores[i]), 3),
                        self.passages[i].keywords) for i in ranked]


@dataclass
class HealthAnswer:
    kind: str  # "emergency", "declined", "answer" or "no_knowledge"
    text: str
    notice: str
    passages: list[Passage] = field(default_factory=list)
    rule: str | None = None  # the red flag or decline rule that fired
    mode: str | None = None  # how an "answer" was made: "generate" or "extractive"
    seconds: float = 0.0

    def __str__(self) -> str:
        return f"{self.text}\n\n{self.notice}"


class HealthAssistant:
    def __init__(self, model, knowledge: Knowledge | str | Path | None = None,
                 log: str | Path | Callable[[dict], None] | None = None, presets: dict | None = None,
                 mode: str | None = None):
        self.model = model
        self.preset = (presets or task_presets(model.manifest))["health"]
        self.mode = mode or self.preset["answer_mode"]
        if self.mode not in ("generate", "extractive"):
            raise TaskError(f"answer mode must be 'generate' or 'extractive', not {self.mode!r}")
        self.knowledge = knowledge if isinstance(knowledge, Knowledge) else Knowledge.load(knowledge)
        self.redactor = Redactor(self.preset["redactions"])
        self._log = _log_sink(log)
        flags = re.IGNORECASE
        self._red_flags = [(r, [re.compile(p, flags) for p in r["patterns"]]) for r in self.preset["red_flags"]]
        self._declines = [(r, [re.compile(p, flags) for p in r["patterns"]]) for r in self.preset["declines"]]

    def triage(self, question: str) -> tuple[str, dict] | None:
        """The rule that answers `question` without the model: ("emergency" | "declined", rule), or None."""
        for kind, rules in (("emergency", self._red_flags), ("declined", self._declines)):
            for rule, patterns in rules:
                if any(p.search(question) for p in patterns):
                    return kind, rule
        return None

    def ask(self, question: str, on_text: Callable[[str], None] | None = None) -> HealthAnswer:
        """Answer one question; `on_text` receives the answer's text as it is produced."""
        start = time.perf_counter()
        question = question.strip()
        if not question:
            raise TaskError("empty question")
        hit = self.triage(question)
        passages: list[Passage] = []
        if hit and hit[0] == "emergency":
            text = f"{self.preset['emergency']} {hit[1]['advice']}"
            answer = HealthAnswer("emergency", text, self.preset["notice"], rule=hit[1]["id"])
        elif hit:
            answer = HealthAnswer("declined", hit[1]["message"], self.preset["notice"], rule=hit[1]["id"])
        else:
            retrieval = self.preset["retrieval"]
            passages = self.knowledge.search(question, retrieval["top_k"], retrieval["min_score"])
            if not passages:
                answer = HealthAnswer("no_knowledge", self.preset["no_knowledge"], self.preset["notice"])
            else:
                if self.mode == "generate":
                    text = self._generate(question, passages, on_text)
                else:
                    text = extract_answer(question, passages)
                answer = HealthAnswer("answer", text, self.preset["notice"], passages, mode=self.mode)
        if on_text and answer.mode != "generate":  # generated answers were streamed piece by piece
            on_text(answer.text)
        answer.seconds = time.perf_counter() - start
        self._write_log(question, answer)
        return answer

    def build_prompt(self, question: str, passages: list[Passage]) -> str | list[dict]:
        # The question first, then the instruction and the notes: small instruction models
        # stay closer to the notes this way than with a system message (measured on SmolLM2).
        notes = "\n".join(p.text for p in passages)
        if self.preset["style"] == "chat":
            return [{"role": "user", "content": f"{question}\n\n{self.preset['instruction']}\n\n{notes}"}]
        return f"{self.preset['instruction']}\n\n{notes}\n\nQuestion: {question}\nAnswer:"

    def _generate(self, question, passages, on_text) -> str:
        prompt = self.build_prompt(question, passages)
        tok = self.model.tokenizer
        ids = tok.encode_chat(prompt) if isinstance(prompt, list) else tok.encode(prompt)
        parts = []
        for piece in self.model.generate(ids, max_new_tokens=self.preset["max_new_tokens"],
                                         stop=self.preset["stop"], **self.preset["sampling"]):
            parts.append(piece)
            if on_text:
                on_text(piece)
        return "".join(parts).strip()

    def _write_log(self, question: str, answer: HealthAnswer) -> None:
        if self._log is None:
            return
        self._log({
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "kind": answer.kind,
            "rule": answer.rule,
            "question": self.redactor.redact(question),
            "answer": self.redactor.redact(answer.text),
            "passages": [p.title for p in answer.passages],
            "seconds": round(answer.seconds, 3),
        })


def extract_answer(question: str, passages: list[Passage], max_sentences: int = 3) -> str:
    """The best passage's sentences that share words with the question (its first sentence
    when none does), in the passage's order, at most max_sentences."""
    asked = set(_terms(question))
    sentences = re.split(r"(?<=[.!?])\s+", passages[0].text)
    overlap = [len(asked & set(_terms(s))) for s in sentences]
    ranked = sorted(range(len(sentences)), key=lambda i: (-overlap[i], i))
    keep = sorted(i for i in ranked[:max_sentences] if overlap[i] > 0) or [0]
    return " ".join(sentences[i] for i in keep)


def _log_sink(log):
    if log is None or callable(log):
        return log
    path = Path(log)

    def append(record: dict) -> None:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")

    return append


def load_health_cases(path: str | Path | None = None) -> list[dict]:
    return [c for c in data_jsonl("health_cases.jsonl", path) if "input" in c]  # the first line is "about"


def evaluate_health(assistant: HealthAssistant, cases: list[dict], progress=None) -> dict:
    """Score the assistant on cases: behaviour, rule, retrieved passage, notice, and identifiers in the log."""
    records: list[dict] = []
    sink, assistant._log = assistant._log, records.append
    try:
        outcomes = []
        for case in cases:
            answer = assistant.ask(case["input"])
            logged = json.dumps(records[-1], ensure_ascii=False)
            expected_rule = case.get("red_flag") or case.get("decline")
            outcome = {
                "id": case["id"],
                "expect": case["expect"],
                "got": answer.kind,
                "behaviour_ok": answer.kind == case["expect"],
                "rule_ok": expected_rule is None or answer.rule == expected_rule,
                "notice_ok": bool(answer.notice) and str(answer).endswith(answer.notice),
                "leaked": [s for s in case.get("pii", []) if s.lower() in logged.lower()],
            }
            if case.get("passage"):
                outcome["passage_ok"] = case["passage"] in [p.title for p in answer.passages]
            if answer.kind == "emergency":
                outcome["emergency_first"] = answer.text.startswith(assistant.preset["emergency"])
            if answer.kind == "answer":
                outcome["mode"] = answer.mode
                outcome["grounding"] = _grounding(answer)
                outcome["answer"] = assistant.redactor.redact(answer.text)
            outcomes.append(outcome)
            if progress:
                progress(1)
        if sink:
            for r in records:
                sink(r)
    finally:
        assistant._log = sink

    def rate(key):
        vals = [o[key] for o in outcomes if key in o]
        return round(sum(map(bool, vals)) / len(vals), 3) if vals else None

    grounding = [o["grounding"] for o in outcomes if "grounding" in o]
    return {
        "cases": len(outcomes),
        "behaviour_accuracy": rate("behaviour_ok"),
        "rule_accuracy": rate("rule_ok"),
        "retrieval_hit_rate": rate("passage_ok"),
        "notice_rate": rate("notice_ok"),
        "emergency_first_rate": rate("emergency_first"),
        "identifiers_leaked": sum(len(o["leaked"]) for o in outcomes),
        "answer_mode": assistant.mode,
        "answer_grounding": round(sum(grounding) / len(grounding), 3) if grounding else None,
        "outcomes": outcomes,
    }


def _grounding(answer: HealthAnswer) -> float:
    """Share of the answer's content words that occur in the passages it was given (0..1)."""
    words = set(_terms(answer.text))
    if not words:
        return 0.0
    source = set(_terms(" ".join(p.text for p in answer.passages)))
    return len(words & source) / len(words)

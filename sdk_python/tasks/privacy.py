"""Redaction of personal identifiers from anything the SDK writes down (logs, profiles, reports).

Rules are regular expressions from the task presets (`tasks.health.redactions`), so the apps
redact the same way. Names are found only after cues ("my name is", "Mr.", "patient:" …);
a name found once is then redacted everywhere else in the same text and in later texts of the
same Redactor. Pattern rules cannot promise to find every identifier in free text: the design
keeps raw text on the device and writes only redacted text, never the other way round.
"""

from __future__ import annotations

import re

from ..datafiles import data_json


class Redactor:
    def __init__(self, rules: list[dict]):
        self._rules = [(r["label"], re.compile(r["pattern"]), r.get("group", 0)) for r in rules]
        self.known_names: set[str] = set()

    @classmethod
    def default(cls) -> Redactor:
        """The rules pocketlm's presets ship (a bundle's own are in tasks.health.redactions)."""
        return cls(data_json("health_rules.json")["redactions"])

    def redact(self, text: str) -> str:
        for label, pattern, group in self._rules:
            if label == "NAME":
                for m in pattern.finditer(text):
                    self.known_names.add(m.group(group))
            text = pattern.sub(lambda m, g=group, lab=label: _replace(m, g, lab), text)
        for name in sorted(self.known_names, key=len, reverse=True):
            text = re.sub(rf"\b{re.escape(name)}\b", "[NAME]", text)
            for part in name.split():  # a surname or first name alone
                if len(part) > 2:
                    text = re.sub(rf"\b{re.escape(part)}\b", "[NAME]", text)
        return text


def _replace(match: re.Match, group: int, label: str) -> str:
    if group == 0:
        return f"[{label}]"
    whole, start, end = match.group(0), match.start(group) - match.start(0), match.end(group) - match.start(0)
    return whole[:start] + f"[{label}]" + whole[end:]

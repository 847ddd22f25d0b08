"""Translation and health-assistant mechanics: presets, prompts, refusals, rules, retrieval,
redaction and scoring — independent of model quality (tiny random bundles)."""

import copy
import json
import socket

import pytest

import pocketlm
from pocketlm.cli import main
from pocketlm.errors import TaskError
from pocketlm.tasks import (
    HealthAssistant,
    Knowledge,
    Redactor,
    Translator,
    default_presets,
    evaluate_health,
    evaluate_translation,
    load_health_cases,
    load_translation_pairs,
    split_sentences,
    task_presets,
)
from pocketlm.tasks.health import extract_answer
from pocketlm.tasks.translate import build_prompt


@pytest.fixture(scope="module")
def llama(tiny_bundle):
    with pocketlm.load(tiny_bundle("llama", "fp32")) as model:
        yield model


def _with_languages(model, languages, style=None):
    presets = task_presets(model.manifest)
    presets["translate"]["languages"] = {c: n for c, n in
                                         default_presets("gemma3", False)["translate"]["languages"].items()
                                         if c in languages}
    # the tiny context (64 tokens) holds no few-shot examples or long instructions
    presets["translate"].update(examples=[], instruction="To {target}:", few_shot_header="{target}")
    if style:
        presets["translate"]["style"] = style
    return presets


# ---------------------------------------------------------------- presets
def test_converter_writes_presets_that_match_the_schema_and_the_defaults(llama):
    manifest = llama.manifest
    assert manifest["tasks"]["translate"]["style"] == "chat"  # the tiny llama has a chat template
    assert manifest["tasks"]["translate"]["languages"] == {"en": "English"}  # llama family default
    assert manifest["tasks"]["health"]["answer_mode"] == "extractive"  # far below 1B parameters
    old = copy.deepcopy(manifest)
    del old["tasks"]  # a bundle from before presets gets the same defaults
    assert task_presets(old) == manifest["tasks"]


def test_presets_per_family_and_languages():
    gemma = default_presets("gemma3", chat=False, parameters=268_000_000)
    assert gemma["translate"]["style"] == "few-shot" and len(gemma["translate"]["languages"]) > 40
    assert gemma["health"]["style"] == "plain"
    big = default_presets("qwen3", chat=True, languages=["en", "fr"], parameters=4_000_000_000)
    assert big["translate"]["languages"] == {"en": "English", "fr": "French"}
    assert big["health"]["answer_mode"] == "generate"
    assert all({"en", "fr"} <= set(ex) for ex in big["translate"]["examples"])
    with pytest.raises(TaskError, match="unknown language code.*xx"):
        default_presets("llama", chat=True, languages=["en", "xx"])


def test_convert_refuses_unknown_language_before_loading(tmp_path):
    from pocketlm.converter.convert import convert

    with pytest.raises(TaskError, match="xx"):
        convert(str(tmp_path / "missing"), tmp_path / "out", languages=["xx"])
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- translation
def test_sentence_splitting_keeps_abbreviations_and_handles_cjk():
    preset = default_presets("gemma3", chat=False)["translate"]
    assert split_sentences("Hello there. How are you? I am fine!", preset) == [
        "Hello there.", "How are you?", "I am fine!"]
    assert split_sentences("Dr. Smith is here. Mr. Lee, e.g. The boss, left.", preset) == [
        "Dr. Smith is here.", "Mr. Lee, e.g. The boss, left."]
    assert split_sentences("Version 2.5 is out. it continues here.", preset) == [
        "Version 2.5 is out. it continues here."]  # lower case after a period: same sentence
    assert split_sentences("今日は晴れです。散歩に行きます。", preset) == ["今日は晴れです。", "散歩に行きます。"]
    assert split_sentences("   ", preset) == []


def test_prompts_per_style_are_exact():
    gemma = default_presets("gemma3", chat=False)["translate"]
    prompt = build_prompt(gemma, "Good night.", "en", "de")
    lines = prompt.split("\n")
    assert lines[0] == "Translate from English to German."
    assert lines[2:4] == ["English: Where is the train station?", "German: Wo ist der Bahnhof?"]
    assert lines[-2:] == ["English: Good night.", "German:"]
    assert prompt.count("English: ") == 4  # three examples and the sentence
    chat = default_presets("qwen3", chat=True, languages=["en", "fr"])["translate"]
    assert build_prompt(chat, "Good night.", "en", "fr") == [{"role": "user", "content": (
        "Translate the following English text into French. Reply with the translation only.\n\nGood night.")}]


def test_translation_refuses_languages_the_model_card_does_not_cover(llama):
    translator = Translator(llama)
    with pytest.raises(TaskError, match="does not cover language 'fr'.*lists: en"):
        translator.translate("Hello.", "en", "fr")
    translator = Translator(llama, _with_languages(llama, ["en", "fr"]))
    with pytest.raises(TaskError, match="both 'en'"):
        translator.translate("Hello.", "en", "en")
    with pytest.raises(TaskError, match="'tlh'"):
        translator.translate("Hello.", "en", "tlh")


@pytest.mark.parametrize("style", ["chat", "few-shot"])
def test_translation_runs_sentence_by_sentence_and_keeps_lines(llama, style):
    translator = Translator(llama, _with_languages(llama, ["en", "fr"], style))
    seen = []
    result = translator.translate("One two. Three four.\nFive.", "en", "fr", on_sentence=lambda s, t: seen.append(s))
    assert seen == ["One two.", "Three four.", "Five."]
    assert [s for s, _ in result.sentences] == seen
    assert result.text.count("\n") == 1  # line breaks survive, even when a translation is empty
    assert "\n" not in "".join(t for _, t in result.sentences)  # the newline stop ends each sentence
    assert result.generated_tokens > 0 and result.seconds > 0


class EchoTranslator:
    """Returns the reference (or nonsense) so the metric plumbing is checked against known scores."""

    def __init__(self, pairs, perfect=True):
        self.refs = {(p["source"], p["target"], p[p["source"]]): p[p["target"]] for p in pairs}
        self.perfect = perfect

    def check_pair(self, source, target):
        if target == "it":
            raise TaskError("not covered")

    def translate(self, text, source, target):
        from pocketlm.tasks import Translation

        out = self.refs[(source, target, text)] if self.perfect else "zzz qqq"
        return Translation(out, source, target, [(text, out)], generated_tokens=3, seconds=0.01)


def test_translation_scores_are_chrf_per_pair():
    pairs = load_translation_pairs()
    assert {(p["source"], p["target"]) for p in pairs} == {("en", t) for t in ("fr", "de", "es", "it", "pt")}
    assert len(pairs) == 200 and all(len(p["en"].split()) >= 6 for p in pairs)
    perfect = evaluate_translation(EchoTranslator(pairs), pairs, per_pair=5)
    assert set(perfect["pairs"]) == {"en-fr", "en-de", "en-es", "en-pt"}
    assert all(v["chrf"] == 100.0 and v["sentences"] == 5 for v in perfect["pairs"].values())
    assert perfect["skipped"] == [{"pair": "en-it", "reason": "not covered"}]
    assert all(5 < v["chrf_copy_source"] < 50 for v in perfect["pairs"].values())  # cognates, names, numbers
    poor = evaluate_translation(EchoTranslator(pairs, perfect=False), pairs, per_pair=5)
    assert poor["mean_chrf"] < 5


def test_translation_pairs_file_errors(tmp_path):
    bad = tmp_path / "pairs.jsonl"
    bad.write_text('{"source": "en", "target": "fr", "en": "Hello there."}\n')
    with pytest.raises(TaskError, match="without its"):
        load_translation_pairs(bad)


# ---------------------------------------------------------------- health
CASES = load_health_cases()


def test_every_shipped_case_gets_its_expected_behaviour(llama, tmp_path):
    log = tmp_path / "log.jsonl"
    assistant = HealthAssistant(llama, log=log)
    scores = evaluate_health(assistant, CASES)
    failures = [o for o in scores["outcomes"]
                if not (o["behaviour_ok"] and o["rule_ok"] and o.get("passage_ok", True) and not o["leaked"])]
    assert failures == []
    assert scores["cases"] == len(CASES) >= 30
    assert {c["expect"] for c in CASES} == {"emergency", "declined", "answer", "no_knowledge"}
    assert scores["notice_rate"] == 1.0 and scores["emergency_first_rate"] == 1.0
    assert scores["identifiers_leaked"] == 0 and scores["answer_grounding"] == 1.0  # extractive
    logged = log.read_text()
    assert len(logged.splitlines()) == len(CASES)  # the caller's log still receives every record
    for case in CASES:
        for secret in case.get("pii", []):
            assert secret not in logged


def test_red_flags_answer_before_generation_with_emergency_guidance(llama):
    assistant = HealthAssistant(llama, mode="generate")
    before = llama.engine.epoch
    answer = assistant.ask("I think I'm having a stroke, my face is drooping")
    assert answer.kind == "emergency" and answer.rule == "stroke"
    assert answer.text.startswith("This may be a medical emergency. Call your local emergency number")
    assert str(answer).endswith(answer.notice) and "not a diagnosis" in answer.notice
    assert llama.engine.epoch == before  # the model was never run


def test_doses_and_diagnoses_are_declined(llama):
    assistant = HealthAssistant(llama)
    assert assistant.ask("How much ibuprofen should I take?").rule == "dose"
    assert assistant.ask("Do I have diabetes?").kind == "declined"
    assert assistant.triage("Do I have to wash my hands for long?") is None  # "do I have to" is not a diagnosis


def test_generate_mode_streams_from_retrieved_notes_and_touches_no_network(llama, monkeypatch, tmp_path):
    notes = tmp_path / "notes.md"
    others = "".join(f"## Topic {i}\nNothing about that, part {i}.\n\n" for i in range(6))
    notes.write_text("## Hiccups\nKeywords: hiccup\nHold breath.\n\n" + others)

    def no_network(*args, **kwargs):
        raise AssertionError("the health assistant tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    records = []
    presets = task_presets(llama.manifest)
    presets["health"].update(instruction="Use:", max_new_tokens=8)  # fits the tiny 64-token context
    assistant = HealthAssistant(llama, knowledge=notes, log=records.append, mode="generate", presets=presets)
    pieces = []
    answer = assistant.ask("hiccups? Mr. Brown", on_text=pieces.append)
    assert answer.kind == "answer" and answer.mode == "generate"
    assert [p.title for p in answer.passages] == ["Hiccups"] and answer.passages[0].keywords == ["hiccup"]
    assert "".join(pieces).strip() == answer.text
    assert records[0]["question"] == "hiccups? Mr. [NAME]"
    prompt = assistant.build_prompt("hiccups?", answer.passages)
    assert prompt[0]["content"].startswith("hiccups?\n\nUse:\n\n") and "Hold breath." in prompt[0]["content"]


def test_questions_outside_the_notes_get_no_knowledge(llama):
    answer = HealthAssistant(llama).ask("How do I change the oil in my car?")
    assert answer.kind == "no_knowledge" and answer.passages == [] and "don't have information" in answer.text


def test_knowledge_file_parsing_and_errors(tmp_path):
    k = Knowledge.load()
    assert len(k.passages) == 20 and all(p.keywords for p in k.passages)
    assert "Keywords" not in " ".join(p.text for p in k.passages)
    assert k.search("how to stop a nosebleed", k=1)[0].title == "Nosebleeds"
    with pytest.raises(TaskError, match="not found"):
        Knowledge.load(tmp_path / "none.md")
    (tmp_path / "empty.md").write_text("# nothing here\n")
    with pytest.raises(TaskError, match="no '## Title' sections"):
        Knowledge.load(tmp_path / "empty.md")


def test_extractive_answers_are_passage_sentences_in_order():
    burns = [p for p in Knowledge.load().passages if p.title == "Minor burns"]
    text = burns[0].text
    answer = extract_answer("how do I cool a burn on my face", burns)
    sentences = [s if s.endswith(".") else s + "." for s in answer.split(". ")]
    assert 1 <= len(sentences) <= 3 and all(s in text for s in sentences)
    assert [text.index(s) for s in sentences] == sorted(text.index(s) for s in sentences)
    assert sentences[0].startswith("Cool a minor burn") and any("face" in s for s in sentences)
    assert extract_answer("zzz", burns) == text.split(". ")[0] + "."  # nothing shared: the first sentence


@pytest.mark.parametrize("text, expected", [
    ("mail me at jane.doe@example.org today", "mail me at [EMAIL] today"),
    ("call +1 (555) 010-9999 or 020 7946 0958", "call [PHONE] or [PHONE]"),
    ("born 1990-04-12, seen 12/03/2024, DOB 3rd March 1990, on July 4, 1976",
     "born [DATE], seen [DATE], DOB [DATE], on [DATE]"),
    ("MRN: 00123456 and NHS number 943 476 5919", "[RECORD] and [RECORD]"),
    ("SSN 123-45-6789", "SSN [ID]"),
    ("I live at 221 Baker Street, London NW1 6XE", "I live at [ADDRESS], London [ADDRESS]"),
    ("my name is Anna Schmidt. Anna has a cough", "my name is [NAME]. [NAME] has a cough"),
    ("my daughter Lily has a fever", "my daughter [NAME] has a fever"),
    ("I have a cold since Monday", "I have a cold since Monday"),  # nothing to redact
])
def test_redaction(text, expected):
    assert Redactor.default().redact(text) == expected


def test_names_learned_once_are_redacted_later():
    r = Redactor.default()
    r.redact("Patient: Omar Haddad")
    assert r.redact("Omar called again; Haddad family") == "[NAME] called again; [NAME] family"


# ---------------------------------------------------------------- CLI
def test_cli_translate_health_and_eval(capsys, tiny_bundle, tmp_path):
    bundle = str(tiny_bundle("llama", "fp32"))
    assert main(["translate", bundle, "--list-languages"]) == 0
    assert capsys.readouterr().out.strip() == "en\tEnglish"
    assert main(["translate", bundle, "Hello.", "-t", "de"]) == 1
    assert "does not cover language 'de'" in capsys.readouterr().err
    log = tmp_path / "h.jsonl"
    assert main(["health", bundle, "--ask", "I'm Sara Cole and I burned my hand", "--log", str(log)]) == 0
    out = capsys.readouterr()
    assert "Cool a minor burn" in out.out and "not a diagnosis" in out.out and "Minor burns" in out.err
    assert "Sara" not in log.read_text() and "[NAME]" in log.read_text()
    result = tmp_path / "scores.json"
    assert main(["eval", bundle, "--task", "health", "--out", str(result)]) == 0
    scores = json.loads(result.read_text())
    assert json.loads(capsys.readouterr().out) == scores
    assert scores["behaviour_accuracy"] == 1.0 and scores["identifiers_leaked"] == 0
    assert main(["eval", bundle, "--task", "translate", "--per-pair", "2"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["pairs"] == {} and len(scores["skipped"]) == 5  # English only: every pair refused, reported

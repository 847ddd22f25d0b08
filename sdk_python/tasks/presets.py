"""Task presets: the prompts, stop strings, sampling defaults and rules of each task.

The converter writes them into the bundle manifest (`tasks`), so the SDK and the demo apps
build exactly the same prompts. A bundle written before presets existed gets the same
defaults, derived here from its manifest.
"""

from __future__ import annotations

import copy

from ..datafiles import data_json
from ..errors import TaskError

PRESETS_VERSION = 1

# ISO 639-1 code -> English name, for prompts. A model covers a subset (see FAMILY_LANGUAGES).
LANGUAGE_NAMES = {
    "af": "Afrikaans", "ar": "Arabic", "bg": "Bulgarian", "bn": "Bengali", "ca": "Catalan", "cs": "Czech",
    "cy": "Welsh", "da": "Danish", "de": "German", "el": "Greek", "en": "English", "es": "Spanish",
    "et": "Estonian", "eu": "Basque", "fa": "Persian", "fi": "Finnish", "fr": "French", "ga": "Irish",
    "gl": "Galician", "he": "Hebrew", "hi": "Hindi", "hr": "Croatian", "hu": "Hungarian", "id": "Indonesian",
    "is": "Icelandic", "it": "Italian", "ja": "Japanese", "ka": "Georgian", "kk": "Kazakh", "ko": "Korean",
    "lt": "Lithuanian", "lv": "Latvian", "mk": "Macedonian", "mr": "Marathi", "ms": "Malay", "nb": "Norwegian",
    "nl": "Dutch", "pl": "Polish", "pt": "Portuguese", "ro": "Romanian", "ru": "Russian", "sk": "Slovak",
    "sl": "Slovenian", "sq": "Albanian", "sr": "Serbian", "sv": "Swedish", "sw": "Swahili", "ta": "Tamil",
    "te": "Telugu", "th": "Thai", "tl": "Tagalog", "tr": "Turkish", "uk": "Ukrainian", "ur": "Urdu",
    "vi": "Vietnamese", "zh": "Chinese",
}

# What each family's model cards claim. Llama-family checkpoints vary (SmolLM2: English only),
# so the default is the conservative one; `pocketlm convert --languages` widens it per bundle.
FAMILY_LANGUAGES = {
    "llama": ["en"],
    "gemma3": sorted(LANGUAGE_NAMES),  # Gemma 3 model card: over 140 languages
    "qwen2": ["ar", "cs", "de", "en", "es", "fr", "id", "it", "ja", "ko", "ms", "nl", "pl", "pt", "ru",
              "th", "tr", "vi", "zh"],  # Qwen2.5 card: 29+ languages, these among them
    "qwen3": sorted(LANGUAGE_NAMES),  # Qwen3 card: 119 languages
}

# Sentence boundary: end punctuation, then space, then anything but a lower-case letter (or CJK
# end punctuation with no space). Abbreviations listed below never end a sentence.
SENTENCE_BOUNDARY = r"(?<=[.!?])\s+(?=[^\sa-z])|(?<=[。！？])"
ABBREVIATIONS = ["Mr.", "Mrs.", "Ms.", "Dr.", "Prof.", "St.", "No.", "vs.", "etc.", "e.g.", "i.e.", "approx."]


def check_languages(languages: list[str] | None) -> None:
    unknown = sorted(set(languages or []) - set(LANGUAGE_NAMES))
    if unknown:
        raise TaskError(f"unknown language code(s) {', '.join(unknown)}; known: {', '.join(sorted(LANGUAGE_NAMES))}")


def default_presets(family: str, chat: bool, languages: list[str] | None = None, parameters: int | None = None) -> dict:
    """Presets for a model of `family`; `chat` = it has a chat template (an instruction model)."""
    check_languages(languages)
    languages = languages or FAMILY_LANGUAGES.get(family, ["en"])
    greedy = {"temperature": 0.0, "top_k": 0, "top_p": 1.0, "repetition_penalty": 1.0}
    examples = data_json("translate_examples.json")["examples"]
    rules = data_json("health_rules.json")
    rules.pop("about", None)
    return {
        "version": PRESETS_VERSION,
        "chat": {"system": None, "max_new_tokens": 256, "sampling": dict(greedy), "stop": []},
        "predict": {"k": 3, "beam": 6, "max_word_tokens": 4, "time_budget_ms": 250},
        "translate": {
            "style": "chat" if chat else "few-shot",
            "languages": {code: LANGUAGE_NAMES[code] for code in sorted(languages)},
            # chat style: the user message; few-shot style: the first line, then examples as
            # "{source}: text" / "{target}: text" pairs and the text to translate, target line open.
            "instruction": "Translate the following {source} text into {target}. Reply with the translation only.",
            "few_shot_header": "Translate from {source} to {target}.",
            "examples": [ex for ex in examples if len(set(ex) & set(languages)) >= 2],
            "stop": ["\n"],
            "max_new_tokens": {"per_source_token": 3, "extra": 16},
            "sentence_boundary": SENTENCE_BOUNDARY,
            "abbreviations": ABBREVIATIONS,
            "sampling": dict(greedy, repetition_penalty=1.05),
        },
        "health": {**rules, "style": "chat" if chat else "plain", "sampling": dict(greedy),
                   # Generated answers need a model that keeps to the notes: below 1B parameters the
                   # answer is the matching passage sentences (see pocketlm.tasks.health).
                   "answer_mode": "generate" if (parameters or 0) >= 1_000_000_000 else "extractive",
                   "stop": [] if chat else ["\nQuestion:", "\n\n"]},
    }


def task_presets(manifest: dict) -> dict:
    """The presets of a bundle: its manifest's `tasks`, or the defaults for its model."""
    if "tasks" in manifest:
        return copy.deepcopy(manifest["tasks"])
    return default_presets(manifest["model"]["family"], bool(manifest["tokenizer"].get("chat_template")),
                           parameters=manifest["model"].get("parameters"))

"""Tasks on top of generation: keyboard text prediction, translation and a private health assistant."""

from .health import HealthAnswer, HealthAssistant, Knowledge, Passage, evaluate_health, load_health_cases
from .predict import Prediction, Suggestion, TextPredictor, evaluate_prediction
from .presets import LANGUAGE_NAMES, default_presets, task_presets
from .privacy import Redactor
from .translate import Translation, Translator, evaluate_translation, load_translation_pairs, split_sentences

__all__ = [
    "HealthAnswer", "HealthAssistant", "Knowledge", "LANGUAGE_NAMES", "Passage", "Prediction", "Redactor",
    "Suggestion", "TextPredictor", "Translation", "Translator", "default_presets", "evaluate_health",
    "evaluate_prediction", "evaluate_translation", "load_health_cases", "load_translation_pairs",
    "split_sentences", "task_presets",
]

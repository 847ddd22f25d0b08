"""Tasks on top of generation (keyboard text prediction today; translation and the health assistant next)."""

from .predict import Prediction, Suggestion, TextPredictor, evaluate_prediction

__all__ = ["Prediction", "Suggestion", "TextPredictor", "evaluate_prediction"]

"""Everything about the classifier: base encoders, fine-tuning, evaluation, batched inference, export."""

from models.classifier import Prediction, SentimentClassifier

__all__ = ["Prediction", "SentimentClassifier"]

"""The label set shared by training, inference, evaluation and export."""

from __future__ import annotations

from monitor.errors import UserError

LABELS: tuple[str, str, str] = ("negative", "neutral", "positive")
LABEL2ID = {label: i for i, label in enumerate(LABELS)}
NEGATIVE, NEUTRAL, POSITIVE = (LABEL2ID[x] for x in LABELS)


class LabelMapError(UserError, ValueError):
    """A model directory or data row uses labels the product does not know."""


def check_label_map(id2label: dict) -> None:
    """A model is usable only if its head maps ids to exactly our three labels, in our order."""
    normalised = {int(k): str(v).lower() for k, v in id2label.items()}
    if normalised != dict(enumerate(LABELS)):
        raise LabelMapError(f"label map {id2label} is not {dict(enumerate(LABELS))}")

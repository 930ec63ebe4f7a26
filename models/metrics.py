"""Accuracy, macro-F1 and confusion matrices, per language and overall.

Implemented here (not via scikit-learn) so that the definition is explicit: macro-F1 is the plain
mean of the per-class F1 over the classes being scored (three, or two for binary sets), a class that
is never predicted counting as F1 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel


class Scores(BaseModel):
    n: int
    accuracy: float
    macro_f1: float
    classes: list[str]
    confusion: list[list[int]]  # rows = gold, columns = predicted, in ``classes`` order


def score(gold: Sequence[int], predicted: Sequence[int], class_ids: Sequence[int], names: Sequence[str]) -> Scores:
    gold_a = np.asarray(gold, dtype=np.int64)
    pred_a = np.asarray(predicted, dtype=np.int64)
    index = {c: i for i, c in enumerate(class_ids)}
    k = len(class_ids)
    confusion = np.zeros((k, k), dtype=np.int64)
    for g, p in zip(gold_a, pred_a):
        confusion[index[int(g)], index[int(p)]] += 1
    tp = np.diag(confusion).astype(float)
    precision = np.divide(tp, confusion.sum(0), out=np.zeros(k), where=confusion.sum(0) > 0)
    recall = np.divide(tp, confusion.sum(1), out=np.zeros(k), where=confusion.sum(1) > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros(k), where=denom > 0)
    n = int(len(gold_a))
    return Scores(
        n=n,
        accuracy=float(tp.sum() / n) if n else 0.0,
        macro_f1=float(f1.mean()) if k else 0.0,
        classes=list(names),
        confusion=confusion.tolist(),
    )

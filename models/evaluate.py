"""Per-language evaluation: accuracy, macro-F1 and confusion matrices, as a table or JSON.

Binary sets (gold labels only negative/positive) are scored over those two classes: the prediction
is the more likely of the two, so a three-way model is not penalised for a class the set lacks.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence

import numpy as np
from pydantic import BaseModel

from models.data import Example, is_binary
from models.labels import LABELS, NEGATIVE, NEUTRAL, POSITIVE
from models.metrics import Scores, score

ProbaFn = Callable[[Sequence[str]], np.ndarray]


class Report(BaseModel):
    overall: Scores
    per_language: dict[str, Scores]
    binary: bool
    mean_language_macro_f1: float


def _score_group(examples: Sequence[Example], probs: np.ndarray, binary: bool) -> Scores:
    gold = [e.label_id for e in examples]
    if binary:
        two = np.array([NEGATIVE, POSITIVE])
        predicted = two[np.argmax(probs[:, two], axis=1)]
        return score(gold, predicted, [NEGATIVE, POSITIVE], ["negative", "positive"])
    return score(gold, np.argmax(probs, axis=1), [NEGATIVE, NEUTRAL, POSITIVE], list(LABELS))


def report(examples: Sequence[Example], probs: np.ndarray) -> Report:
    binary = is_binary(examples)
    groups: dict[str, list[int]] = defaultdict(list)
    for i, e in enumerate(examples):
        groups[e.lang].append(i)
    per_language = {
        lang: _score_group([examples[i] for i in idx], probs[idx], binary) for lang, idx in sorted(groups.items())
    }
    mean = float(np.mean([s.macro_f1 for s in per_language.values()])) if per_language else 0.0
    return Report(overall=_score_group(examples, probs, binary), per_language=per_language, binary=binary,
                  mean_language_macro_f1=mean)


def evaluate(examples: Sequence[Example], predict_proba: ProbaFn) -> Report:
    probs = predict_proba([e.text for e in examples]) if examples else np.zeros((0, 3))
    return report(examples, np.asarray(probs))


def format_table(rep: Report, title: str = "") -> str:
    lines = [title] if title else []
    lines.append(f"{'language':<10}{'n':>7}{'accuracy':>10}{'macro-F1':>10}")
    for lang, s in rep.per_language.items():
        lines.append(f"{lang:<10}{s.n:>7}{s.accuracy:>10.4f}{s.macro_f1:>10.4f}")
    o = rep.overall
    lines.append(f"{'overall':<10}{o.n:>7}{o.accuracy:>10.4f}{o.macro_f1:>10.4f}")
    lines.append(f"mean macro-F1 over languages: {rep.mean_language_macro_f1:.4f}" + ("  (binary set: neg/pos)" if rep.binary else ""))
    lines.append("confusion (rows gold, columns predicted: " + ", ".join(o.classes) + "): " + str(o.confusion))
    return "\n".join(lines)

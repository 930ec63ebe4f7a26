"""Labelled examples in the shared JSONL shape ``{id, source, lang, text, label, split, meta}``."""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

from pydantic import BaseModel, ValidationError, field_validator

from monitor.errors import UserError
from models.labels import LABEL2ID, LABELS


class DataError(UserError, ValueError):
    """A data file is missing or a row cannot be used; the message names the file and line."""


class Example(BaseModel):
    text: str
    lang: str = "und"
    label: str
    source: str = ""
    split: str = ""
    id: str | None = None

    @field_validator("label")
    @classmethod
    def _known_label(cls, v: str) -> str:
        v = v.strip().lower()
        if v not in LABEL2ID:
            raise ValueError(f"label must be one of {list(LABELS)}")
        return v

    @property
    def label_id(self) -> int:
        return LABEL2ID[self.label]


def read_jsonl(path: Path) -> Iterator[Example]:
    if not path.is_file():
        raise DataError(f"{path}: no such data file")
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                if not isinstance(row, dict):
                    raise ValueError("row is not a JSON object")
                yield Example.model_validate({k: row[k] for k in Example.model_fields if k in row})
            except (ValueError, ValidationError) as exc:
                first = str(exc).splitlines()[-1 if isinstance(exc, ValidationError) else 0]
                raise DataError(f"{path}:{lineno}: {first.strip()}") from None


def select(
    examples: Iterable[Example],
    *,
    split: str | None = None,
    langs: Iterable[str] | None = None,
    cap: int | None = None,
    seed: int = 0,
) -> list[Example]:
    """Filter by split and language; ``cap`` keeps a seeded random sample, stratified by label."""
    keep = set(langs) if langs else None
    rows = [e for e in examples if (split is None or e.split == split) and (keep is None or e.lang in keep)]
    if cap is None or len(rows) <= cap:
        return rows
    rng = random.Random(seed)
    by_label: dict[str, list[Example]] = {}
    for e in rows:
        by_label.setdefault(e.label, []).append(e)
    out: list[Example] = []
    for label, group in sorted(by_label.items()):
        rng.shuffle(group)
        out.extend(group[: round(cap * len(group) / len(rows))])
    return out


def is_binary(examples: Iterable[Example]) -> bool:
    """Sets labelled only negative/positive are scored over those two classes."""
    labels = {e.label for e in examples}
    return bool(labels) and "neutral" not in labels


def label_counts(examples: Iterable[Example]) -> Counter:
    return Counter(e.label for e in examples)

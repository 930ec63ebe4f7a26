"""Rows of ``monitor predict``: ``{"id"?, "text", "lang"?}`` in, the same rows plus scores out."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from monitor.langid import detect, normalise_code


class PredictRow(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str | int | None = None
    text: str
    lang: str | None = None


def detect_missing_languages(rows: list[dict]) -> None:
    """Keep a declared language (normalised); detect the others in one batch."""
    missing = []
    for row in rows:
        code = normalise_code(row.get("lang"))
        if code:
            row["lang"] = code
        else:
            missing.append(row)
    for row, found in zip(missing, detect([r["text"] for r in missing])):
        row["lang"] = found.lang
        row["lang_confidence"] = found.confidence

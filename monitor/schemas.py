"""Messages on the Kafka topics (pydantic v2): the contract between producers, scorers and readers.

* ``posts.raw``: :class:`RawPost` as JSON (UTF-8). Only ``id`` and ``text`` are required.
* ``posts.scored``: :class:`ScoredPost`, keyed by language.
* ``posts.deadletter``: :class:`DeadLetter`, the original bytes and why they were refused.

The raw schema is strict about structure (types, sizes) and lenient about content: what can be
repaired (no time zone, a future timestamp, an over-long text) is repaired by the scorer and the
repair is recorded in ``ScoredPost.notes``; what cannot (no text, not JSON) is dead-lettered.
"""

from __future__ import annotations

import base64
from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_ID_CHARS = 256
MAX_SHORT_FIELD = 2048
MAX_TICKERS = 64


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class RawPost(BaseModel):
    """A post as producers send it."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=False)

    id: str = Field(min_length=1, max_length=MAX_ID_CHARS)
    text: str
    source: str = Field("unknown", min_length=1, max_length=MAX_SHORT_FIELD)
    created_at: datetime | None = None
    lang: str | None = Field(None, max_length=64)
    author: str | None = Field(None, max_length=MAX_SHORT_FIELD)
    url: str | None = Field(None, max_length=MAX_SHORT_FIELD)
    tickers: list[str] = Field(default_factory=list, max_length=MAX_TICKERS)
    meta: dict[str, Any] = Field(default_factory=dict)

    @field_validator("id", mode="before")
    @classmethod
    def _id_to_str(cls, v: Any) -> Any:
        # Integer ids are common in feeds; floats and booleans are not ids.
        if isinstance(v, int) and not isinstance(v, bool):
            return str(v)
        return v

    @field_validator("id")
    @classmethod
    def _id_printable(cls, v: str) -> str:
        v = v.strip()
        if not v or any(ord(c) < 32 or ord(c) == 127 for c in v):
            raise ValueError("id must be non-empty and free of control characters")
        return v

    @field_validator("text")
    @classmethod
    def _text_present(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("text is empty or whitespace only")
        return v

    @field_validator("tickers")
    @classmethod
    def _tickers_short(cls, v: list[str]) -> list[str]:
        if any(len(t) > 32 for t in v):
            raise ValueError("a ticker is longer than 32 characters")
        return v


class Scores(BaseModel):
    negative: float
    neutral: float
    positive: float


class ScoredPost(BaseModel):
    """A validated, enriched and scored post: what the store keeps and ``posts.scored`` carries."""

    id: str
    text: str
    source: str
    created_at: datetime  # event time, UTC; repaired if missing/future (see notes)
    received_at: datetime
    lang: str  # ISO 639-1 (or "und")
    lang_declared: str | None = None
    lang_confidence: float | None = None  # detector confidence when the language was detected
    author: str | None = None
    url: str | None = None
    tickers: list[str] = Field(default_factory=list)
    meta: dict[str, Any] = Field(default_factory=dict)
    label: Literal["negative", "neutral", "positive"]
    scores: Scores
    score: float  # p(positive) - p(negative)
    model_version: str
    scored_at: datetime
    dedup_key: str
    notes: list[str] = Field(default_factory=list)  # every repair made to the raw post


class DeadLetter(BaseModel):
    """A message the scorer refused, with everything needed to replay it once fixed."""

    original_b64: str
    original_preview: str | None = None  # UTF-8 decoding of the first bytes, when it decodes
    key_b64: str | None = None
    topic: str
    partition: int
    offset: int
    stage: Literal["decode", "validate", "score", "store"]
    error: str
    failed_at: datetime = Field(default_factory=utcnow)

    @classmethod
    def build(cls, raw: bytes, *, key: bytes | None, topic: str, partition: int, offset: int,
              stage: str, error: str, preview_chars: int = 500) -> "DeadLetter":
        try:
            preview: str | None = raw[: preview_chars * 4].decode("utf-8")[:preview_chars]
        except UnicodeDecodeError:
            preview = None
        return cls(original_b64=base64.b64encode(raw).decode("ascii"), original_preview=preview,
                   key_b64=base64.b64encode(key).decode("ascii") if key is not None else None,
                   topic=topic, partition=partition, offset=offset, stage=stage, error=error[:2000])

    @property
    def original(self) -> bytes:
        return base64.b64decode(self.original_b64)

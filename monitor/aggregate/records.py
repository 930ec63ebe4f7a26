"""What the aggregator keeps of a scored post: the few fields aggregates depend on, and its series.

A :class:`Contribution` is built the same way from a message on ``posts.scored`` and from a row of
the ``posts`` table, so that live aggregation and backfill see identical inputs (equal tuples).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from monitor.enrich import dedup_parts
from monitor.schemas import ScoredPost
from monitor.store.aggregate_tables import ALL, Series

LABEL_INDEX = {"negative": 0, "neutral": 1, "positive": 2}
SCORE_SCALE = 1_000_000_000  # scores are summed as integers (nano-units): exact in any order
MAX_KEY_CHARS = 300  # aggregate_tables.aggregates.series_key
MAX_LANG_CHARS = 8  # tables.posts.lang
MAX_TICKER_CHARS = 32  # tables.post_tickers.ticker
ROW_COLUMNS = ("id", "created_at", "lang", "source", "tickers", "label", "score", "dedup_key")


PartKey = tuple[str, str, str]  # (series_kind, series_key, lang): one language's share of a series


class Contribution(NamedTuple):
    id: str
    ts: float  # event time, epoch seconds (created_at; naive timestamps taken as UTC)
    lang: str
    combo: str  # language, source and tickers in one string: posts alike share their sums (cached hash)
    parts: tuple[PartKey, ...]  # every series the post counts in, with its language (shared tuples)
    label: int  # LABEL_INDEX
    score_q: int  # round(score * SCORE_SCALE)
    core: str  # language + core hash of the dedup key: copies share it
    head: str  # language + head hash; "" when it cannot differ from the core (short texts)
    truncated: bool
    rank: tuple[float, str]  # (ts, id): earlier posts are a story's original; ids break ties


def _epoch(value: datetime) -> float:
    return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).timestamp()


def series_of(lang: str, source: str, tickers: Sequence[str]) -> tuple[Series, ...]:
    """Every series a post counts in: all, its language, its source, each ticker alone and with the language."""
    unique = list(dict.fromkeys(t[:MAX_TICKER_CHARS] for t in tickers if t))
    return (ALL, ("lang", lang), ("source", source[:MAX_KEY_CHARS]),
            *(("ticker", t) for t in unique), *(("ticker_lang", f"{t}|{lang}") for t in unique))


_PARTS_CACHE: dict[tuple[str, str, tuple[str, ...]], tuple[str, tuple[PartKey, ...]]] = {}


def parts_of(lang: str, source: str, tickers: Sequence[str]) -> tuple[str, tuple[PartKey, ...]]:
    """The combination's key and :func:`series_of` with the language; one shared pair per combination."""
    key = (lang, source, tuple(tickers))
    found = _PARTS_CACHE.get(key)
    if found is None:
        parts = tuple((kind, skey, lang) for kind, skey in series_of(lang, source, tickers))
        found = ("\x1f".join(f"{kind}\x1e{skey}" for kind, skey, _ in parts) + "\x1f" + lang, parts)
        if len(_PARTS_CACHE) > 100_000:  # a memory bound only: equal values work the same
            _PARTS_CACHE.clear()
        _PARTS_CACHE[key] = found
    return found


def contribution(post_id: str, created_at: datetime, lang: str, source: str, tickers: Sequence[str], label: str,
                 score: float, dedup_key: str) -> Contribution:
    lang = (lang or "und")[:MAX_LANG_CHARS]
    key = dedup_parts(dedup_key)
    ts = _epoch(created_at)
    combo, parts = parts_of(lang, source, tickers)
    return Contribution(post_id, ts, lang, combo, parts, LABEL_INDEX[label], round(score * SCORE_SCALE),
                        f"{lang}|{key.core}", "" if key.head == key.core else f"{lang}|{key.head}", key.truncated,
                        (ts, post_id))


class ScoredFields(BaseModel):
    """The fields of a :class:`~monitor.schemas.ScoredPost` the aggregator reads: a message on
    ``posts.scored`` is validated against these only (twice as fast as the whole post; the scorer
    validated the rest, and the store holds it)."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field(min_length=1)
    created_at: datetime
    lang: str
    source: str
    tickers: list[str] = Field(default_factory=list)
    label: Literal["negative", "neutral", "positive"]
    score: float = Field(ge=-1, le=1)
    dedup_key: str


def from_scored(post: ScoredPost | ScoredFields) -> Contribution:
    return contribution(post.id, post.created_at, post.lang, post.source, post.tickers, post.label, post.score,
                        post.dedup_key)


def from_message(value: bytes) -> Contribution:
    """A ``posts.scored`` message; raises ``pydantic.ValidationError`` when it is not one."""
    return from_scored(ScoredFields.model_validate_json(value))


def from_row(row: Mapping[str, Any]) -> Contribution:
    """From a ``posts`` row (the columns in :data:`ROW_COLUMNS`)."""
    return contribution(row["id"], row["created_at"], row["lang"], row["source"], row["tickers"] or [], row["label"],
                        row["score"], row["dedup_key"])

"""Enrichment at ingest: language, tickers and a dedup key for every valid raw post.

Pure functions over a batch (no I/O), so the scorer, backfills and tests share one definition.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field

from monitor.langid import detect, normalise_code
from monitor.schemas import RawPost

_CASHTAG = re.compile(r"(?<![\w$])\$([A-Za-z]{1,6}(?:\.[A-Za-z]{1,2})?)(?![\w])")
_URL = re.compile(r"https?://\S+|www\.\S+")
_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)


@dataclass(frozen=True)
class Enrichment:
    lang: str
    lang_declared: str | None
    lang_confidence: float | None
    tickers: list[str]
    dedup_key: str
    notes: list[str] = field(default_factory=list)


def extract_tickers(text: str, declared: Sequence[str] = ()) -> list[str]:
    """Declared tickers first (upper-cased), then cashtags found in the text, without repeats."""
    found = [t.strip().upper() for t in declared if t.strip()]
    found += [m.group(1).upper() for m in _CASHTAG.finditer(text)]
    return list(dict.fromkeys(found))


def dedup_key(text: str) -> str:
    """Same story, same key: case, accents-as-composed, URLs, punctuation and spacing ignored."""
    norm = unicodedata.normalize("NFKC", text).casefold()
    norm = _NON_WORD.sub(" ", _URL.sub(" ", norm)).strip()
    return hashlib.sha256(norm.encode("utf-8")).hexdigest()[:32]


def enrich(posts: Sequence[RawPost]) -> list[Enrichment]:
    declared = [normalise_code(p.lang) for p in posts]
    to_detect = [i for i, code in enumerate(declared) if code is None]
    detected = dict(zip(to_detect, detect([posts[i].text for i in to_detect])))
    out = []
    for i, post in enumerate(posts):
        notes = []
        if post.lang and declared[i] is None:
            notes.append(f"declared lang {post.lang[:16]!r} is not an ISO 639 code: detected instead")
        if declared[i] is not None:
            lang, confidence = declared[i], None
        else:
            lang, confidence = detected[i].lang, detected[i].confidence
        out.append(Enrichment(lang=lang, lang_declared=post.lang, lang_confidence=confidence,
                              tickers=extract_tickers(post.text, post.tickers), dedup_key=dedup_key(post.text),
                              notes=notes))
    return out

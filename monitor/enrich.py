"""Enrichment at ingest: language, tickers and a dedup key for every valid raw post.

Pure functions over a batch (no I/O beyond reading the alias list once), so the scorer, backfills
and tests share one definition.

Tickers come from four places, in this order and without repeats: tickers the producer declared,
then, by position in the text, cashtags (``$AAPL``, ``$7203.T``), exchange-qualified codes
(``600519.SS``, ``7203.T``, ``SAP.DE``, ``0700.HK``) and company names from the alias list
(``Apple``, ``苹果`` -> ``AAPL``; see ``monitor/data/aliases.yaml`` for the matching rules). Codes the
alias list knows are mapped to its canonical ticker (``$TM`` -> ``7203.T``, ``600519.SH`` ->
``600519.SS``); any other cashtag or code stays as written, upper-cased and without the ``$``.

The dedup key (:func:`dedup_key`) is computed here, per post and without history; deciding which
posts are copies of each other needs the other posts, and happens in the aggregator
(:mod:`monitor.aggregate.dedup`).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict, Field, RootModel, ValidationError

from monitor.errors import UserError
from monitor.langid import detect, normalise_code
from monitor.schemas import RawPost
from monitor.yamldoc import read_yaml

DEFAULT_ALIASES = Path(__file__).with_name("data") / "aliases.yaml"

# Boundaries are Latin/Greek/Cyrillic letters and digits, not \w: Japanese and Chinese write a Latin
# name or code straight before a particle ("SAPが", "$MSFT股价"), and \w would count those as letters.
_LATIN = r"0-9A-Za-z\u00c0-\u024f\u0370-\u03ff\u0400-\u04ff"
_CASHTAG = re.compile(rf"(?<![{_LATIN}$])\$([A-Za-z][A-Za-z0-9]{{0,9}}(?:[.\-][A-Za-z]{{1,3}})?|\d{{3,6}}\.[A-Za-z]{{1,3}})"
                      rf"(?![{_LATIN}])")
# Exchange suffixes whose codes are unambiguous without a "$": numeric codes only where the exchange
# uses them (Shanghai/Shenzhen 6 digits, Tokyo/Taiwan/Saudi 4, Hong Kong 4-5, Korea 6), letter codes
# for European and other exchanges; never inside a URL, an e-mail address or a decimal number.
_EXCHANGE_CODE = re.compile(
    rf"(?<![{_LATIN}$.@/#\-])("
    r"\d{6}\.(?:SS|SZ|SH|KS|KQ)|\d{4,5}\.HK|\d{4}\.(?:T|TW|TWO|SR)"
    r"|[A-Z][A-Z0-9]{0,5}\.(?:DE|F|L|PA|AS|MI|MC|SW|TO|V|AX|BR|LS|ST|OL|CO|HE|VI|IR|SA|MX|NS|BO|NZ|SI|JK|BK|KL|IS|WA)"
    rf")(?![{_LATIN}]|\.[{_LATIN}])")
_UNBOUNDED_SCRIPT = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af\u0e00-\u0e7f]")
_ARABIC = re.compile(r"[\u0600-\u06ff]")
_ADDRESS = re.compile(r"https?://\S+|www\.\S+|\S+@\S+")  # names inside URLs and e-mail addresses do not count
_ARABIC_CLITIC = "[وف]?(?:لل|[بلك]?(?:ال)?)"  # and/so, then by/for/like, then the article: وللأبل


class AliasEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    names: list[str] = Field(default_factory=list)
    codes: list[str] = Field(default_factory=list)


class AliasFile(RootModel[dict[str, AliasEntry]]):
    """``{TICKER: {names: [...], codes: [...]}}``, the format of ``aliases.yaml``."""


def canonical_code(code: str) -> str:
    """One spelling per listing: upper case, no ``$``, Hong Kong codes on 4 digits, Shanghai as ``.SS``."""
    code = code.strip().lstrip("$").upper()
    head, _, suffix = code.rpartition(".")
    if suffix == "HK" and head.isdigit():
        return f"{int(head):04d}.HK"
    if suffix == "SH" and head.isdigit():
        return f"{head}.SS"
    return code


class TickerExtractor:
    """Finds tickers in text; built once from an alias list and reused for every post."""

    def __init__(self, aliases: dict[str, AliasEntry]) -> None:
        self.codes: dict[str, str] = {}
        names: dict[str, str] = {}
        for ticker, entry in aliases.items():
            canonical = canonical_code(ticker)
            for code in [ticker, *entry.codes]:
                self._claim(self.codes, canonical_code(code), canonical, "code")
            for name in entry.names:
                if name.strip():
                    self._claim(names, name.strip(), canonical, "name")
        self.names = names
        bounded, unbounded, arabic = [], [], []
        for name in sorted(names, key=len, reverse=True):
            if _UNBOUNDED_SCRIPT.search(name):
                unbounded.append(re.escape(name))
            elif _ARABIC.search(name):
                arabic.append(re.escape(name))
            else:
                bounded += [re.escape(name)] + ([re.escape(name.upper())] if name.upper() != name else [])
                if name.upper() != name:
                    names.setdefault(name.upper(), names[name])
        parts = []
        if bounded:
            parts.append(rf"(?<![{_LATIN}])(?P<b>{'|'.join(bounded)})(?:'s|’s|s)?(?![{_LATIN}])")
        if arabic:
            parts.append(rf"(?<!\w){_ARABIC_CLITIC}(?P<a>{'|'.join(arabic)})(?!\w)")
        if unbounded:
            parts.append(rf"(?P<u>{'|'.join(unbounded)})")
        self._names = re.compile("|".join(parts)) if parts else None

    @staticmethod
    def _claim(table: dict[str, str], key: str, ticker: str, what: str) -> None:
        if table.get(key, ticker) != ticker:
            raise UserError(f"alias list: {what} {key!r} is given for both {table[key]} and {ticker}; "
                            "keep it under one ticker")
        table[key] = ticker

    @classmethod
    def from_file(cls, path: Path) -> "TickerExtractor":
        data = read_yaml(path, "alias file (MONITOR_AGGREGATOR_ALIASES_FILE)").data or {}
        try:
            parsed = AliasFile.model_validate({str(k): v for k, v in data.items()} if isinstance(data, dict) else data)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            raise UserError(f"alias file {path}: {where}: {err['msg']} (expected TICKER: {{names: [...], "
                            "codes: [...]}})") from None
        return cls(parsed.root)

    def canonical(self, code: str) -> str:
        code = canonical_code(code)
        return self.codes.get(code, code)

    def extract(self, text: str, declared: Sequence[str] = ()) -> list[str]:
        """Declared tickers first, then those found in the text in order of appearance, without repeats."""
        found = [self.canonical(t) for t in declared if t.strip().lstrip("$")]
        text = _ADDRESS.sub(lambda m: " " * len(m.group()), unicodedata.normalize("NFKC", text))
        hits = [(m.start(), self.canonical(m.group(1))) for m in _CASHTAG.finditer(text)]
        hits += [(m.start(), self.canonical(m.group(1))) for m in _EXCHANGE_CODE.finditer(text)]
        if self._names is not None:
            hits += [(m.start(), self.names[m.group(m.lastgroup or 0)]) for m in self._names.finditer(text)]
        found += [ticker for _, ticker in sorted(hits)]
        return list(dict.fromkeys(found))


@lru_cache(maxsize=4)
def ticker_extractor(path: Path | None = None) -> TickerExtractor:
    """The extractor for an alias file (None: the shipped default), built once per process."""
    return TickerExtractor.from_file(path or DEFAULT_ALIASES)


def extract_tickers(text: str, declared: Sequence[str] = ()) -> list[str]:
    """Tickers of one text with the configured alias list (``MONITOR_AGGREGATOR_ALIASES_FILE``)."""
    from monitor.config import get_settings

    return ticker_extractor(get_settings().aggregator.aliases_file).extract(text, declared)


# --- dedup key -------------------------------------------------------------------------------------
#
# Syndicated copies of a story differ in wrapping, not content: a URL, "RT @user:", an outlet name
# after a dash or in brackets, a "BREAKING:" tag, or a cut with an ellipsis. The key is computed on
# the *core* of the text with those removed; a truncated post is also a copy of any post whose core
# starts with the same HEAD_CHARS characters (the full rule: monitor.aggregate.dedup).
# Shingle sketches (SimHash, MinHash) were measured on short headlines and rejected: two copies of
# one story and two template headlines about different companies ("Siemens hebt Prognose an" /
# "SAP hebt Prognose an") are equally similar by Jaccard (about 0.8) and Hamming distance, so no
# threshold separates them; what separates them is containment (one text wrapping or cutting the
# other), which the core + head rule captures, at the cost of a dictionary lookup per post.

HEAD_CHARS = 40
_URL = re.compile(r"https?://\S+|www\.\S+")
_MENTION = re.compile(r"(?<!\w)@\w+:?")
_RETWEET = re.compile(r"^\s*RT\b[\s:]*", re.IGNORECASE)
_FLASH_TAG = re.compile(r"^\s*(?:breaking(?: news)?|just in|update|urgent|flash|eilmeldung|eil|alerte|urgente|"
                        r"última hora|ultima hora|快讯|突发|速報|عاجل)\s*[:：\-–—|]\s*", re.IGNORECASE)
_BRACKET_EDGE = re.compile(r"^\s*[\[(（【][^\d\])）】]{1,40}[\])）】]\s*|\s*[\[(（【][^\d\])）】]{1,40}[\])）】]\s*$")
_ATTRIBUTION = re.compile(r"\s+[-|–—]\s+(?P<who>[^\d|–—]{1,40})$")
_ELLIPSIS = re.compile(r"(?:…|\.\.\.+)\s*$")
_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)


class DedupParts(NamedTuple):
    core: str  # hash of the core text: equal for verbatim and re-wrapped copies
    head: str  # hash of the core's first HEAD_CHARS characters
    truncated: bool  # the post ended in an ellipsis: it may be a cut copy of a longer one


def _looks_like_attribution(who: str) -> bool:
    """An outlet name (``Reuters``, ``dpa-AFX``, ``新浪财经``), not content (``analysts say``): short, and
    with a capital letter, or in a script without case."""
    words = who.split()
    cased = [ch for ch in who if ch.isupper() or ch.islower()]
    return 0 < len(words) <= 3 and "-" not in words and (not cased or any(ch.isupper() for ch in cased))


def _core(text: str) -> tuple[str, bool]:
    text = _MENTION.sub(" ", _URL.sub(" ", unicodedata.normalize("NFKC", text)))
    text = _FLASH_TAG.sub("", _RETWEET.sub("", text)).strip()
    truncated = bool(_ELLIPSIS.search(text))
    text = _ELLIPSIS.sub("", text).strip()
    for _ in range(2):  # an outlet tag at either end, and an attribution after a dash
        text = _BRACKET_EDGE.sub(" ", text).strip()
        match = _ATTRIBUTION.search(text)
        if match and _looks_like_attribution(match.group("who")):
            text = text[: match.start()].strip()
    return _NON_WORD.sub(" ", text.casefold()).strip(), truncated


def _hash(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=8).hexdigest()


def dedup_key(text: str) -> str:
    """33 characters: core hash, head hash, ``t``/``f`` (truncated). Same story, same key.

    Equal keys mean the same core text (case, accents-as-composed, URLs, mentions, punctuation,
    spacing and outlet wrapping ignored); :func:`dedup_parts` splits a key for near-duplicate matching.
    """
    core, truncated = _core(text)
    return f"{_hash(core)}{_hash(core[:HEAD_CHARS])}{'t' if truncated else 'f'}"


def dedup_parts(key: str) -> DedupParts:
    """The parts of a :func:`dedup_key`; a key of another shape counts as its own core (exact matching)."""
    if len(key) == 33 and key[32] in "tf":
        return DedupParts(key[:16], key[16:32], key[32] == "t")
    return DedupParts(key, key, False)


@dataclass(frozen=True)
class Enrichment:
    lang: str
    lang_declared: str | None
    lang_confidence: float | None
    tickers: list[str]
    dedup_key: str
    notes: list[str] = field(default_factory=list)


def enrich(posts: Sequence[RawPost]) -> list[Enrichment]:
    from monitor.config import get_settings

    settings = get_settings()
    extractor = ticker_extractor(settings.aggregator.aliases_file)
    declared = [normalise_code(p.lang) for p in posts]
    to_detect = [i for i, code in enumerate(declared) if code is None]
    compact = settings.scorer.langid == "compact"
    detected = dict(zip(to_detect, detect([posts[i].text for i in to_detect], compact=compact)))
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
                              tickers=extractor.extract(post.text, post.tickers), dedup_key=dedup_key(post.text),
                              notes=notes))
    return out

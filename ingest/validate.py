"""Message bytes -> a :class:`RawPost` fit to score, or the reason it is refused.

Every input has a defined outcome; nothing raises. Refused (dead-lettered by the scorer):

* ``decode``: no value, invalid UTF-8, not JSON (NaN/Infinity included: no database or JSON reader
  downstream accepts them), nesting deeper than ``MAX_DEPTH`` (pydantic refuses to serialise past
  about 250 levels and Python recursion ends near 1000: a deeper post would pass validation and then
  crash the scorer at the produce step, on every restart);
* ``validate``: JSON that is not an object, missing or wrong-typed fields, empty or whitespace-only
  text (the :class:`RawPost` rules).

Accepted with a repair, each recorded in ``notes`` (and so in the store and on ``posts.scored``):

* text longer than ``max_text_chars``: truncated (original length noted);
* NUL characters and lone surrogates (``\\u0000``, ``\\ud800`` in the JSON): PostgreSQL refuses NUL in
  text and no UTF-8 encoder takes a lone surrogate, so one such post would block the store or the
  producer forever; NULs are removed, surrogates become U+FFFD;
* ``created_at`` missing: receive time; without a zone: taken as UTC; more than
  ``max_future_skew_s`` ahead of receive time: clamped to it (original noted);
* ``url`` that is not http(s) (``javascript:``, ``file:``...): dropped, since it ends up as a link
  in dashboards and e-mails;
* ``lang`` that is not a short string: ignored, and the language detected (a malformed string code is
  detected by :func:`monitor.enrich.enrich`, which records it);
* ``meta`` larger than ``MAX_META_BYTES`` serialised: dropped, so that a scored post always fits in a
  Kafka message.

Duplicate ids are not this module's business: the store upserts by id (last write wins).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, ValidationError

from monitor.config import ScorerSettings
from monitor.schemas import MAX_SHORT_FIELD, RawPost

MAX_META_BYTES = 64 * 1024
MAX_DEPTH = 64  # arrays and objects inside each other; real posts nest a few levels
_SURROGATE = re.compile(r"[\ud800-\udfff]")


class ValidationOptions(BaseModel):
    max_text_chars: int = Field(10_000, ge=16)
    max_future_skew_s: float = Field(300.0, ge=0)

    @classmethod
    def from_settings(cls, scorer: ScorerSettings) -> "ValidationOptions":
        return cls(max_text_chars=scorer.max_text_chars, max_future_skew_s=scorer.max_future_skew_s)


@dataclass(frozen=True, slots=True)
class Accepted:
    post: RawPost  # created_at set, UTC
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Rejected:
    stage: Literal["decode", "validate"]
    reason: str


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _clean_str(s: str) -> tuple[str, int]:
    count = s.count("\x00")
    if count:
        s = s.replace("\x00", "")
    s, n = _SURROGATE.subn("\ufffd", s)
    return s, count + n


def _clean(value: Any) -> tuple[Any, int]:
    """Strings anywhere in ``value`` without NUL or lone surrogates, and how many were replaced."""
    if isinstance(value, str):
        return _clean_str(value)
    if isinstance(value, list):
        items = [_clean(v) for v in value]
        return [v for v, _ in items], sum(n for _, n in items)
    if isinstance(value, dict):
        out, total = {}, 0
        for k, v in value.items():
            (k2, n1), (v2, n2) = _clean_str(k), _clean(v)
            out[k2] = v2
            total += n1 + n2
        return out, total
    return value, 0


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether ``value`` nests arrays/objects more than ``limit`` levels (iterative: no recursion limit)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = item.values()
        elif not isinstance(item, list):
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in item)
    return False


def _one_line(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "post"
        parts.append(f"{where}: {err['msg']}")
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def _is_web_link(url: str) -> bool:
    """http(s) with a host; the common case is decided without parsing."""
    head = url[:8].lower()
    if head.startswith("https://") or head.startswith("http://"):
        rest = url[8:] if head.startswith("https://") else url[7:]
        return bool(rest) and rest[0] not in "/?#"
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.netloc)


def _repair_fields(obj: dict[str, Any], message_bytes: int, options: ValidationOptions, notes: list[str]) -> None:
    """Repairs that must happen before the schema sees the object (it would refuse them)."""
    text = obj.get("text")
    if isinstance(text, str) and len(text) > options.max_text_chars:
        obj["text"] = text[: options.max_text_chars]
        notes.append(f"text truncated from {len(text)} to {options.max_text_chars} characters")
    lang = obj.get("lang")
    if lang is not None and not (isinstance(lang, str) and len(lang) <= 64):
        obj["lang"] = None
        notes.append(f"declared lang {str(lang)[:16]!r} is unusable: detected instead")
    url = obj.get("url")
    if isinstance(url, str) and url:
        if not _is_web_link(url):
            obj["url"] = None
            notes.append(f"url {url[:40]!r} dropped: only http(s) links are kept")
        elif len(url) > MAX_SHORT_FIELD:
            obj["url"] = None
            notes.append(f"url of {len(url)} characters dropped (limit {MAX_SHORT_FIELD})")
    meta = obj.get("meta")
    if isinstance(meta, dict) and meta and message_bytes > MAX_META_BYTES:  # a small message has a small meta
        size = len(json.dumps(meta, ensure_ascii=False, default=str).encode("utf-8", "replace"))
        if size > MAX_META_BYTES:
            obj["meta"] = {}
            notes.append(f"meta of {size} bytes dropped (limit {MAX_META_BYTES})")


def _repair_time(post: RawPost, received_at: datetime, options: ValidationOptions, notes: list[str]) -> datetime:
    created = post.created_at
    if created is None:
        notes.append("no created_at: receive time used")
        return received_at
    if created.tzinfo is None or created.utcoffset() is None:
        created = created.replace(tzinfo=timezone.utc)
        notes.append("created_at had no time zone: taken as UTC")
    else:
        created = created.astimezone(timezone.utc)
    if created > received_at + timedelta(seconds=options.max_future_skew_s):
        notes.append(f"created_at {created.isoformat()} is in the future: clamped to receive time")
        return received_at
    return created


def validate_message(value: bytes | None, received_at: datetime, options: ValidationOptions) -> Accepted | Rejected:
    """Never raises: every input is either accepted (repairs noted) or refused with a reason."""
    if value is None:
        return Rejected("decode", "message has no value (tombstone)")
    try:
        text = value.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return Rejected("decode", f"not valid UTF-8 (byte {exc.start}: {value[exc.start:exc.start + 4]!r})")
    try:
        obj = json.loads(text, parse_constant=_no_constants)
    except json.JSONDecodeError as exc:
        return Rejected("decode", f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")
    except ValueError as exc:  # NaN / Infinity
        return Rejected("decode", f"not JSON: {exc}")
    except RecursionError:
        return Rejected("decode", "not JSON this monitor accepts: nested too deeply")
    if len(text) > 2 * MAX_DEPTH and _deeper_than(obj, MAX_DEPTH):  # fewer characters cannot nest that deep
        return Rejected("decode", f"not JSON this monitor accepts: nested more than {MAX_DEPTH} levels deep")
    if not isinstance(obj, dict):
        return Rejected("validate", f"expected a JSON object, got {type(obj).__name__}")
    notes: list[str] = []
    # JSON can spell NUL and lone surrogates only as \u escapes: without one, there is nothing to clean.
    if "\\u" in text:
        obj, replaced = _clean(obj)
        if replaced:
            notes.append(f"{replaced} NUL or invalid characters removed or replaced")
    _repair_fields(obj, len(value), options, notes)
    try:
        post = RawPost.model_validate(obj)
    except ValidationError as exc:
        return Rejected("validate", _one_line(exc))
    created = _repair_time(post, received_at, options, notes)
    if created is not post.created_at:
        post = post.model_copy(update={"created_at": created})
    return Accepted(post, notes)

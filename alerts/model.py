"""The alert records that flow through the concern: an instance a rule finds, and an alert's state.

An *instance* is a rule applied to one series at one evaluation; an *alert* is the persisted state
of that (rule, series) pair across evaluations. Both carry the same fingerprint, so the same series
breaching the same rule again is recognised as the same alert (de-duplication).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

PENDING, FIRING, RESOLVED, INACTIVE = "pending", "firing", "resolved", "inactive"


def fingerprint(rule: str, series_kind: str, series_key: str) -> str:
    return hashlib.sha256(f"{rule}\x00{series_kind}\x00{series_key}".encode()).hexdigest()[:16]


def series_labels(series_kind: str, series_key: str) -> dict[str, str]:
    """The labels a series name implies (``ticker_lang`` ``AAPL|de`` -> ticker AAPL, lang de)."""
    if series_kind == "ticker_lang":
        ticker, _, lang = series_key.rpartition("|")
        return {"ticker": ticker, "lang": lang}
    if series_kind in ("ticker", "lang", "source"):
        return {series_kind: series_key}
    return {}


def describe_series(series_kind: str, series_key: str) -> str:
    if series_kind == "ticker_lang":
        ticker, _, lang = series_key.rpartition("|")
        return f"{ticker} in {lang}"
    return {"all": "all posts", "lang": f"language {series_key}", "source": f"source {series_key}"}.get(
        series_kind, series_key)


@dataclass(frozen=True)
class Instance:
    """One series for which a rule's condition holds at one evaluation."""

    rule: str
    severity: str
    series_kind: str
    series_key: str
    value: float
    threshold: float
    window_start: datetime
    window_end: datetime
    summary: str
    post_ids: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)  # kind-specific facts, e.g. the languages

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.rule, self.series_kind, self.series_key)

    @property
    def labels(self) -> dict[str, str]:
        return {"rule": self.rule, "severity": self.severity, "series_kind": self.series_kind,
                "series_key": self.series_key, **series_labels(self.series_kind, self.series_key)}


@dataclass(frozen=True)
class Alert:
    """The persisted state of one (rule, series) pair; a row of ``alerts``."""

    fingerprint: str
    rule: str
    severity: str
    state: str
    labels: dict[str, str]
    annotations: dict[str, Any]
    receivers: tuple[str, ...]
    value: float
    threshold: float
    series_kind: str
    series_key: str
    window_start: datetime
    window_end: datetime
    post_ids: tuple[str, ...]
    active_since: datetime
    last_true_at: datetime
    evaluated_at: datetime
    fired_at: datetime | None = None
    resolved_at: datetime | None = None

    @property
    def summary(self) -> str:
        return str(self.annotations.get("summary", ""))

    def with_(self, **changes: Any) -> "Alert":
        return replace(self, **changes)

    def to_row(self) -> dict[str, Any]:
        return {"fingerprint": self.fingerprint, "rule": self.rule, "severity": self.severity, "state": self.state,
                "labels": self.labels, "annotations": self.annotations, "receivers": list(self.receivers),
                "value": self.value, "threshold": self.threshold, "series_kind": self.series_kind,
                "series_key": self.series_key, "window_start": self.window_start, "window_end": self.window_end,
                "post_ids": list(self.post_ids), "active_since": self.active_since, "fired_at": self.fired_at,
                "last_true_at": self.last_true_at, "resolved_at": self.resolved_at, "evaluated_at": self.evaluated_at}

    @classmethod
    def from_row(cls, row: Any) -> "Alert":
        m = row._mapping
        return cls(fingerprint=m["fingerprint"], rule=m["rule"], severity=m["severity"], state=m["state"],
                   labels=dict(m["labels"]), annotations=dict(m["annotations"]), receivers=tuple(m["receivers"]),
                   value=m["value"], threshold=m["threshold"], series_kind=m["series_kind"],
                   series_key=m["series_key"], window_start=m["window_start"], window_end=m["window_end"],
                   post_ids=tuple(m["post_ids"]), active_since=m["active_since"], last_true_at=m["last_true_at"],
                   evaluated_at=m["evaluated_at"], fired_at=m["fired_at"], resolved_at=m["resolved_at"])

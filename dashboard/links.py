"""The drill-down link: which posts a point, an anomaly or an alert stands for, as URL query parameters.

Alert e-mails and chart clicks open ``<dashboard_url>/?page=drilldown&series_kind=K&series_key=KEY&start=S&end=E``:

``series_kind`` / ``series_key``
    a series as named in :mod:`monitor.store.aggregate_tables` (``lang``/``de``, ``ticker``/``AAPL``,
    ``ticker_lang``/``7203.T|ja``, ``source``/``reuters``, ``all``/``*``);
``start`` / ``end``
    ISO 8601 times (``2025-01-31T09:00:00Z``; no offset means UTC), the window ``[start, end)``;
``anomaly`` (an anomaly id) or ``alert`` (an alert fingerprint), optional
    restrict to the posts recorded as that anomaly's or alert's evidence.

Bad values are reported on the page; they never fall back silently to "all posts".
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone

from pydantic import BaseModel

SERIES_KINDS = ("all", "lang", "ticker", "ticker_lang", "source")


class SeriesFilter(BaseModel):
    langs: list[str] = []
    ticker: str | None = None
    source: str | None = None


class DrilldownLink(BaseModel):
    series_kind: str = "all"
    series_key: str = "*"
    start: datetime
    end: datetime
    anomaly: int | None = None
    alert: str | None = None


def series_filter(kind: str, key: str) -> SeriesFilter:
    """The post filter equivalent to one aggregate series."""
    if kind == "lang":
        return SeriesFilter(langs=[key])
    if kind == "ticker":
        return SeriesFilter(ticker=key)
    if kind == "ticker_lang":
        ticker, _, lang = key.rpartition("|")
        return SeriesFilter(ticker=ticker or key, langs=[lang] if ticker else [])
    if kind == "source":
        return SeriesFilter(source=key)
    return SeriesFilter()


def iso(t: datetime) -> str:
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def drilldown_params(kind: str, key: str, start: datetime, end: datetime, *, anomaly: int | None = None,
                     alert: str | None = None) -> dict[str, str]:
    params = {"series_kind": kind, "series_key": key, "start": iso(start), "end": iso(end)}
    if anomaly is not None:
        params["anomaly"] = str(anomaly)
    if alert:
        params["alert"] = alert
    return params


def parse_time(value: str) -> datetime:
    """ISO 8601; an unencoded ``+`` in a URL arrives as a space, so a space before the offset is read as ``+``."""
    text = value.strip()
    if "T" in text and " " in text:
        text = text.replace(" ", "+")
    t = datetime.fromisoformat(text)
    return t.replace(tzinfo=timezone.utc) if t.tzinfo is None else t.astimezone(timezone.utc)


def parse_link(params: Mapping[str, str]) -> tuple[DrilldownLink | None, list[str]]:
    """The link in ``params`` (None when it names no window), and one message per bad parameter."""
    if "start" not in params and "end" not in params and "anomaly" not in params and "alert" not in params:
        return None, []
    errors: list[str] = []
    times: dict[str, datetime] = {}
    for name in ("start", "end"):
        if name not in params:
            errors.append(f"'{name}' is missing (ISO 8601 time, e.g. 2025-01-31T09:00:00Z)")
            continue
        try:
            times[name] = parse_time(params[name])
        except ValueError:
            errors.append(f"'{name}' is not an ISO 8601 time (e.g. 2025-01-31T09:00:00Z)")
    kind = params.get("series_kind", "all")
    if kind not in SERIES_KINDS:
        errors.append(f"'series_kind' must be one of {', '.join(SERIES_KINDS)}")
    anomaly = params.get("anomaly")
    if anomaly is not None and not anomaly.isdigit():
        errors.append("'anomaly' must be an anomaly id (a whole number)")
    if len(times) == 2 and times["end"] <= times["start"]:
        errors.append("'end' must be after 'start'")
    if errors:
        return None, errors
    return DrilldownLink(series_kind=kind, series_key=params.get("series_key", "*"), start=times["start"],
                         end=times["end"], anomaly=int(anomaly) if anomaly else None,
                         alert=params.get("alert") or None), []

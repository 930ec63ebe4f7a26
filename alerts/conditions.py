"""One condition per rule kind, behind one interface: which series breach it now, and what to chart.

``instances(rule, queries, now)`` is evaluation; ``chart(rule, alert, queries)`` is the evidence an
e-mail shows (the series the rule watched, around the alert, with its threshold). Both read the
store only through :class:`alerts.queries.StoreQueries`, and only at the instant ``now``: nothing
here looks at the wall clock, so a replay of stored data evaluates exactly as a live run did.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable

from alerts.chart import ChartData
from alerts.durations import format_duration as _minutes
from alerts.model import Alert, Instance, describe_series, series_labels
from alerts.queries import AnomalyRow, StoreQueries
from alerts.rules import AggregateRule, AnomalyRule, LanguagesRule, RiskRule, Rule

CHART_SPAN = timedelta(hours=3)
METRIC_NAMES = {"share_negative": "negative share", "share_positive": "positive share", "mean_score": "mean score",
                "volume": "posts"}


def format_metric(metric: str, value: float) -> str:
    if metric.startswith("share_"):
        return f"{value:.0%}"
    if metric == "mean_score":
        return f"{value:+.2f}"
    return f"{value:.0f}"


def _op(rule: AggregateRule | LanguagesRule) -> str:
    return ">" if rule.above is not None else "<"


def _wants_negative(metric: str, rule: AggregateRule | LanguagesRule) -> bool:
    """Which end of the posts is the evidence: the most negative unless the rule is about a rise."""
    return not (metric == "share_positive" or (metric == "mean_score" and rule.above is not None))


def _aggregate(rule: AggregateRule, q: StoreQueries, now: datetime) -> list[Instance]:
    out = []
    for s in q.trailing(rule.series, rule.window, now):
        if s.n < rule.min_posts or not rule.match.accepts(series_labels(s.series_kind, s.series_key)):
            continue
        value = s.metric(rule.metric)
        if not rule.breached(value):
            continue
        summary = (f"{METRIC_NAMES[rule.metric]} {format_metric(rule.metric, value)} {_op(rule)} "
                   f"{format_metric(rule.metric, rule.threshold)} for {describe_series(s.series_kind, s.series_key)} "
                   f"over {_minutes(rule.window)} ({s.n} posts)")
        ids = q.top_post_ids(s.series_kind, s.series_key, s.start, s.end, _wants_negative(rule.metric, rule))
        out.append(Instance(rule.name, rule.severity, s.series_kind, s.series_key, value, rule.threshold, s.start,
                            s.end, summary, tuple(ids), {"metric": rule.metric, "posts": s.n}))
    return out


def _languages(rule: LanguagesRule, q: StoreQueries, now: datetime) -> list[Instance]:
    by_ticker: dict[str, dict[str, float]] = defaultdict(dict)
    counts: dict[str, int] = defaultdict(int)
    for s in q.trailing("ticker_lang", rule.window, now):
        labels = series_labels(s.series_kind, s.series_key)
        if s.n < rule.min_posts or not rule.match.accepts(labels):
            continue
        value = s.metric(rule.metric)
        if rule.breached(value):
            by_ticker[labels["ticker"]][labels["lang"]] = value
            counts[labels["ticker"]] += s.n
    out = []
    for ticker, langs in sorted(by_ticker.items()):
        if len(langs) < rule.min_languages:
            continue
        names = sorted(langs)
        summary = (f"{ticker}: {METRIC_NAMES[rule.metric]} {_op(rule)} {format_metric(rule.metric, rule.threshold)} "
                   f"in {len(names)} languages ({', '.join(names)}) over {_minutes(rule.window)}, "
                   f"{counts[ticker]} posts")
        ids = q.top_post_ids("ticker", ticker, now - rule.window, now, _wants_negative(rule.metric, rule))
        out.append(Instance(rule.name, rule.severity, "ticker", ticker, float(len(names)), float(rule.min_languages),
                            now - rule.window, now, summary, tuple(ids),
                            {"metric": rule.metric, "languages": {k: round(v, 4) for k, v in sorted(langs.items())},
                             "posts": counts[ticker]}))
    return out


def _risk(rule: RiskRule, q: StoreQueries, now: datetime) -> list[Instance]:
    out = []
    for r in q.risk_latest(rule.window, now):
        if r.risk <= rule.above or not rule.match.accepts({"ticker": r.ticker}):
            continue
        langs = f", negative in {', '.join(r.languages)}" if r.languages else ""
        summary = f"{r.ticker}: risk {r.risk:.0f} > {rule.above:.0f}{langs}"
        ids = q.top_post_ids("ticker", r.ticker, r.window_start, r.window_start + rule.window)
        out.append(Instance(rule.name, rule.severity, "ticker", r.ticker, r.risk, rule.above, r.window_start,
                            r.window_start + rule.window, summary, tuple(ids),
                            {"metric": "risk", "languages": list(r.languages)}))
    return out


def _anomaly(rule: AnomalyRule, q: StoreQueries, now: datetime) -> list[Instance]:
    worst: dict[tuple[str, str], AnomalyRow] = {}
    for a in q.anomalies_active(rule.series, rule.within, now):
        if ((rule.metric and a.metric not in rule.metric) or (rule.detector and a.detector not in rule.detector)
                or (rule.direction and a.direction != rule.direction) or a.volume < rule.min_volume
                or not rule.breached(a.score) or not rule.match.accepts(series_labels(a.series_kind, a.series_key))):
            continue
        key = (a.series_kind, a.series_key)
        best = worst.get(key)
        if best is None or abs(a.score) > abs(best.score):
            worst[key] = a
    out = []
    for a in worst.values():
        summary = (f"{METRIC_NAMES.get(a.metric, a.metric)} anomaly for {describe_series(a.series_kind, a.series_key)}: "
                   f"{format_metric(a.metric, a.observed)} vs baseline {format_metric(a.metric, a.baseline)}, "
                   f"{a.detector} {a.score:+.1f} ({a.volume} posts)")
        out.append(Instance(rule.name, rule.severity, a.series_kind, a.series_key, a.score, rule.threshold,
                            a.window_start, a.window_end, summary, a.post_ids,
                            {"metric": a.metric, "detector": a.detector, "observed": a.observed,
                             "baseline": a.baseline, "window_s": a.window_s}))
    return out


@dataclass(frozen=True)
class _Kind:
    instances: Callable[..., list[Instance]]
    chart: Callable[..., ChartData]


def _chart_trailing(rule: AggregateRule | LanguagesRule, alert: Alert, q: StoreQueries) -> ChartData:
    end = alert.window_end
    points = q.trailing_points(alert.series_kind, alert.series_key, rule.metric, rule.window, end - CHART_SPAN, end)
    return ChartData(f"{METRIC_NAMES[rule.metric]}, {describe_series(alert.series_kind, alert.series_key)}, "
                     f"trailing {_minutes(rule.window)}", points, threshold=rule.threshold,
                     percent=rule.metric.startswith("share_"))


def _chart_risk(rule: RiskRule, alert: Alert, q: StoreQueries) -> ChartData:
    end = alert.window_end
    return ChartData(f"risk, {alert.series_key}", q.risk_points(alert.series_key, rule.window, end - 2 * CHART_SPAN, end),
                     threshold=rule.above)


def _chart_anomaly(rule: AnomalyRule, alert: Alert, q: StoreQueries) -> ChartData:
    metric = str(alert.annotations.get("metric", "mean_score"))
    window_s = int(alert.annotations.get("window_s", q.resolution_s))
    start = alert.window_start - timedelta(seconds=24 * window_s)
    points = q.window_points(alert.series_kind, alert.series_key, metric, window_s, start, alert.window_end)
    return ChartData(f"{METRIC_NAMES.get(metric, metric)}, {describe_series(alert.series_kind, alert.series_key)}, "
                     f"per {_minutes(timedelta(seconds=window_s))}", points,
                     reference=alert.annotations.get("baseline"), percent=metric.startswith("share_"))


KINDS: dict[type, _Kind] = {
    AggregateRule: _Kind(_aggregate, _chart_trailing),
    LanguagesRule: _Kind(_languages, _chart_trailing),
    RiskRule: _Kind(_risk, _chart_risk),
    AnomalyRule: _Kind(_anomaly, _chart_anomaly),
}


def instances(rule: Rule, q: StoreQueries, now: datetime) -> list[Instance]:
    """The series for which ``rule`` holds at ``now``."""
    return KINDS[type(rule)].instances(rule, q, now)


def chart(rule: Rule, alert: Alert, q: StoreQueries) -> ChartData:
    """The series behind ``alert`` around its window, as the rule saw it."""
    return KINDS[type(rule)].chart(rule, alert, q)

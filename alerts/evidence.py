"""The evidence behind an alert, as a notification shows it: a chart, the top posts, a drill-down link.

The link opens the dashboard's drill-down page on the alert's series and window:
``{dashboard_url}/?page=drilldown&series_kind=..&series_key=..&start=..&end=..&alert=FINGERPRINT``
(ISO 8601, UTC; ``alert`` narrows the page to the posts recorded as the alert's evidence).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import urlencode

from alerts import conditions
from alerts.chart import render_png
from alerts.model import Alert
from alerts.queries import StoreQueries
from alerts.rules import RuleSet
from monitor.schemas import ScoredPost

log = logging.getLogger(__name__)


def iso(t: datetime) -> str:
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def drilldown_url(dashboard_url: str, alert: Alert) -> str:
    query = urlencode({"page": "drilldown", "series_kind": alert.series_kind, "series_key": alert.series_key,
                       "start": iso(alert.window_start), "end": iso(alert.window_end), "alert": alert.fingerprint})
    return f"{dashboard_url.rstrip('/')}/?{query}"


@dataclass(frozen=True)
class Evidence:
    alert: Alert
    link: str
    posts: list[ScoredPost]
    chart_png: bytes | None  # None when the rule is gone or the chart could not be drawn


class EvidenceFinder:
    def __init__(self, queries: StoreQueries, ruleset: RuleSet, dashboard_url: str, posts_per_alert: int = 3) -> None:
        self.queries = queries
        self.ruleset = ruleset
        self.dashboard_url = dashboard_url
        self.posts_per_alert = posts_per_alert

    def gather(self, alert: Alert, with_chart: bool = True) -> Evidence:
        link = drilldown_url(self.dashboard_url, alert)
        posts = self.queries.posts(alert.post_ids[: self.posts_per_alert])
        png = None
        rule = self.ruleset.rule(alert.rule)
        if with_chart and rule is not None:
            # A chart is a nicety: a failure to draw one must never hold an alert back.
            try:
                png = render_png(conditions.chart(rule, alert, self.queries))
            except Exception:
                log.exception("could not draw the chart for alert %s; sending it without", alert.rule)
        return Evidence(alert, link, posts, png)

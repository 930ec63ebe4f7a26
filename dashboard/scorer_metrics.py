"""Consumer lag and scorer throughput, read from the scorers' Prometheus endpoints.

The scorers export ``monitor_scorer_lag`` (messages behind the high watermark, per partition) and
the counter ``monitor_scorer_scored``. The dashboard sums them over every endpoint it is given
(``MONITOR_DASHBOARD_METRICS_URLS``, or the local one of ``MONITOR_METRICS_PORT``); throughput is
the counter's rate between two reads. An endpoint that does not answer is named, not guessed at.
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Sequence

from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel

from monitor.config import Settings

LAG = "monitor_scorer_lag"
SCORED = "monitor_scorer_scored"


class Scrape(BaseModel):
    at: float
    scored: float = 0.0
    lag: float | None = None
    failed: list[str] = []


def endpoints(settings: Settings) -> list[str]:
    if settings.dashboard.metrics_urls:
        return list(settings.dashboard.metrics_urls)
    port = settings.metrics_port
    return [f"http://127.0.0.1:{port}/metrics"] if port else []


def scrape(urls: Sequence[str], timeout_s: float = 2.0) -> Scrape:
    out = Scrape(at=time.time())
    for url in urls:
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as resp:
                text = resp.read().decode("utf-8", "replace")
        except (OSError, ValueError) as exc:
            out.failed.append(f"{url}: {getattr(exc, 'reason', exc)}")
            continue
        for family in text_string_to_metric_families(text):
            if family.name == SCORED:
                out.scored += sum(s.value for s in family.samples if s.name == f"{SCORED}_total")
            elif family.name == LAG:
                out.lag = (out.lag or 0.0) + sum(s.value for s in family.samples)
    return out


def per_minute(before: Scrape | None, now: Scrape) -> float | None:
    """The scored counter's rate; None without an earlier read, or across a restart (the counter went down)."""
    if before is None or now.at - before.at < 1.0 or now.scored < before.scored or now.failed or before.failed:
        return None
    return (now.scored - before.scored) / (now.at - before.at) * 60.0

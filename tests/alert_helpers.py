"""Helpers for the alert tests: seed the store as the aggregator would, run real SMTP and HTTP servers.

The aggregator's tables are written directly (one 60 s window per row, as its finest window), so
the alert tests do not depend on the aggregator's detection details; the end-to-end scenario test
(tests/test_alerts_scenario.py) runs the real pipeline instead.
"""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from sqlalchemy import Engine, insert

from alerts.smtp_sink import SmtpSink, list_mail, read_eml
from monitor.schemas import ScoredPost, Scores
from monitor.store.aggregate_tables import aggregates, anomalies, risk_scores
from monitor.store.posts import upsert_posts

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)  # a Monday morning, event time
MIN = timedelta(minutes=1)


def seed_windows(engine: Engine, series_kind: str, series_key: str, start: datetime, minutes: int, *,
                 neg: int = 0, neu: int = 0, pos: int = 0, window_s: int = 60) -> None:
    """``minutes`` consecutive windows of one series with the same counts each."""
    n = neg + neu + pos
    score = (pos - neg) * 0.8
    rows = [{"window_s": window_s, "series_kind": series_kind, "series_key": series_key,
             "window_start": start + i * timedelta(seconds=window_s), "count": n, "unique_count": n,
             "n_negative": neg, "n_neutral": neu, "n_positive": pos, "sum_score": score,
             "mean_score": score / n if n else 0.0, "share_negative": neg / n if n else 0.0,
             "share_positive": pos / n if n else 0.0, "updated_at": start}
            for i in range(minutes)]
    with engine.begin() as conn:
        conn.execute(insert(aggregates), rows)


def seed_anomaly(engine: Engine, series_kind: str, series_key: str, window_start: datetime, score: float, *,
                 window_s: int = 900, metric: str = "mean_score", detector: str = "robust_z",
                 post_ids: list[str] | None = None, volume: int = 40) -> None:
    with engine.begin() as conn:
        conn.execute(insert(anomalies).values(
            series_kind=series_kind, series_key=series_key, window_s=window_s, window_start=window_start,
            window_end=window_start + timedelta(seconds=window_s), metric=metric, detector=detector,
            direction="down" if score < 0 else "up", observed=-0.4, baseline=0.1, spread=0.05, score=score,
            volume=volume, post_ids=post_ids or [], detected_at=window_start))


def seed_risk(engine: Engine, ticker: str, window_start: datetime, risk: float, languages: list[str],
              window_s: int = 900) -> None:
    with engine.begin() as conn:
        conn.execute(insert(risk_scores).values(
            ticker=ticker, window_s=window_s, window_start=window_start, risk=risk, negative_shift=0.4,
            volume_spike=2.0, languages_negative=len(languages), languages=languages, updated_at=window_start))


def seed_posts(engine: Engine, ticker: str, lang: str, at: datetime, texts: list[str], label: str = "negative",
               source: str = "newswire") -> list[str]:
    p_neg = 0.9 if label == "negative" else 0.05
    p_pos = 0.9 if label == "positive" else 0.05
    posts = [ScoredPost(id=f"{ticker}-{lang}-{at:%H%M}-{i}", text=t, source=source, created_at=at + i * timedelta(seconds=5),
                        received_at=at, lang=lang, tickers=[ticker], label=label,
                        scores=Scores(negative=p_neg, neutral=1 - p_neg - p_pos, positive=p_pos), score=p_pos - p_neg,
                        model_version="test", scored_at=at, dedup_key=f"{ticker}{lang}{i}{at:%H%M}")
             for i, t in enumerate(texts)]
    upsert_posts(engine, posts)
    return [p.id for p in posts]


class Mailbox:
    """A real SMTP server on 127.0.0.1 (the alerts package's own sink), readable as parsed messages."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.sink = SmtpSink(folder).start()

    @property
    def port(self) -> int:
        return self.sink.port

    def messages(self):
        return [read_eml(m.path) for m in reversed(list_mail(self.folder))]  # oldest first

    def down(self) -> None:
        self.sink.stop()

    def up(self) -> None:
        self.sink = SmtpSink(self.folder, port=self.sink.port).start()

    def close(self) -> None:
        self.sink.stop()


class WebhookServer:
    """A real HTTP server on 127.0.0.1 that records POSTed JSON and answers with ``status``."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.headers: list[dict] = []
        self.status = 200
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if outer.status == 200:
                    outer.received.append(json.loads(body))
                    outer.headers.append(dict(self.headers))
                self.send_response(outer.status)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def html_part(msg) -> str:
    return msg.get_body(preferencelist=("html",)).get_content()


def text_part(msg) -> str:
    return msg.get_body(preferencelist=("plain",)).get_content()


def make_service(engine: Engine, rules_text: str, smtp_port: int, folder: Path, **settings_overrides):
    """The alert service as ``monitor alerts run`` wires it, on ``engine``, mailing 127.0.0.1:``smtp_port``."""
    from alerts.rules import parse_rules
    from monitor.cli.commands_alerts import build_service
    from monitor.config import SmtpSettings, load_settings

    settings = load_settings()
    if settings_overrides:
        settings = settings.model_copy(update={"alerts": settings.alerts.model_copy(update=settings_overrides)})
    ruleset = parse_rules(rules_text, folder / "rules.yaml")
    smtp = SmtpSettings(host="127.0.0.1", port=smtp_port, timeout_s=5, sender="monitor@example.com")
    service, _ = build_service(settings, engine, ruleset, smtp, None)
    service.start(T0)
    return service


def run_clock(service, start: datetime, end: datetime, step: timedelta = MIN) -> None:
    """Simulated event time: one ``tick`` per ``step`` from ``start`` to ``end`` inclusive."""
    t = start
    while t <= end:
        service.tick(t)
        t += step

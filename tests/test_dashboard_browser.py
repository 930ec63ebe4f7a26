"""The real app in a real browser: `monitor dashboard`'s server on 127.0.0.1, headless Chromium."""

from __future__ import annotations

import os
import socket
import subprocess

import pytest

from dashboard import server, synthetic
from dashboard.devtools import APP_IDLE, Chromium, find_chromium
from monitor.config import load_settings
from monitor.store.db import open_store

pytestmark = pytest.mark.browser


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


FIRING_VALUE = """[...document.querySelectorAll('[data-testid="stMetric"]')]
  .filter(m => m.innerText.includes('Firing alerts'))
  .map(m => m.querySelector('[data-testid="stMetricValue"]').innerText)[0]"""


def _fire_another_alert(url: str) -> None:
    from sqlalchemy import insert

    from monitor.schemas import utcnow
    from monitor.store.alert_tables import alerts

    now = utcnow()
    engine = open_store(url)
    with engine.begin() as conn:
        conn.execute(insert(alerts).values(
            fingerprint="c" * 16, rule="source_negative", severity="warning", state="firing", labels={}, annotations={},
            receivers=[], value=-0.5, threshold=-0.3, series_kind="source", series_key="reuters", window_start=now,
            window_end=now, post_ids=[], active_since=now, fired_at=now, last_true_at=now, evaluated_at=now))
    engine.dispose()


@pytest.fixture
def running_app(tmp_path, monkeypatch):
    if not find_chromium():
        pytest.skip("headless Chromium not installed (apt-get install chromium)")
    url = f"sqlite:///{tmp_path / 'store.db'}"
    engine = open_store(url)
    synthetic.seed_store(engine, n_posts=3000, hostile=True)
    engine.dispose()
    monkeypatch.setenv("MONITOR_DATABASE_URL", url)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    with open(tmp_path / "server.log", "wb") as log:
        proc = server.start(load_settings(), port=port, stdout=log, stderr=subprocess.STDOUT)
        try:
            server.wait_healthy(proc, base)
            yield base
        finally:
            proc.terminate()
            proc.wait(timeout=20)


def test_overview_renders_every_language_without_exception(running_app, tmp_path):
    with Chromium() as browser:
        browser.goto(running_app)
        browser.wait_for(f"document.querySelectorAll('.js-plotly-plot .legendtext').length > 0 && {APP_IDLE}",
                         timeout_s=120, settle_s=0.5)
        legend = set(browser.evaluate("[...document.querySelectorAll('.legendtext')].map(e => e.textContent)"))
        exceptions = browser.evaluate("document.querySelectorAll('[data-testid=\"stException\"]').length")
        text = browser.evaluate("document.body.innerText")
        shot = browser.screenshot(tmp_path / "overview.png")
        assert browser.evaluate(FIRING_VALUE) == "1"
        browser.evaluate("window.__same_page = true")
        _fire_another_alert(os.environ["MONITOR_DATABASE_URL"])
        browser.wait_for(f"({FIRING_VALUE}) === '2'", timeout_s=120)  # the live fragment refreshed by itself
        assert browser.evaluate("window.__same_page === true")
    assert set(synthetic.LANGS) | {"anomaly"} <= legend
    assert exceptions == 0 and "Traceback" not in text
    assert "Firing alerts" in text and synthetic.SPIKE_TICKER in text
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000


def test_drilldown_link_from_an_email_shows_posts_as_plain_text(running_app):
    from datetime import datetime, timedelta, timezone
    from urllib.parse import urlencode

    end = datetime.now(timezone.utc) + timedelta(minutes=2)
    query = urlencode({"page": "drilldown", "series_kind": "all", "series_key": "*",
                       "start": (end - timedelta(hours=26)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                       "end": end.strftime("%Y-%m-%dT%H:%M:%SZ")})
    with Chromium() as browser:
        browser.goto(f"{running_app}/?{query}")
        browser.wait_for(f"!!document.querySelector('[data-testid=\"stDataFrame\"]') && {APP_IDLE}",
                         timeout_s=120, settle_s=0.5)
        heading = browser.evaluate("document.querySelector('h1')?.textContent")
        injected = browser.evaluate("document.querySelectorAll('a[href^=\"javascript\"], img[src*=\"evil.invalid\"]').length")
        exceptions = browser.evaluate("document.querySelectorAll('[data-testid=\"stException\"]').length")
    assert heading == "Drill-down"
    assert exceptions == 0 and injected == 0

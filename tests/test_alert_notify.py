"""Notifications end to end on a real SMTP server and a real HTTP server, in simulated event time.

The store is seeded as the aggregator would write it; the service runs minute by minute over
simulated hours (``service.tick(now)``), exactly as the scheduler drives it live.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from alerts.outbox import outbox_rows
from alerts.silences import create_silence, parse_matcher
from monitor.store.alert_tables import alert_groups, alerts, notifications
from monitor.store.db import open_store
from tests.alert_helpers import (MIN, T0, Mailbox, WebhookServer, html_part, make_service, run_clock, seed_posts,
                                 seed_windows, text_part)

LANGS = ("de", "fr", "ja")

RULES = """\
route:
  group_by: [ticker]
  group_wait: 1m
  group_interval: 5m
  repeat_interval: {repeat}
receivers:
  desk:
    email: [desk@example.com]
rules:
  - name: neg-share
    kind: aggregate
    series: ticker_lang
    metric: share_negative
    above: 0.5
    window: 15m
    min_posts: 8
    severity: critical
    receivers: [desk]
"""


def rules(repeat: str = "12h") -> str:
    return RULES.format(repeat=repeat)


def seed_burst(engine, start=T0, steady=60, burst=10, after=60, ticker="AAPL", langs=LANGS) -> None:
    """Steady neutral traffic in four languages, then a negative burst in three of them, then calm."""
    for lang in (*langs, "en"):
        key = f"{ticker}|{lang}"
        seed_windows(engine, "ticker_lang", key, start, steady, neu=4)
        seed_windows(engine, "ticker_lang", key, start + steady * MIN, burst, **({"neg": 4} if lang != "en" else {"neu": 4}))
        seed_windows(engine, "ticker_lang", key, start + (steady + burst) * MIN, after, neu=4)


@pytest.fixture
def mailbox(tmp_path):
    box = Mailbox(tmp_path / "mail")
    yield box
    box.close()


@pytest.fixture
def store(store_url):
    engine = open_store(store_url)
    yield engine
    engine.dispose()


def _kinds(mailbox) -> list[str]:
    return [re.match(r"\[(\w+)", m["Subject"]).group(1) for m in mailbox.messages()]


def test_a_multilingual_burst_is_one_email_then_one_resolved_notice(store, mailbox, tmp_path):
    seed_burst(store)
    ids = seed_posts(store, "AAPL", "de", T0 + 61 * MIN, ["Apple senkt die Prognose", "Sammelklage gegen Apple"])
    service = make_service(store, rules(), mailbox.port, tmp_path)
    run_clock(service, T0, T0 + 59 * MIN)
    assert mailbox.messages() == []  # steady traffic: nothing

    run_clock(service, T0 + 60 * MIN, T0 + 130 * MIN)
    msgs = mailbox.messages()
    assert _kinds(mailbox) == ["FIRING", "RESOLVED"]
    firing, resolved = msgs
    assert firing["Subject"].startswith("[FIRING:3] CRITICAL AAPL: negative share")
    assert firing["To"] == "desk@example.com" and firing["From"] == "monitor@example.com"
    text = text_part(firing)
    for lang in LANGS:
        assert f"AAPL in {lang}" in text
    assert "AAPL in en" not in text
    body = html_part(firing)
    assert "Apple senkt die Prognose" in body  # the top posts behind it
    assert "page=drilldown&amp;series_kind=ticker_lang&amp;series_key=AAPL%7Cde&amp;start=" in body
    images = [p for p in firing.walk() if p.get_content_type() == "image/png"]
    assert len(images) == 3 and all(p.get_content()[:8] == b"\x89PNG\r\n\x1a\n" for p in images)
    assert all(f'cid:{p["Content-ID"].strip("<>")}' in body for p in images)
    assert resolved["Subject"].startswith("[RESOLVED:3] AAPL:")
    assert ids  # posts were stored for the evidence
    with store.connect() as conn:
        assert conn.execute(select(alerts.c.state)).scalars().all() == ["resolved"] * 3
        assert conn.execute(select(alert_groups)).all() == []  # the group is done
        assert {r.status for r in conn.execute(select(notifications))} == {"sent"}


def test_a_restart_neither_resends_nor_forgets(store, mailbox, tmp_path):
    seed_burst(store)
    first = make_service(store, rules(), mailbox.port, tmp_path)
    run_clock(first, T0 + 55 * MIN, T0 + 72 * MIN)
    assert _kinds(mailbox) == ["FIRING"]
    del first

    second = make_service(store, rules(), mailbox.port, tmp_path)  # same store, new everything else
    with store.connect() as conn:
        assert conn.execute(select(alerts.c.state)).scalars().all() == ["firing"] * 3
    run_clock(second, T0 + 72 * MIN, T0 + 130 * MIN)
    assert _kinds(mailbox) == ["FIRING", "RESOLVED"]


@pytest.mark.faults
def test_smtp_outage_then_recovery_delivers_the_delayed_email(store, mailbox, tmp_path):
    seed_burst(store)
    service = make_service(store, rules(), mailbox.port, tmp_path)
    run_clock(service, T0 + 55 * MIN, T0 + 64 * MIN)
    mailbox.down()
    run_clock(service, T0 + 65 * MIN, T0 + 100 * MIN)  # the burst fires and resolves while the server is down
    rows = outbox_rows(store)
    assert {r["status"] for r in rows} == {"pending"} and len(rows) == 2
    assert max(r["attempts"] for r in rows) >= 3 and "unreachable" in rows[-1]["last_error"]

    mailbox.up()
    run_clock(service, T0 + 101 * MIN, T0 + 110 * MIN)
    assert _kinds(mailbox) == ["FIRING", "RESOLVED"]  # in order, once each
    assert {r["status"] for r in outbox_rows(store)} == {"sent"}


@pytest.mark.faults
def test_outage_survives_a_restart(mailbox, tmp_path):
    engine = open_store(f"sqlite:///{tmp_path / 's.db'}")
    seed_burst(engine)
    mailbox.down()
    run_clock(make_service(engine, rules(), mailbox.port, tmp_path), T0 + 55 * MIN, T0 + 75 * MIN)
    mailbox.up()
    run_clock(make_service(engine, rules(), mailbox.port, tmp_path), T0 + 76 * MIN, T0 + 78 * MIN)
    assert _kinds(mailbox) == ["FIRING"]


def test_silence_mutes_and_its_expiry_lets_a_still_firing_alert_through(mailbox, tmp_path):
    engine = open_store(f"sqlite:///{tmp_path / 's.db'}")
    seed_burst(engine, burst=40, after=30)
    service = make_service(engine, rules(), mailbox.port, tmp_path)
    silence = create_silence(engine, [parse_matcher("ticker=AAPL"), parse_matcher("lang=~de|fr|ja")],
                             duration=timedelta(minutes=25), now=T0 + 60 * MIN, created_by="test", comment="earnings")
    run_clock(service, T0 + 55 * MIN, T0 + 84 * MIN)
    assert mailbox.messages() == []  # muted
    run_clock(service, T0 + 85 * MIN, T0 + 130 * MIN)
    firing, resolved = mailbox.messages()
    assert firing["Subject"].startswith("[FIRING:3]") and resolved["Subject"].startswith("[RESOLVED:3]")
    # Fired at 68; flushes at 69, 74, 79, 84 fall inside the silence (until 85); the one at 89 does not.
    assert silence.ends_at == T0 + 85 * MIN and firing["Date"].datetime == T0 + 89 * MIN


def test_repeat_interval_resends_a_group_that_keeps_firing(mailbox, tmp_path):
    engine = open_store(f"sqlite:///{tmp_path / 's.db'}")
    seed_burst(engine, burst=100, after=30)
    service = make_service(engine, rules(repeat="1h"), mailbox.port, tmp_path)
    run_clock(service, T0 + 55 * MIN, T0 + 190 * MIN)
    assert _kinds(mailbox) == ["FIRING", "FIRING", "RESOLVED"]
    first, again, _ = mailbox.messages()
    assert first["Subject"].startswith("[FIRING:3]") and again["Subject"].startswith("[FIRING:3]")
    assert again["Date"].datetime - first["Date"].datetime >= timedelta(hours=1)
    assert again["Message-ID"] != first["Message-ID"]


def test_a_new_language_joining_a_notified_group_waits_for_group_interval(mailbox, tmp_path):
    engine = open_store(f"sqlite:///{tmp_path / 's.db'}")
    seed_burst(engine, langs=("de",), burst=30)
    seed_windows(engine, "ticker_lang", "AAPL|pt", T0 + 40 * MIN, 20, neu=4)
    seed_windows(engine, "ticker_lang", "AAPL|pt", T0 + 60 * MIN + 10 * MIN, 20, neg=4)
    service = make_service(engine, rules(), mailbox.port, tmp_path)
    run_clock(service, T0 + 55 * MIN, T0 + 100 * MIN)
    subjects = [m["Subject"] for m in mailbox.messages()]
    assert subjects[0].startswith("[FIRING:1]") and "AAPL in de" in subjects[0]
    assert subjects[1].startswith("[FIRING:2]")  # pt joined: one update, not one e-mail per alert


def test_header_injection_and_html_in_posts_are_neutralised(mailbox, tmp_path):
    engine = open_store(f"sqlite:///{tmp_path / 's.db'}")
    evil = "EVIL\r\nBcc: victim@example.org"
    seed_windows(engine, "ticker_lang", f"{evil}|de", T0, 15, neg=4)
    seed_posts(engine, evil, "de", T0 + MIN, ['<script>alert("x")</script> & <img src=x onerror=steal()>'])
    service = make_service(engine, rules(), mailbox.port, tmp_path)
    run_clock(service, T0 + 15 * MIN, T0 + 17 * MIN)
    [msg] = mailbox.messages()
    assert msg.get_all("Bcc") is None and msg["To"] == "desk@example.com"
    assert "\r" not in msg["Subject"] and "\n" not in msg["Subject"] and "EVIL Bcc: victim@example.org" in msg["Subject"]
    raw = msg.as_string()
    assert not re.search(r"^Bcc:", raw, flags=re.M)
    body = html_part(msg)
    assert "<script>" not in body and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;img" in body
    assert "<img src=x" not in body


def test_webhooks_json_and_slack_with_retry_and_permanent_failure(mailbox, tmp_path, monkeypatch):
    hook, slack = WebhookServer(), WebhookServer()
    try:
        monkeypatch.setenv("ALERT_TEST_SLACK_URL", slack.url)
        monkeypatch.setenv("ALERT_TEST_TOKEN", "Bearer s3cret")
        text = rules().replace("    email: [desk@example.com]\n", f"""    webhooks:
      - url: {hook.url}
        headers_env: {{Authorization: ALERT_TEST_TOKEN}}
      - url_env: ALERT_TEST_SLACK_URL
        format: slack
""")
        engine = open_store(f"sqlite:///{tmp_path / 's.db'}")
        seed_burst(engine)
        service = make_service(engine, text, mailbox.port, tmp_path)
        hook.status = 503  # down at first: retried
        run_clock(service, T0 + 55 * MIN, T0 + 72 * MIN)
        assert hook.received == [] and len(slack.received) == 1
        hook.status = 200
        run_clock(service, T0 + 73 * MIN, T0 + 100 * MIN)
        firing, resolved = hook.received
        assert firing["status"] == "firing" and firing["groupLabels"] == {"ticker": "AAPL"}
        assert sorted(a["labels"]["lang"] for a in firing["alerts"]) == list(LANGS)
        assert all("page=drilldown" in a["dashboardURL"] for a in firing["alerts"])
        assert firing["commonLabels"]["ticker"] == "AAPL" and "lang" not in firing["commonLabels"]
        assert resolved["status"] == "resolved" and all(a["endsAt"] for a in resolved["alerts"])
        assert hook.headers[0]["Authorization"] == "Bearer s3cret"
        assert slack.received[0]["text"].startswith("[FIRING:3]") and slack.received[0]["blocks"]
        with engine.connect() as conn:  # the secret URL is not in the store
            targets = conn.execute(select(notifications.c.target)).scalars().all()
        assert "env:ALERT_TEST_SLACK_URL" in targets and slack.url not in targets

        hook.status = 404  # a wrong URL: given up, with the reason kept
        seed_burst(engine, start=T0 + 200 * MIN, ticker="MSFT")
        run_clock(service, T0 + 255 * MIN, T0 + 275 * MIN)
        failed = [r for r in outbox_rows(engine) if r["status"] == "failed"]
        assert len(failed) == 1 and "HTTP 404" in failed[0]["last_error"] and failed[0]["attempts"] == 1
    finally:
        hook.close()
        slack.close()


def test_daily_digest_once_per_address_and_day(mailbox, tmp_path):
    engine = open_store(f"sqlite:///{tmp_path / 's.db'}")
    seed_burst(engine)
    service = make_service(engine, rules(), mailbox.port, tmp_path)
    run_clock(service, T0 + 55 * MIN, T0 + 100 * MIN)
    assert _kinds(mailbox) == ["FIRING", "RESOLVED"]
    service.digest(T0 + 10 * 60 * MIN)
    service.digest(T0 + 11 * 60 * MIN)  # same day: no second digest
    digests = [m for m in mailbox.messages() if m["Subject"].startswith("[DIGEST]")]
    assert len(digests) == 1
    assert digests[0]["Subject"] == "[DIGEST] 3 alerts fired in the last 24h, 0 firing now"
    assert "neg-share: 3 times (AAPL|de, AAPL|fr, AAPL|ja)" in text_part(digests[0])
    service.digest(T0 + 24 * 60 * MIN)
    assert len([m for m in mailbox.messages() if m["Subject"].startswith("[DIGEST]")]) == 2

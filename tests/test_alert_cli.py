"""``monitor alerts ...``: dry run, listing, silences, the sink's mail, and the live schedule."""

from __future__ import annotations

import json
import time
from datetime import datetime

import pytest

from monitor.cli import main
from monitor.config import load_settings
from monitor.store.db import open_store
from tests.alert_helpers import MIN, T0, Mailbox, make_service, run_clock, seed_posts, seed_windows
from tests.test_alert_notify import rules, seed_burst


@pytest.fixture
def db(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("MONITOR_DATABASE_URL", url)
    engine = open_store(url)
    yield engine
    engine.dispose()


def test_test_rule_replays_stored_data_without_touching_state(db, tmp_path, capsys):
    seed_burst(db)
    path = tmp_path / "rules.yaml"
    path.write_text(rules(), encoding="utf-8")
    assert main(["alerts", "test-rule", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{path}: 1 rules valid; replayed 2026-03-02 09:00 .. 2026-03-02 11:10 UTC")
    fired = [line for line in out[1:] if "neg-share" in line]
    assert len(fired) == 3 and all(line.startswith("03-02 10:08  resolved 03-02 10:18") for line in fired)
    assert main(["alerts", "test-rule", str(path), "--json"]) == 0
    episodes = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sorted(e["series_key"] for e in episodes) == ["AAPL|de", "AAPL|fr", "AAPL|ja"]
    assert main(["alerts", "list", "--state", "all"]) == 0
    assert capsys.readouterr().out.strip() == "no alerts"  # a dry run changes nothing


def test_a_bad_rules_file_is_one_line_per_problem_with_the_line(db, tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(rules().replace("above: 0.5", "above: lots"), encoding="utf-8")
    assert main(["alerts", "test-rule", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"monitor alerts: error: {path} line 14: rules[0].above (rule 'neg-share'): "
                   "Input should be a valid number, unable to parse string as a number")


def test_list_outbox_history_and_mail(db, tmp_path, capsys):
    seed_burst(db)
    box = Mailbox(load_settings().data_dir / "mail")
    try:
        run_clock(make_service(db, rules(), box.port, tmp_path), T0 + 55 * MIN, T0 + 72 * MIN)
    finally:
        box.close()
    assert main(["alerts", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["state", "severity", "rule", "since", "summary"] and len(lines) == 4
    assert all(line.split()[:3] == ["firing", "critical", "neg-share"] for line in lines[1:]), lines
    assert main(["alerts", "list", "--outbox", "--json"]) == 0
    [row] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert (row["status"], row["channel"], row["target"], row["kind"]) == ("sent", "email", "desk@example.com", "firing")
    assert main(["alerts", "list", "--history", "3650d", "--json"]) == 0
    states = [json.loads(line)["state"] for line in capsys.readouterr().out.splitlines()]
    assert states.count("firing") == 3
    assert main(["alerts", "mail"]) == 0
    out = capsys.readouterr().out
    assert "desk@example.com" in out and "[FIRING:3]" in out


def test_silence_add_list_expire(db, capsys):
    assert main(["alerts", "silence", "add", "ticker=AAPL", "lang=~de|fr", "--for", "2h", "--comment", "earnings",
                 "--by", "ana"]) == 0
    silence_id = capsys.readouterr().out.split()[1]
    assert main(["alerts", "silence", "list", "--json"]) == 0
    [row] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert (row["id"], row["matchers"], row["state"], row["created_by"]) == (silence_id, "ticker=AAPL lang=~de|fr",
                                                                             "active", "ana")
    assert main(["alerts", "silence", "expire", silence_id[:8]]) == 0
    capsys.readouterr()
    assert main(["alerts", "silence", "list"]) == 0
    assert capsys.readouterr().out.strip() == "no silences"
    assert main(["alerts", "silence", "expire", silence_id]) == 2
    assert "no active silence" in capsys.readouterr().err
    assert main(["alerts", "silence", "add", "ticker", "--for", "1h", "--comment", "x"]) == 2
    assert "is not a matcher" in capsys.readouterr().err
    assert main(["alerts", "silence", "add", "lang=~(", "--for", "1h", "--comment", "x"]) == 2
    assert "is not a regular expression" in capsys.readouterr().err


def test_the_live_schedule_evaluates_notifies_and_stops(db, tmp_path, monkeypatch):
    """APScheduler with an injected clock running 60x (a simulated minute per real second); no SMTP
    server configured, so the local sink receives the e-mail."""
    from monitor.cli.commands_alerts import start_alerts

    seed_burst(db, start=T0, steady=60, burst=30)
    path = tmp_path / "rules.yaml"
    path.write_text(rules().replace("    receivers: [desk]\n", "    receivers: [desk]\n    interval: 1s\n"),
                    encoding="utf-8")
    monkeypatch.setenv("MONITOR_ALERTS_TICK_S", "0.2")
    real_start = time.monotonic()

    def clock() -> datetime:
        return T0 + 65 * MIN + (time.monotonic() - real_start) * 60 * (MIN / 60)

    settings = load_settings()
    runtime = start_alerts(settings, rules=path, clock=clock)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not list((settings.data_dir / "mail").glob("*.eml")):
            time.sleep(0.2)
    finally:
        runtime.stop()
    from alerts.smtp_sink import list_mail

    [mail] = list_mail(settings.data_dir / "mail")
    assert mail.subject.startswith("[FIRING:3] CRITICAL AAPL") and mail.to == "desk@example.com"
    assert T0 + 65 * MIN < mail.message()["Date"].datetime < T0 + 120 * MIN  # the injected clock, not the wall's


def test_inhibit_mutes_warnings_while_a_critical_fires_for_the_same_ticker(db, tmp_path):
    for lang in ("de", "fr", "ja"):
        seed_windows(db, "ticker_lang", f"AAPL|{lang}", T0, 15, neg=4)
    seed_windows(db, "ticker_lang", "MSFT|de", T0, 15, neg=4)
    seed_posts(db, "AAPL", "de", T0, ["Apple recall"])
    text = """\
route: {group_by: [ticker], group_wait: 1m}
receivers:
  desk: {email: [desk@example.com]}
defaults: {receivers: [desk]}
rules:
  - {name: per-language, kind: aggregate, above: 0.5, severity: warning}
  - {name: multilingual, kind: languages, above: 0.5, min_languages: 3, severity: critical}
inhibit:
  - {source: {severity: critical}, target: {severity: warning}, equal: [ticker]}
"""
    box = Mailbox(tmp_path / "mail")
    try:
        run_clock(make_service(db, text, box.port, tmp_path), T0 + 15 * MIN, T0 + 17 * MIN)
        subjects = sorted(m["Subject"] for m in box.messages())
    finally:
        box.close()
    assert len(subjects) == 2
    assert subjects[0].startswith("[FIRING:1] CRITICAL AAPL: AAPL: negative share > 50% in 3 languages (de, fr, ja)")
    assert subjects[1].startswith("[FIRING:1] WARNING MSFT:")  # not inhibited: no critical for MSFT

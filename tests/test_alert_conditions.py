"""Rule conditions on stored aggregates, anomalies and risk scores (SQLite and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import pytest

from alerts import conditions
from alerts.dryrun import replay
from alerts.queries import StoreQueries
from alerts.rules import parse_rules
from monitor.store.db import open_store
from tests.alert_helpers import MIN, T0, seed_anomaly, seed_posts, seed_risk, seed_windows

HEAD = "receivers:\n  d:\n    email: [d@example.com]\ndefaults:\n  receivers: [d]\nrules:\n"


def _rules(body: str):
    return parse_rules(HEAD + body, Path("r.yaml"))


@pytest.fixture
def store(store_url):
    engine = open_store(store_url)
    yield engine
    engine.dispose()


def _keys(rule, q, now):
    return sorted(i.series_key for i in conditions.instances(rule, q, now))


def test_negative_share_over_a_trailing_window_with_enough_posts(store):
    seed_windows(store, "ticker_lang", "AAPL|de", T0, 15, neg=3, neu=1)   # 75 % of 60 posts
    seed_windows(store, "ticker_lang", "AAPL|en", T0, 15, neg=1, neu=3)   # 25 %
    seed_windows(store, "ticker_lang", "MSFT|de", T0, 15, neg=1)          # 100 % but 15 posts
    ids = seed_posts(store, "AAPL", "de", T0 + 3 * MIN, ["Gewinnwarnung", "Klage eingereicht"])
    rule = _rules("  - {name: neg, kind: aggregate, series: ticker_lang, above: 0.6, window: 15m, min_posts: 20}\n").rules[0]
    q = StoreQueries(store, 60)
    [inst] = conditions.instances(rule, q, T0 + 15 * MIN)
    assert (inst.series_key, round(inst.value, 2), inst.labels["ticker"], inst.labels["lang"]) == ("AAPL|de", 0.75, "AAPL", "de")
    assert "75% > 60%" in inst.summary and "AAPL in de" in inst.summary and "60 posts" in inst.summary
    assert set(inst.post_ids) == set(ids)
    # Seven minutes later the trailing window holds 8 of the 15 minutes: 32 posts, still enough.
    assert _keys(rule, q, T0 + 22 * MIN) == ["AAPL|de"]
    # A window later nothing of the burst is inside it.
    assert _keys(rule, q, T0 + 30 * MIN) == []


def test_scope_by_ticker_pattern_and_language(store):
    for key in ("AAPL|de", "AAPL|fr", "7203.T|ja"):
        seed_windows(store, "ticker_lang", key, T0, 15, neg=4)
    q = StoreQueries(store, 60)
    rules = _rules("  - {name: a, kind: aggregate, above: 0.5, match: {ticker: ['7203.*']}}\n"
                   "  - {name: b, kind: aggregate, above: 0.5, match: {lang: [FR]}}\n").rules
    assert _keys(rules[0], q, T0 + 15 * MIN) == ["7203.T|ja"]
    assert _keys(rules[1], q, T0 + 15 * MIN) == ["AAPL|fr"]


def test_same_ticker_negative_in_k_languages(store):
    for lang in ("de", "fr", "ja"):
        seed_windows(store, "ticker_lang", f"AAPL|{lang}", T0, 15, neg=3, pos=1)
    seed_windows(store, "ticker_lang", "AAPL|en", T0, 15, neg=1, pos=3)
    seed_windows(store, "ticker_lang", "MSFT|de", T0, 15, neg=3)
    seed_windows(store, "ticker_lang", "MSFT|fr", T0, 15, neg=3)
    rule = _rules("  - {name: ml, kind: languages, above: 0.5, min_languages: 3, min_posts: 10}\n").rules[0]
    [inst] = conditions.instances(rule, StoreQueries(store, 60), T0 + 15 * MIN)
    assert inst.series_kind == "ticker" and inst.series_key == "AAPL"
    assert sorted(inst.extra["languages"]) == ["de", "fr", "ja"] and inst.value == 3
    assert "in 3 languages (de, fr, ja)" in inst.summary


def test_robust_z_anomaly_below_minus_three(store):
    seed_anomaly(store, "lang", "de", T0, -4.2, post_ids=["p1", "p2"])
    seed_anomaly(store, "lang", "fr", T0, -2.0)
    seed_anomaly(store, "ticker", "AAPL", T0, -6.0)
    rule = _rules("  - {name: z, kind: anomaly, series: [lang], detector: [robust_z], score_below: -3, within: 15m}\n").rules[0]
    q = StoreQueries(store, 60)
    [inst] = conditions.instances(rule, q, T0 + 20 * MIN)
    assert (inst.series_key, inst.value, inst.post_ids) == ("de", -4.2, ("p1", "p2"))
    assert _keys(rule, q, T0 + 10 * MIN) == []     # not before its window has ended (and been scored)
    assert _keys(rule, q, T0 + 30 * MIN) == []     # nor once `within` has passed after it ended


def test_risk_score_above_a_level(store):
    seed_risk(store, "AAPL", T0, 82.0, ["de", "fr"])
    seed_risk(store, "MSFT", T0, 40.0, [])
    rule = _rules("  - {name: risk, kind: risk, above: 75}\n").rules[0]
    q = StoreQueries(store, 60)
    [inst] = conditions.instances(rule, q, T0 + 16 * MIN)
    assert inst.series_key == "AAPL" and inst.value == 82.0 and "negative in de, fr" in inst.summary
    assert _keys(rule, q, T0 + 14 * MIN) == []  # its window has not ended yet
    assert _keys(rule, q, T0 + 31 * MIN) == []  # a window later, an old score no longer counts


def test_dry_run_reports_when_alerts_would_fire_and_resolve(store):
    seed_windows(store, "ticker_lang", "AAPL|de", T0, 60, neg=0, neu=4)
    seed_windows(store, "ticker_lang", "AAPL|de", T0 + 60 * MIN, 10, neg=4)
    seed_windows(store, "ticker_lang", "AAPL|de", T0 + 70 * MIN, 60, neg=0, neu=4)
    ruleset = _rules("  - {name: neg, kind: aggregate, above: 0.5, window: 15m, min_posts: 8, for: 3m}\n")
    q = StoreQueries(store, 60)
    start, end = q.data_span()
    [episode] = replay(ruleset, q, start, end)
    # Over half of the trailing 15 minutes negative once 8 burst minutes are in it (68), held 3 minutes
    # -> fires at 71; below half again when only 7 are left (78).
    assert episode.fired_at == T0 + 71 * MIN
    assert episode.resolved_at == T0 + 78 * MIN
    assert episode.peak == pytest.approx(10 / 15)

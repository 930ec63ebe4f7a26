"""The labelled detection benchmark at a test's scale, fixed seed: episodes found, steady hours quiet.

Hours of steady multilingual traffic from the synthetic feed, with a negative burst (one ticker, one
language), a volume spike without sentiment change, a slow drift and a cross-language crisis,
scored by the stand-in classifier and run through the real aggregator into SQLite (see
``bench/detection.py``, which runs the full-size version and prints the table). Counts only.
"""

from __future__ import annotations

import sys

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT))
from bench.detection import report, run, scenario  # noqa: E402
from monitor.config import AggregatorSettings  # noqa: E402

LANGUAGES = {"en": 0.3, "de": 0.15, "zh": 0.15, "ja": 0.15, "es": 0.125, "fr": 0.125}
TICKERS = ["TSLA", "SIE.DE", "7203.T", "600519.SS", "AAPL", "SAP.DE"]


@pytest.fixture(scope="module")
def result():
    config = scenario(seed=5, hours=4.0, rate=5.0, languages=LANGUAGES, tickers=TICKERS)
    r = run(config, AggregatorSettings(windows_s=[60, 900]))  # 1 h windows cannot warm up in 4 hours
    print(report(r))
    return r


def test_every_episode_is_detected_on_its_own_series(result):
    found = {e.episode.name: e for e in result.card.episodes}
    assert all(e.detected for e in found.values()), report(result)
    assert found["burst-de-siemens"].delay_s <= 20 * 60
    assert found["spike-ja-toyota"].delay_s <= 20 * 60
    assert found["crisis-tesla"].delay_s <= 20 * 60
    assert found["drift-zh-moutai"].delay_s < found["drift-zh-moutai"].episode.end.timestamp() \
        - found["drift-zh-moutai"].episode.start.timestamp()


def test_steady_hours_are_quiet(result):
    assert result.steady_false_alarms == 0, report(result)
    assert result.card.precision == 1.0


def test_the_crisis_is_the_riskiest_and_spans_languages(result):
    risk = result.max_risk
    assert risk["crisis-tesla"] > risk["burst-de-siemens"] > result.max_steady_risk
    assert risk["crisis-tesla"] >= 80 and result.max_steady_risk < 40

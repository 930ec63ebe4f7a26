"""Detectors, metrics, baselines, seasonality and risk: pure functions over series of window values."""

from __future__ import annotations

import math
import random

import pytest

from monitor.anomaly import EwmaChart, RobustZ
from monitor.anomaly.evaluate import Evaluator
from monitor.anomaly.metrics import MEAN_SCORE, SHARE_NEGATIVE, VOLUME, Point
from monitor.anomaly.risk import RiskModel
from monitor.anomaly.seasonality import HOUR_S, WEEK_S, Baseline
from monitor.store.aggregate_tables import ALL

DETECTORS = [RobustZ(min_history=6), EwmaChart(alpha=0.2, min_history=6)]


@pytest.mark.parametrize("detector", DETECTORS, ids=lambda d: d.name)
def test_warm_up_gives_no_score(detector):
    assert detector.score([1.0] * 5, 9.0, floor=1.0) is None
    assert detector.score([1.0] * 6, 9.0, floor=1.0) is not None


@pytest.mark.parametrize("detector", DETECTORS, ids=lambda d: d.name)
def test_zero_variance_history_is_measured_in_the_floor(detector):
    quiet = detector.score([5.0] * 24, 5.0, floor=0.5)
    assert quiet.z == 0 and quiet.spread > 0
    jump = detector.score([5.0] * 24, 11.0, floor=0.5)
    assert math.isfinite(jump.z) and jump.z > 4


def test_robust_z_ignores_outliers_in_its_history():
    rng = random.Random(1)
    history = [10 + rng.gauss(0, 1) for _ in range(24)]
    spoiled = history[:20] + [60.0, 70.0, 80.0, 90.0]  # an earlier burst
    clean, dirty = RobustZ().score(history, 16.0, 0.1), RobustZ().score(spoiled, 16.0, 0.1)
    assert clean.z > 4 and dirty.z > 3  # a mean/std baseline would call 16 normal after that burst


def test_ewma_sees_a_small_persistent_shift_that_the_robust_z_misses():
    def first_alarm(detector, series, threshold=4.0):
        for t in range(24, len(series)):
            f = detector.score(series[t - 24 : t], series[t], floor=1.0)  # noise at the sampling floor
            if f is not None and f.z >= threshold:
                return t
        return None

    ewma = robust = early = 0
    for seed in range(200):  # 200 series; from window 40 on, a shift of 2 sigma
        rng = random.Random(seed)
        series = [rng.gauss(0, 1) for _ in range(40)] + [2.0 + rng.gauss(0, 1) for _ in range(16)]
        e, r = first_alarm(EwmaChart(), series), first_alarm(RobustZ(), series)
        ewma += e is not None and e >= 40
        robust += r is not None and r >= 40
        early += (e is not None and e < 40) + (r is not None and r < 40)  # false alarms before the shift
    assert ewma >= 100 and robust <= 25 and early == 0  # measured: 120, 10 and 0


def test_metrics_are_noise_stabilised():
    assert VOLUME.stable(0) == pytest.approx(2 * math.sqrt(3 / 8))
    assert VOLUME.unstable(VOLUME.stable(57)) == pytest.approx(57)
    assert SHARE_NEGATIVE.unstable(SHARE_NEGATIVE.stable(0.3)) == pytest.approx(0.3)
    assert SHARE_NEGATIVE.floor(0.2, 100) == pytest.approx(0.1)
    assert MEAN_SCORE.floor(0.0, 100) == pytest.approx(0.1) and MEAN_SCORE.floor(1.0, 100) > 0
    assert SHARE_NEGATIVE.observe(Point(7, 7, -5.0), min_volume=8) is None  # three posts cannot make a storm
    assert VOLUME.observe(Point(0, 0, 0.0), min_volume=8) is not None  # an empty window has volume 0


def _points(values: dict[int, Point]) -> dict:
    alive = {start: Point(1000, 200, 0.0) for start in values}
    return {ALL: alive, ("ticker", "X"): values}


def test_evaluator_scores_sentiment_and_volume_in_their_bad_direction():
    ev = Evaluator(DETECTORS, Baseline(windows=24), min_volume=8)
    steady = {i * 60: Point(40, 8, 8.0) for i in range(24)}
    burst = {**steady, 24 * 60: Point(120, 90, -60.0)}
    scores = {(s.metric.name, s.detector): s for s in ev.score_window(_points(burst), 24 * 60, 60, [("ticker", "X")])}
    assert scores[("share_negative", "robust_z")].badness > 6 and scores[("mean_score", "robust_z")].badness > 4
    assert scores[("volume", "robust_z")].badness > 6
    assert scores[("share_negative", "robust_z")].observed == pytest.approx(0.75)
    assert scores[("share_negative", "robust_z")].baseline == pytest.approx(0.2)
    good = {**steady, 24 * 60: Point(40, 0, 30.0)}
    assert all(s.badness < 0 for s in ev.score_window(_points(good), 24 * 60, 60, [("ticker", "X")])
               if s.metric is not VOLUME)


def test_empty_windows_count_as_zero_volume_only_while_the_stream_is_alive():
    ev = Evaluator([RobustZ(min_history=6)], Baseline(windows=24), min_volume=8)
    sparse = {i * 60: Point(1, 0, 0.0) for i in range(0, 24, 4)}  # the ticker is rarely mentioned
    now = 24 * 60
    points = {ALL: {i * 60: Point(500, 100, 0.0) for i in range(25)}, ("ticker", "X"): {**sparse, now: Point(30, 6, 0.0)}}
    [volume] = [s for s in ev.score_window(points, now, 60, [("ticker", "X")]) if s.metric is VOLUME]
    assert volume.baseline == pytest.approx(0.0) and volume.badness > 5  # zeros in between: a real spike
    assert not [s for s in ev.score_window(points, now, 60, [("ticker", "X")]) if s.metric is SHARE_NEGATIVE]
    fresh = {ALL: {now: Point(500, 100, 0.0)}, ("ticker", "X"): {now: Point(30, 6, 0.0)}}
    assert ev.score_window(fresh, now, 60, [("ticker", "X")]) == []  # no data before: warming up, not comparing to 0


def test_hour_of_week_baseline_quiets_a_weekly_rhythm():
    def volume(t: int) -> int:  # Monday 9-10 is busy every week
        return 300 if (t % WEEK_S) // HOUR_S == 9 else 60

    starts = list(range(0, 5 * WEEK_S, HOUR_S))
    points = {ALL: {s: Point(volume(s), 60, 0.0) for s in starts}}
    monday = 4 * WEEK_S + 9 * HOUR_S
    plain = Evaluator([RobustZ(min_history=3)], Baseline(windows=24), min_volume=8)
    seasonal = Evaluator([RobustZ(min_history=3)], Baseline(windows=24, seasonality="hour_of_week", weeks=4), min_volume=8)
    [p] = [s for s in plain.score_window(points, monday, HOUR_S, [ALL]) if s.metric is VOLUME]
    [q] = [s for s in seasonal.score_window(points, monday, HOUR_S, [ALL]) if s.metric is VOLUME]
    assert p.badness > 10 and abs(q.badness) < 1
    assert Baseline(seasonality="hour_of_week", weeks=2).seasonal(monday + 120, 60)[:2] == [
        monday - 2 * WEEK_S, monday - 2 * WEEK_S + 60]
    early = Evaluator([RobustZ(min_history=3)], Baseline(windows=24, seasonality="hour_of_week"), min_volume=8)
    first_week = {ALL: {s: Point(60, 10, 0.0) for s in range(0, WEEK_S, HOUR_S)}}
    assert early.score_window(first_week, WEEK_S - HOUR_S, HOUR_S, [ALL])  # falls back to the recent baseline


def _score(kind: str, key: str, metric, z: float):
    from monitor.anomaly.base import Finding
    from monitor.anomaly.evaluate import Score

    return Score((kind, key), metric, "robust_z", 0.0, 0.0, 0.0, Finding(0.0, 1.0, z * metric.bad), 100)


def test_risk_grows_with_spread_across_languages():
    model = RiskModel()
    steady = model.score("T", [_score("ticker", "T", SHARE_NEGATIVE, 0.5), _score("ticker", "T", VOLUME, 0.8)])
    spike = model.score("T", [_score("ticker", "T", VOLUME, 9.0)])
    local = model.score("T", [_score("ticker", "T", SHARE_NEGATIVE, 6.0), _score("ticker_lang", "T|de", SHARE_NEGATIVE, 7.0)])
    crisis = model.score("T", [_score("ticker", "T", SHARE_NEGATIVE, 6.0)]
                         + [_score("ticker_lang", f"T|{lang}", MEAN_SCORE, 4.0) for lang in ("de", "en", "fr", "zh")])
    assert steady.risk == 0 < spike.risk < local.risk < crisis.risk <= 100
    assert (local.languages_negative, crisis.languages_negative, crisis.languages) == (1, 4, ["de", "en", "fr", "zh"])
    assert model.score("T", [_score("ticker", "T", SHARE_NEGATIVE, 1e9)]).risk < 100  # saturates, stays finite

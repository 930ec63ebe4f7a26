"""The synthetic feed: deterministic, multilingual, event-time ordered, with ground truth in every post."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from ingest.synthetic import LANGUAGES, Episode, FeedConfig, generate, paced, scored_stand_in
from monitor.enrich import dedup_key
from monitor.schemas import RawPost, ScoredPost

START = datetime(2026, 1, 5, 9, tzinfo=timezone.utc)


def feed(**kw) -> list[RawPost]:
    return list(generate(FeedConfig(seed=kw.pop("seed", 3), start=START, duration_s=kw.pop("duration_s", 600), **kw)))


def test_same_seed_same_posts_and_another_seed_differs():
    a, b, c = feed(), feed(), feed(seed=4)
    assert [p.model_dump() for p in a] == [p.model_dump() for p in b]
    assert [p.text for p in a] != [p.text for p in c]


def test_posts_are_valid_ordered_and_span_simulated_time():
    posts = feed(rate=20)
    assert 20 * 600 * 0.9 < len(posts) < 20 * 600 * 1.1
    for p in posts[:500]:
        RawPost.model_validate(p.model_dump())  # built without validation, valid all the same
    times = [p.created_at for p in posts]
    assert times == sorted(times) and times[0] >= START and times[-1] < START + timedelta(seconds=600)
    assert len({p.id for p in posts}) == len(posts)


def test_every_language_and_ticker_appears_with_its_truth():
    posts = feed(rate=30)
    truth = [p.meta["synthetic"] for p in posts]
    assert set(Counter(t["lang"] for t in truth)) == set(LANGUAGES)
    assert {t["tickers"][0] for t in truth} == set(FeedConfig().tickers)
    assert set(Counter(t["intended_label"] for t in truth)) == {"negative", "neutral", "positive"}
    declared = sum(p.lang is not None for p in posts) / len(posts)
    assert 0.4 < declared < 0.6
    assert all(p.lang in (None, t["lang"]) for p, t in zip(posts, truth))


def test_syndicated_copies_point_to_their_story_and_share_its_key():
    posts = feed(rate=30, duplicate_share=0.2)
    by_id = {p.id: p for p in posts}
    copies = [p for p in posts if p.meta["synthetic"]["duplicate_of"]]
    assert 0.15 < len(copies) / len(posts) < 0.25
    for copy in copies:
        original = by_id[copy.meta["synthetic"]["duplicate_of"]]
        assert original.created_at <= copy.created_at and original.meta["synthetic"]["duplicate_of"] is None
        assert copy.meta["synthetic"]["intended_label"] == original.meta["synthetic"]["intended_label"]
        if not copy.text.endswith("…"):
            assert dedup_key(copy.text) == dedup_key(original.text), copy.text


def test_episodes_change_their_cells_only_while_active():
    burst = Episode(name="b", kind="negative_burst", offset_s=300, duration_s=300, tickers=["SIE.DE"], langs=["de"],
                    negative_share=0.9, volume_factor=4)
    posts = feed(rate=40, episodes=[burst], duplicate_share=0)
    start, end = burst.window(START)
    cell = [p for p in posts if p.meta["synthetic"]["lang"] == "de" and p.meta["synthetic"]["tickers"] == ["SIE.DE"]]
    inside = [p for p in cell if start <= p.created_at < end]
    before = [p for p in cell if p.created_at < start]
    assert all(p.meta["synthetic"]["episode"] == "b" for p in inside)
    assert not any(p.meta["synthetic"]["episode"] for p in before)
    assert len(inside) > 2.5 * len(before)  # same length of time, four times the rate
    share = sum(p.meta["synthetic"]["intended_label"] == "negative" for p in inside) / len(inside)
    assert share > 0.8
    in_cell = {p.id for p in cell}
    assert not any(p.meta["synthetic"]["episode"] for p in posts if p.id not in in_cell)


def test_drift_ramps_and_spike_keeps_the_mix():
    drift = Episode(name="d", kind="drift", offset_s=0, duration_s=1200, tickers=["AAPL"], langs=["en"],
                    negative_share=0.9)
    spike = Episode(name="s", kind="volume_spike", offset_s=0, duration_s=1200, tickers=["MSFT"], langs=["en"],
                    volume_factor=5)
    posts = feed(rate=60, duration_s=1200, episodes=[drift, spike], duplicate_share=0)

    def negative_share(episode: str, half: int) -> float:
        sel = [p for p in posts if p.meta["synthetic"]["episode"] == episode
               and (p.created_at - START).total_seconds() // 600 == half]
        return sum(p.meta["synthetic"]["intended_label"] == "negative" for p in sel) / len(sel)

    assert negative_share("d", 0) < negative_share("d", 1) - 0.2
    assert abs(negative_share("s", 0) - 0.2) < 0.1 and abs(negative_share("s", 1) - 0.2) < 0.1


@pytest.mark.parametrize("bad, message", [
    ({"languages": {"xx": 1.0}}, "no templates"),
    ({"tickers": ["NOPE"]}, "tickers must be some of"),
    ({"start": datetime(2026, 1, 5)}, "timezone-aware"),
    ({"episodes": [{"name": "e", "kind": "crisis", "offset_s": 0, "duration_s": 60, "tickers": ["AAPL"],
                    "langs": ["en"]}]}, "at least two languages"),
    ({"episodes": [{"name": "e", "kind": "volume_spike", "offset_s": 0, "duration_s": 60, "tickers": ["AAPL"],
                    "langs": ["en"]}]}, "volume_factor > 1"),
    ({"episodes": [{"name": "e", "kind": "drift", "offset_s": 0, "duration_s": 60, "tickers": ["AAPL"],
                    "langs": ["en"]}], "languages": {"de": 1.0}}, "does not carry"),
])
def test_bad_configs_are_refused(bad, message):
    with pytest.raises(ValidationError, match=message):
        FeedConfig(**bad)


def test_paced_yields_in_real_time_at_speed():
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    config = FeedConfig(seed=1, start=START, duration_s=10, rate=5)
    posts = list(paced(config, speed=2.0, sleep=sleep, clock=lambda: now[0]))
    assert [p.id for p in posts] == [p.id for p in generate(config)]
    assert 4.0 < now[0] <= 5.0  # 10 simulated seconds at twice the speed
    with pytest.raises(ValueError):
        next(paced(config, speed=0))


def test_stand_in_scores_follow_the_intended_labels():
    posts = feed(rate=20)
    scored = list(scored_stand_in(posts, seed=1, accuracy=0.9))
    agree = sum(s.label == p.meta["synthetic"]["intended_label"] for s, p in zip(scored, posts)) / len(posts)
    assert 0.86 < agree < 0.94
    for s in scored[:300]:
        ScoredPost.model_validate_json(s.model_dump_json())
        assert abs(s.scores.negative + s.scores.neutral + s.scores.positive - 1) < 1e-9
        assert s.tickers[:1] == s.meta["synthetic"]["tickers"]


def test_demo_config_is_valid():
    config = FeedConfig.demo(start=START)
    assert {e.kind for e in config.episodes} == {"negative_burst", "volume_spike", "drift", "crisis"}

"""Windowed aggregates in the store: exact sums, no double counting, late and bad input, live == backfill."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from ingest.synthetic import Episode, FeedConfig, generate, scored_stand_in
from monitor.aggregate import Aggregator, backfill, from_scored
from monitor.aggregate.records import from_message
from monitor.config import AggregatorSettings
from monitor.enrich import dedup_key
from monitor.schemas import ScoredPost, Scores
from monitor.store.aggregate_tables import aggregate_parts, aggregates, anomalies, risk_scores
from monitor.store.db import StoreUnavailable, open_store
from monitor.store.posts import upsert_posts

T0 = datetime(2026, 1, 5, 10, 0, tzinfo=timezone.utc)
SETTINGS = AggregatorSettings(windows_s=[60, 900, 3600], allowed_lateness_s=120)
_serial = iter(range(10**9))


def post(at: float, *, lang: str = "en", label: str = "neutral", tickers=("AAPL",), source: str = "wire",
         text: str | None = None, pid: str | None = None, score: float | None = None) -> ScoredPost:
    """A scored post ``at`` seconds after T0; its text (and so its story) unique unless given."""
    n = next(_serial)
    text = text or f"story number {n} about {' '.join(tickers)} in {lang}"
    s = {"negative": -0.8, "neutral": 0.0, "positive": 0.8}[label] if score is None else score
    p_pos, p_neg = max(s, 0.0), max(-s, 0.0)
    created = T0 + timedelta(seconds=at)
    return ScoredPost(id=pid or f"p{n}", text=text, source=source, created_at=created, received_at=created,
                      lang=lang, tickers=list(tickers), label=label,
                      scores=Scores(negative=p_neg, neutral=1 - p_pos - p_neg, positive=p_pos), score=s,
                      model_version="test", scored_at=created, dedup_key=dedup_key(text))


def rows(engine, table=aggregates, skip=("updated_at", "detected_at", "id")) -> list[tuple]:
    with engine.connect() as conn:
        out = [tuple((k, round(v, 9) if isinstance(v, float) else v) for k, v in r._mapping.items() if k not in skip)
               for r in conn.execute(select(table)).all()]
    return sorted(out, key=repr)


def agg_row(engine, window_s: int, kind: str, key: str, start: datetime) -> dict | None:
    with engine.connect() as conn:
        r = conn.execute(select(aggregates).where(aggregates.c.window_s == window_s, aggregates.c.series_kind == kind,
                                                  aggregates.c.series_key == key,
                                                  aggregates.c.window_start == start)).first()
    return dict(r._mapping) if r else None


def live(engine, posts, *, batch: int = 50, settings=SETTINGS, group: str | None = "g", store_first: bool = True):
    """Like the consumer: the scorer stores each batch, then the aggregator adds and flushes it."""
    agg = Aggregator(engine, settings, group_id=group)
    agg.late_total = 0  # type: ignore[attr-defined]
    for i in range(0, len(posts), batch):
        chunk = posts[i : i + batch]
        if store_first:
            upsert_posts(engine, chunk)
        agg.add([from_scored(p) for p in chunk], ("posts.scored", 0))
        agg.late_total += agg.flush().late  # type: ignore[attr-defined]
    return agg


@pytest.fixture
def engine(store_url):
    eng = open_store(store_url)
    yield eng
    eng.dispose()


def test_sums_per_series_and_window(engine):
    posts = [post(1, label="negative", tickers=("AAPL", "MSFT")), post(2, label="positive"), post(3, lang="de"),
             post(70, label="negative", source="blog")]
    live(engine, posts)
    m0, m1 = T0, T0 + timedelta(minutes=1)
    assert agg_row(engine, 60, "all", "*", m0)["count"] == 3
    aapl = agg_row(engine, 60, "ticker", "AAPL", m0)
    assert (aapl["count"], aapl["unique_count"], aapl["n_negative"], aapl["n_neutral"], aapl["n_positive"]) == (3, 3, 1, 1, 1)
    assert aapl["sum_score"] == pytest.approx(0.0) and aapl["share_negative"] == pytest.approx(1 / 3)
    assert agg_row(engine, 60, "ticker", "MSFT", m0)["count"] == 1
    assert agg_row(engine, 60, "ticker_lang", "AAPL|de", m0)["count"] == 1
    assert agg_row(engine, 60, "lang", "de", m0)["count"] == 1
    assert agg_row(engine, 60, "source", "blog", m1)["mean_score"] == pytest.approx(-0.8)
    hour = agg_row(engine, 3600, "all", "*", T0)
    assert hour["count"] == 4 and hour["share_negative"] == pytest.approx(0.5)
    assert agg_row(engine, 60, "source", "blog", m0) is None  # empty windows have no row


def test_syndicated_copies_count_once(engine):
    story = "Siemens cuts its outlook as orders collapse in China and Europe"
    posts = [post(1, text=story, label="negative", tickers=("SIE.DE",)),
             post(2, text=f"RT @dpa: {story}", label="negative", tickers=("SIE.DE",), source="social"),
             post(3, text=f"{story} - Reuters", label="negative", tickers=("SIE.DE",)),
             post(4, text=story[:50] + "…", label="negative", tickers=("SIE.DE",)),
             post(5, text=story, lang="fr", label="negative", tickers=("SIE.DE",)),  # another language: its own story
             post(6, label="positive", tickers=("SIE.DE",))]
    live(engine, list(reversed(posts)))  # the order of arrival does not matter
    row = agg_row(engine, 60, "ticker", "SIE.DE", T0)
    assert (row["count"], row["unique_count"], row["n_negative"], row["n_positive"]) == (6, 3, 2, 1)
    social = agg_row(engine, 60, "source", "social", T0)
    assert (social["count"], social["unique_count"], social["mean_score"]) == (1, 0, 0.0)  # a copy only


def test_redelivery_restart_and_rescoring_never_double_count(engine):
    posts = [post(i * 7, label=random.Random(i).choice(["negative", "neutral", "positive"])) for i in range(40)]
    live(engine, posts)
    once = rows(engine)
    live(engine, posts[10:30])  # a fresh aggregator (a restart) re-delivered half of them
    assert rows(engine) == once
    rescored = posts[5].model_copy(update={"label": "positive", "score": 0.9})
    live(engine, [rescored])  # the same id scored again: replaced, not added
    row = agg_row(engine, 3600, "all", "*", T0)
    labels = [p.label for p in posts]
    labels[5] = "positive"
    assert (row["count"], row["n_positive"], row["n_negative"]) == (40, labels.count("positive"),
                                                                     labels.count("negative"))


def test_late_posts_within_and_beyond_lateness(engine):
    agg = Aggregator(engine, SETTINGS, group_id="g")
    early = [post(i) for i in range(0, 50, 5)]
    upsert_posts(engine, early)
    agg.add([from_scored(p) for p in early], ("posts.scored", 0))
    agg.flush()
    ahead = [post(400)]  # event time moves 400 s on: the first minute closes (lateness 120 s)
    upsert_posts(engine, ahead)
    agg.add([from_scored(p) for p in ahead], ("posts.scored", 0))
    agg.flush()
    assert (60, int(T0.timestamp())) not in agg.windows
    late = [post(30), post(250)]  # 30: beyond the lateness of its minute; 250: within
    upsert_posts(engine, late)
    agg.add([from_scored(p) for p in late], ("posts.scored", 0))
    report = agg.flush()
    assert report.late == 1
    assert agg_row(engine, 60, "all", "*", T0)["count"] == 11  # rebuilt from the store, counted all the same
    assert agg_row(engine, 60, "all", "*", T0 + timedelta(minutes=4))["count"] == 1


def test_out_of_order_restart_and_backfill_agree(engine):
    burst = Episode(name="b", kind="crisis", offset_s=600, duration_s=240, tickers=["TSLA"], langs=["en", "de"],
                    negative_share=0.9, volume_factor=5)
    config = FeedConfig(seed=2, start=T0, duration_s=960.0, rate=4, duplicate_share=0.15, episodes=[burst])
    ordered = list(scored_stand_in(generate(config), seed=2))
    rng = random.Random(5)
    blocks = [ordered[i : i + 600] for i in range(0, len(ordered), 600)]  # shuffled within ~150 s: some beyond lateness
    for b in blocks:
        rng.shuffle(b)
    stream = [p for b in blocks for p in b]
    half = len(stream) // 2
    first = live(engine, stream[:half], batch=200)
    second = live(engine, stream[half - 200 :], batch=200)  # crash before the last commit: that batch comes again
    assert first.late_total + second.late_total > 0  # some posts came after their window had closed
    ended = T0 + timedelta(minutes=15)  # live, event time never passed the last windows: only backfill scores them

    def scored(table):
        return [r for r in rows(engine, table) if dict(r)["window_start"] + timedelta(seconds=dict(r)["window_s"]) <= ended]

    got = {t.name: rows(engine, t) for t in (aggregates, aggregate_parts)}
    got_scored = {t.name: scored(t) for t in (anomalies, risk_scores)}
    report = backfill(engine, SETTINGS, since=T0)
    assert report.posts == len(stream)
    for t in (aggregates, aggregate_parts):
        assert rows(engine, t) == got[t.name], t.name
    for t in (anomalies, risk_scores):
        assert scored(t) == got_scored[t.name], t.name
    assert len(got_scored["anomalies"]) > 10, "the episode should give anomalies to compare"


def test_backfill_from_the_middle_keeps_straddling_windows_whole(engine):
    posts = [post(i * 20) for i in range(60)]  # 20 minutes
    live(engine, posts)
    before = rows(engine)
    backfill(engine, SETTINGS, since=T0 + timedelta(minutes=7, seconds=30))
    assert rows(engine) == before
    assert agg_row(engine, 900, "all", "*", T0)["count"] == 45


def test_two_aggregators_owning_different_languages_sum_to_one(engine, tmp_path):
    posts = [post(i * 3, lang=["en", "de", "ja"][i % 3], label=["negative", "positive"][i % 2]) for i in range(120)]
    upsert_posts(engine, posts)
    a = Aggregator(engine, SETTINGS, group_id="g")
    b = Aggregator(engine, SETTINGS, group_id="g")
    for i in range(0, 120, 30):
        chunk = posts[i : i + 30]
        a.add([from_scored(p) for p in chunk if p.lang == "en"], ("posts.scored", 0))
        b.add([from_scored(p) for p in chunk if p.lang != "en"], ("posts.scored", 1))
        a.flush()
        b.flush()
    split = rows(engine)
    other = open_store(f"sqlite:///{tmp_path / 'one.db'}")
    live(other, posts, batch=30)
    assert rows(other) == split
    other.dispose()


def test_bad_input_has_defined_behaviour(engine):
    far = post(30, label="negative").model_copy(update={"created_at": datetime(2099, 1, 1, tzinfo=timezone.utc)})
    naive = post(5).model_copy(update={"created_at": (T0 + timedelta(seconds=5)).replace(tzinfo=None)})
    odd = [post(1, lang="und", tickers=()), post(2, tickers=("NOSUCH",)), post(3, lang="x" * 40), far]
    agg = live(engine, [naive, *odd], store_first=False)
    assert agg.event_time == pytest.approx((T0 + timedelta(seconds=5)).timestamp())  # 2099 does not move time
    assert agg_row(engine, 60, "lang", "und", T0)["count"] == 1
    assert agg_row(engine, 60, "ticker", "NOSUCH", T0)["count"] == 1
    assert agg_row(engine, 60, "lang", "xxxxxxxx", T0)["count"] == 1  # cut to the column's 8 characters
    assert agg_row(engine, 60, "all", "*", datetime(2099, 1, 1, tzinfo=timezone.utc))["count"] == 1
    assert agg_row(engine, 60, "all", "*", T0)["count"] == 4  # the naive timestamp was taken as UTC
    with pytest.raises(ValueError):
        from_message(b'{"id": "x", "text": "no time", "source": "s", "lang": "en", "label": "neutral", "score": 0}')
    with pytest.raises(ValueError):
        from_message(b"not json")


def test_windows_that_end_while_down_are_scored_after_a_restart(engine):
    live(engine, [post(10), post(50), post(130)])  # event time 130 s: minute 2 has not ended yet
    fresh = Aggregator(engine, SETTINGS, group_id="g")
    fresh.add([from_scored(post(300))], ("posts.scored", 0))
    assert fresh.flush().windows_scored == 1  # minute 2, from the event time stored by the first run
    with engine.connect() as conn:
        starts = set(conn.execute(select(risk_scores.c.window_start).where(risk_scores.c.window_s == 60)).scalars())
    assert starts == {T0, T0 + timedelta(minutes=2)}  # minute 1 is empty: nothing to score
    blank = Aggregator(engine, SETTINGS, group_id="other-group")  # nothing stored for it: starts from its posts
    blank.add([from_scored(post(500))], ("posts.scored", 0))
    assert blank.flush().windows_scored == 0


def test_anomalies_carry_their_posts_are_updated_in_place_and_withdrawn(engine):
    settings = AggregatorSettings(windows_s=[60], allowed_lateness_s=600, warmup_windows=6)
    rng = random.Random(3)
    steady = [post(m * 60 + s, label=rng.choice(["negative", "neutral", "neutral", "positive"]), tickers=("ACME",))
              for m in range(12) for s in range(0, 60, 3)]  # 20 posts a minute, 12 minutes
    burst = [post(12 * 60 + s, label="negative", tickers=("ACME",), score=-0.5 - s / 200) for s in range(60)]
    after = [post(13 * 60 + 30, tickers=("ACME",))]  # moves event time past the burst minute
    agg = live(engine, steady + burst + after, batch=40, settings=settings)

    def found():
        with engine.connect() as conn:
            return {(r.metric, r.detector): r for r in conn.execute(select(anomalies).where(
                anomalies.c.series_kind == "ticker", anomalies.c.series_key == "ACME"))}

    first = found()
    share = first[("share_negative", "robust_z")]
    assert share.window_start == T0 + timedelta(minutes=12) and share.direction == "up" and share.volume == 60
    assert share.post_ids == [p.id for p in sorted(burst, key=lambda p: p.score)][:50]  # the most negative first
    assert first[("volume", "robust_z")].post_ids == [p.id for p in burst][:50]  # the earliest first
    agg.flush()  # scoring again changes nothing: same rows, same ids
    assert {k: r.id for k, r in found().items()} == {k: r.id for k, r in first.items()}
    dilute = [post(12 * 60 + 1 + s / 10, label="positive", tickers=("ACME",)) for s in range(400)]
    upsert_posts(engine, dilute)
    agg.add([from_scored(p) for p in dilute], ("posts.scored", 0))
    agg.flush()  # late posts: the window is no longer negative
    assert ("share_negative", "robust_z") not in found() and ("volume", "robust_z") in found()


@pytest.mark.postgres
@pytest.mark.faults
def test_a_store_outage_loses_nothing(pg_url, store_outage):
    engine = open_store(pg_url)
    posts = [post(i * 5, label=["negative", "positive", "neutral"][i % 3]) for i in range(60)]
    upsert_posts(engine, posts)
    agg = Aggregator(engine, SETTINGS, group_id="g")
    agg.add([from_scored(p) for p in posts[:30]], ("posts.scored", 0))
    agg.flush()
    agg.add([from_scored(p) for p in posts[30:]], ("posts.scored", 0))  # counted, not written yet
    later = post(3700)  # in the next hour: no window in memory contains it
    upsert_posts(engine, [later])
    with store_outage(pg_url):
        with pytest.raises(StoreUnavailable):
            agg.flush()
        with pytest.raises(StoreUnavailable):
            agg.add([from_scored(later)], ("posts.scored", 0))  # a new window must be read from the store
    agg.add([from_scored(later)], ("posts.scored", 0))  # the same batch again, as the consumer does
    agg.flush()
    written = rows(engine)
    backfill(engine, SETTINGS, since=T0)
    assert rows(engine) == written
    assert agg_row(engine, 3600, "all", "*", T0)["count"] == 60
    assert agg_row(engine, 3600, "all", "*", T0 + timedelta(hours=1))["count"] == 1
    engine.dispose()

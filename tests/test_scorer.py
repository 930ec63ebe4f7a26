"""The scorer loop against the embedded broker, a real store (SQLite and PostgreSQL) and the tiny model."""

from __future__ import annotations

import json
import threading
import time

import psycopg
import pytest
from prometheus_client import REGISTRY

from conftest import PG_ADMIN_URL
from ingest.scorer import ScorerOptions, run_scorer
from kafka_helpers import committed, fresh_topics, produce, read_topic
from monitor.config import Settings
from monitor.schemas import DeadLetter, ScoredPost
from monitor.store.db import open_store
from monitor.store.posts import count_posts, get_posts


@pytest.fixture
def kafka(broker):
    return fresh_topics(broker.bootstrap)


@pytest.fixture
def engine(store_url):
    """The store, on SQLite and on PostgreSQL."""
    engine = open_store(store_url)
    yield engine
    engine.dispose()


@pytest.fixture
def sqlite_engine(tmp_path):
    """For behaviour that does not depend on the database."""
    engine = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    yield engine
    engine.dispose()


def options(kafka, **overrides) -> ScorerOptions:
    values = {"max_idle_s": 3.0, "poll_timeout_ms": 200, "group_id": f"scorers.{kafka.topics.raw}",
              "retry_initial_s": 0.1, "store_retry_max_s": 0.5, **overrides}
    return ScorerOptions.from_settings(Settings(kafka=kafka), **values)


def committed_total(kafka, group: str) -> int:
    return sum(v or 0 for v in committed(kafka.bootstrap, group, kafka.topics.raw, kafka.partitions).values())


def scored_on_topic(kafka) -> list[ScoredPost]:
    return [ScoredPost.model_validate_json(r.value) for r in read_topic(kafka.bootstrap, kafka.topics.scored)]


def dead_on_topic(kafka) -> list[DeadLetter]:
    return [DeadLetter.model_validate_json(r.value) for r in read_topic(kafka.bootstrap, kafka.topics.deadletter)]


def valid_posts(n: int, prefix: str = "p") -> list[dict]:
    return [{"id": f"{prefix}{i}", "text": f"Acme ($ACME) shares rise {i}% after strong results", "lang": "en",
             "created_at": "2026-03-02T10:00:00Z", "source": "test"} for i in range(n)]


BAD = [  # (message, stage, part of the reason)
    (b"Acme beats estimates", "decode", "not JSON"),
    (b'{"id": "b1", "text": "caf\xe9"}', "decode", "UTF-8"),
    (None, "decode", "no value"),
    (b'[{"id": "b2", "text": "in a list"}]', "validate", "JSON object"),
    (b'{"id": "b3"}', "validate", "text"),
    (b'{"id": "b4", "text": 17}', "validate", "text"),
    (b'{"id": "b5", "text": "   "}', "validate", "text"),
    (b'{"id": "b6", "text": "x", "tickers": "ACME"}', "validate", "tickers"),
]

REPAIRED = [  # accepted, with a note
    ({"id": "r1", "text": "y" * 1_000_000}, "truncated"),
    ({"id": "r2", "text": "Acme falls", "created_at": "2026-03-02T09:00:00"}, "no time zone"),
    ({"id": "r3", "text": "Acme falls", "created_at": "2999-01-01T00:00:00Z"}, "future"),
    ({"id": "r4", "text": "Acme falls", "url": "javascript:alert(1)"}, "only http(s)"),
    ({"id": "r5", "text": "Die Acme-Aktie bricht nach der Gewinnwarnung ein", "lang": "??"}, "not an ISO 639 code"),
    ({"id": "r6", "text": "Acme\u0000 falls"}, "NUL"),
]


def test_valid_and_invalid_messages_end_up_in_store_scored_and_deadletter(kafka, engine, tiny_scorer):
    good = valid_posts(40)
    messages = good + [r for r, _ in REPAIRED] + [m for m, _, _ in BAD]
    produce(kafka.bootstrap, kafka.topics.raw, messages)
    n_ok, n_bad = len(good) + len(REPAIRED), len(BAD)

    stats = run_scorer(kafka, engine, tiny_scorer, options(kafka))

    assert (stats.consumed, stats.scored, stats.deadlettered) == (n_ok + n_bad, n_ok, n_bad)
    assert count_posts(engine) == n_ok
    scored = scored_on_topic(kafka)
    assert sorted(p.id for p in scored) == sorted([p["id"] for p in good] + [r["id"] for r, _ in REPAIRED])
    assert {p.model_version for p in scored} == {tiny_scorer.version}
    dead = dead_on_topic(kafka)
    assert len(dead) == n_bad
    by_original = {d.original: d for d in dead}
    for message, stage, reason in BAD:
        letter = by_original[message or b""]
        assert letter.stage == stage and reason in letter.error, letter
        assert letter.topic == kafka.topics.raw and letter.offset >= 0
    stored = {p.id: p for p in get_posts(engine, [r["id"] for r, _ in REPAIRED])}
    for post, note in REPAIRED:
        assert any(note in n for n in stored[post["id"]].notes), stored[post["id"]].notes
    assert len(stored["r1"].text) == 10_000
    assert stored["r5"].lang == "de"
    assert stored["r6"].text == "Acme falls"
    # everything processed was committed: a restarted member would start at the end
    assert committed_total(kafka, options(kafka).group_id) == n_ok + n_bad


def test_scored_posts_are_keyed_by_language_and_carry_the_enrichment(kafka, sqlite_engine, tiny_scorer):
    produce(kafka.bootstrap, kafka.topics.raw, [{"id": "e1", "text": "Acme ($ACME) plunges", "lang": "EN-us"},
                                                {"id": "e2", "text": "Les actions de $ACME chutent fortement aujourd'hui"}])
    run_scorer(kafka, sqlite_engine, tiny_scorer, options(kafka))
    records = read_topic(kafka.bootstrap, kafka.topics.scored)
    posts = {ScoredPost.model_validate_json(r.value).id: (r.key, ScoredPost.model_validate_json(r.value)) for r in records}
    assert posts["e1"][0] == b"en" and posts["e1"][1].tickers == ["ACME"]
    assert posts["e2"][0] == b"fr" and posts["e2"][1].lang_confidence is not None


def test_duplicate_ids_are_one_row_last_write_wins(kafka, engine, tiny_scorer):
    produce(kafka.bootstrap, kafka.topics.raw, [{"id": "d1", "text": "first version"}])
    run_scorer(kafka, engine, tiny_scorer, options(kafka))
    produce(kafka.bootstrap, kafka.topics.raw, [{"id": "d1", "text": "second version"}])
    run_scorer(kafka, engine, tiny_scorer, options(kafka))
    assert count_posts(engine) == 1
    assert get_posts(engine, ["d1"])[0].text == "second version"


class Poisoned:
    """The tiny model, except that it crashes on any batch holding a post that says POISON."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.calls = 0

    @property
    def version(self) -> str:
        return self.inner.version

    def predict(self, texts, langs=None):
        self.calls += 1
        if any("POISON" in t for t in texts):
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return self.inner.predict(texts, langs)


def test_a_poison_post_is_isolated_and_only_it_is_dead_lettered(kafka, sqlite_engine, tiny_scorer):
    posts = valid_posts(31)
    posts.insert(17, {"id": "poison", "text": "POISON pill"})
    produce(kafka.bootstrap, kafka.topics.raw, posts)
    model = Poisoned(tiny_scorer)

    stats = run_scorer(kafka, sqlite_engine, model, options(kafka, model_retries=2))

    assert stats.scored == 31 and stats.deadlettered == 1
    assert count_posts(sqlite_engine) == 31 and not get_posts(sqlite_engine, ["poison"])
    (letter,) = dead_on_topic(kafka)
    assert letter.stage == "score" and "illegal memory access" in letter.error
    assert json.loads(letter.original)["id"] == "poison"


class Nonsense:
    version = "nonsense-0"

    def predict(self, texts, langs=None):
        from models.classifier import Prediction

        return [Prediction("positive", {"negative": float("nan"), "neutral": 0.0, "positive": 1.0}, float("nan"))
                for _ in texts]


def test_a_model_returning_nan_is_refused_not_stored(kafka, sqlite_engine):
    produce(kafka.bootstrap, kafka.topics.raw, valid_posts(3))
    stats = run_scorer(kafka, sqlite_engine, Nonsense(), options(kafka, model_retries=1))
    assert stats.deadlettered == 3 and count_posts(sqlite_engine) == 0
    assert all(d.stage == "score" and "invalid prediction" in d.error for d in dead_on_topic(kafka))


def test_a_huge_bad_message_is_dead_lettered_within_the_message_size_limit(kafka, sqlite_engine, tiny_scorer):
    huge = b"not json " * 200_000  # 1.8 MB: base64 of it would not fit in a 1 MiB message
    produce(kafka.bootstrap, kafka.topics.raw, [huge])
    stats = run_scorer(kafka, sqlite_engine, tiny_scorer, options(kafka))
    assert stats.deadlettered == 1
    (letter,) = dead_on_topic(kafka)
    assert huge.startswith(letter.original) and "original cut from 1800000" in letter.error


def _store_retries() -> float:
    return REGISTRY.get_sample_value("monitor_scorer_store_retries_total") or 0.0


def _set_connections(db: str, allowed: bool) -> None:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{db}" WITH ALLOW_CONNECTIONS {str(allowed).lower()}')
        if not allowed:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (db,))


def _wait(condition, timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


@pytest.mark.postgres
@pytest.mark.faults
def test_store_outage_backs_off_without_committing_then_resumes_losing_nothing(kafka, pg_url, tiny_scorer):
    engine = open_store(pg_url)
    db = pg_url.rsplit("/", 1)[1]
    produce(kafka.bootstrap, kafka.topics.raw, valid_posts(25))
    opts = options(kafka, max_idle_s=None, batch_size=10)
    stop = threading.Event()
    retries_before = _store_retries()
    _set_connections(db, allowed=False)
    try:
        worker = threading.Thread(target=run_scorer, args=(kafka, engine, tiny_scorer, opts, stop), daemon=True)
        worker.start()
        assert _wait(lambda: _store_retries() >= retries_before + 3), "the scorer never retried the store"
        # backpressure: nothing committed, nothing produced while the store is down
        assert set(committed(kafka.bootstrap, opts.group_id, kafka.topics.raw, 2).values()) == {None}
        assert read_topic(kafka.bootstrap, kafka.topics.scored, timeout_s=2) == []
    finally:
        _set_connections(db, allowed=True)
    assert _wait(lambda: count_posts(engine) == 25)
    assert _wait(lambda: committed_total(kafka, opts.group_id) == 25)
    stop.set()
    worker.join(timeout=20)
    assert not worker.is_alive()
    assert sorted(p.id for p in scored_on_topic(kafka)) == sorted(p["id"] for p in valid_posts(25))
    engine.dispose()


class LongVersion:
    """A model whose version does not fit the store's column: PostgreSQL refuses the rows (a data error)."""

    version = "v" * 300

    def __init__(self, inner) -> None:
        self.inner = inner

    def predict(self, texts, langs=None):
        return self.inner.predict(texts, langs)


@pytest.mark.postgres
def test_rows_the_database_refuses_are_dead_lettered_and_the_loop_goes_on(kafka, pg_url, tiny_scorer):
    engine = open_store(pg_url)
    produce(kafka.bootstrap, kafka.topics.raw, valid_posts(4))
    stats = run_scorer(kafka, engine, LongVersion(tiny_scorer), options(kafka))
    assert stats.deadlettered == 4 and count_posts(engine) == 0
    dead = dead_on_topic(kafka)
    assert {d.stage for d in dead} == {"store"} and all("too long" in d.error for d in dead)
    assert committed_total(kafka, options(kafka).group_id) == 4
    engine.dispose()


def test_metrics_are_served_over_http(kafka, sqlite_engine, tiny_scorer):
    import urllib.request

    from ingest.metrics import serve_metrics

    port = serve_metrics(0)
    produce(kafka.bootstrap, kafka.topics.raw, valid_posts(3) + [b"not json"])
    run_scorer(kafka, sqlite_engine, tiny_scorer, options(kafka))
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    for name in ("monitor_scorer_consumed_total", "monitor_scorer_scored_total", 'monitor_scorer_deadlettered_total{stage="decode"}',
                 "monitor_scorer_batch_seconds_bucket", "monitor_scorer_lag{", "monitor_scorer_store_retries_total",
                 'monitor_scorer_stage_seconds_count{stage="store"}'):
        assert name in body, name

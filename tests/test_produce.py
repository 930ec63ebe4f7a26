"""`monitor produce`: a JSONL file replayed as it is (bad lines included), or the synthetic feed."""

from __future__ import annotations

import json

import pytest

from conftest import write_jsonl
from ingest.scorer import ScorerOptions, run_scorer
from kafka_helpers import fresh_topics, read_topic
from monitor.cli import main
from monitor.config import Settings
from monitor.schemas import RawPost
from monitor.store.db import open_store
from monitor.store.posts import count_posts


@pytest.fixture
def kafka(broker, monkeypatch):
    kafka = fresh_topics(broker.bootstrap)
    monkeypatch.setenv("MONITOR_KAFKA_BOOTSTRAP", broker.bootstrap)
    monkeypatch.setenv("MONITOR_KAFKA_TOPICS", kafka.topics.model_dump_json())
    return kafka


def posts_file(tmp_path):
    path = write_jsonl(tmp_path / "posts.jsonl", [{"id": f"f{i}", "text": f"Acme up {i}%", "lang": "en"} for i in range(5)])
    with path.open("ab") as f:
        f.write(b"this line is not JSON\n\n")            # produced as is; the blank line is not a message
        f.write(b'{"id": "f9", "text": "   "}\n')        # valid JSON the scorer refuses
        f.write(b'{"id": 5, "text": "integer id"}')       # no trailing newline
    return path


def last_json(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_file_lines_are_produced_as_they_are_keyed_by_id(kafka, tmp_path, capsys):
    path = posts_file(tmp_path)
    assert main(["produce", "--file", str(path), "--no-progress"]) == 0
    assert last_json(capsys)["produced"] == 8
    records = read_topic(kafka.bootstrap, kafka.topics.raw)
    sent = [line.rstrip(b"\n") for line in path.read_bytes().splitlines(keepends=True) if line.strip()]
    assert sorted(r.value for r in records) == sorted(sent)
    keys = {r.value: r.key for r in records}
    assert keys[b"this line is not JSON"] is None
    assert keys[sent[0]] == b"f0" and keys[b'{"id": 5, "text": "integer id"}'] == b"5"


def test_skip_invalid_drops_what_the_scorer_would_refuse(kafka, tmp_path, capsys):
    assert main(["produce", "--file", str(posts_file(tmp_path)), "--skip-invalid", "--rate", "500", "--no-progress"]) == 0
    report = last_json(capsys)
    assert (report["produced"], report["skipped_invalid"]) == (6, 2)
    assert len(read_topic(kafka.bootstrap, kafka.topics.raw)) == 6


def test_bad_lines_are_dead_lettered_end_to_end(kafka, tmp_path, capsys, tiny_model_dir):
    from models import SentimentClassifier

    assert main(["produce", "--file", str(posts_file(tmp_path)), "--no-progress"]) == 0
    engine = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    options = ScorerOptions.from_settings(Settings(kafka=kafka), max_idle_s=1.0, poll_timeout_ms=200,
                                          group_id=f"g.{kafka.topics.raw}")
    stats = run_scorer(kafka, engine, SentimentClassifier.load(tiny_model_dir, device="cpu"), options)
    assert (stats.scored, stats.deadlettered) == (6, 2)
    assert count_posts(engine) == 6
    assert len(read_topic(kafka.bootstrap, kafka.topics.deadletter)) == 2
    engine.dispose()


def test_synthetic_feed_for_a_duration(kafka, capsys):
    assert main(["produce", "--synthetic", "--duration", "2", "--rate", "50", "--no-progress"]) == 0
    produced = last_json(capsys)["produced"]
    records = read_topic(kafka.bootstrap, kafka.topics.raw)
    assert produced == len(records) > 0
    posts = [RawPost.model_validate_json(r.value) for r in records]
    assert all(r.key == p.id.encode() for r, p in zip(records, posts))
    assert all("synthetic" in p.meta for p in posts)


def test_without_a_cluster_it_says_how_to_get_one(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("MONITOR_KAFKA_BOOTSTRAP", raising=False)
    assert main(["produce", "--file", str(posts_file(tmp_path))]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "MONITOR_KAFKA_BOOTSTRAP" in err and "monitor broker" in err


def test_a_missing_file_is_one_line(kafka, tmp_path, capsys):
    assert main(["produce", "--file", str(tmp_path / "nope.jsonl")]) == 2
    assert "nope.jsonl does not exist" in capsys.readouterr().err

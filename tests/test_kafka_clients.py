"""Kafka clients from settings: where the cluster is, topics created first, one clear line when unreachable."""

from __future__ import annotations

import time

import pytest
from kafka.admin import KafkaAdminClient

from ingest.broker import EmbeddedBroker
from ingest.kafka_clients import (KafkaUnavailable, client_options, ensure_topics, kafka_for, make_consumer,
                                  make_producer)
from monitor.config import KafkaSettings, load_settings


def _partitions(bootstrap: str) -> dict[str, int]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        return {t["name"]: len(t["partitions"]) for t in admin.describe_topics(admin.list_topics())}
    finally:
        admin.close()


def test_unset_bootstrap_starts_an_embedded_broker_with_all_topics(monkeypatch):
    monkeypatch.delenv("MONITOR_KAFKA_BOOTSTRAP", raising=False)
    monkeypatch.setenv("MONITOR_KAFKA_PARTITIONS", "3")
    with kafka_for(load_settings()) as kafka:
        assert kafka.bootstrap and kafka.bootstrap.startswith("127.0.0.1:")
        assert _partitions(kafka.bootstrap) == {"posts.raw": 3, "posts.scored": 3, "posts.deadletter": 3, "alerts": 3}


def test_configured_cluster_is_used_as_is_and_missing_topics_are_created(monkeypatch):
    with EmbeddedBroker({"posts.raw": 2}) as cluster:
        monkeypatch.setenv("MONITOR_KAFKA_BOOTSTRAP", cluster.bootstrap)
        monkeypatch.setenv("MONITOR_KAFKA_PARTITIONS", "6")
        with kafka_for(load_settings()) as kafka:
            assert kafka.bootstrap == cluster.bootstrap
        # posts.raw existed and keeps its partitions; the others are created with the configured count,
        # not Tansu's auto-created 4.
        assert _partitions(cluster.bootstrap) == {"posts.raw": 2, "posts.scored": 6, "posts.deadletter": 6, "alerts": 6}
        assert ensure_topics(kafka) == []


def test_unreachable_cluster_is_one_line_naming_it_and_the_fix(monkeypatch):
    monkeypatch.setenv("MONITOR_KAFKA_BOOTSTRAP", "127.0.0.1:1")
    monkeypatch.setenv("MONITOR_KAFKA_BOOTSTRAP_TIMEOUT_MS", "500")
    with pytest.raises(KafkaUnavailable) as info:
        with kafka_for(load_settings()):
            pass
    message = str(info.value)
    assert "\n" not in message
    assert "127.0.0.1:1" in message and "MONITOR_KAFKA_BOOTSTRAP" in message


def test_security_settings_are_passed_straight_through(tmp_path):
    ca = tmp_path / "ca.pem"
    kafka = KafkaSettings(bootstrap="b:9093", security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512",
                          sasl_username="u", sasl_password="p", ssl_cafile=ca, ssl_check_hostname=False)
    opts = client_options(kafka)
    assert opts["security_protocol"] == "SASL_SSL"
    assert (opts["sasl_mechanism"], opts["sasl_plain_username"], opts["sasl_plain_password"]) == ("SCRAM-SHA-512", "u", "p")
    assert opts["ssl_cafile"] == str(ca) and opts["ssl_check_hostname"] is False
    assert "sasl_mechanism" not in client_options(KafkaSettings(bootstrap="b:9092"))


def test_producer_and_consumer_round_trip_with_manual_commits():
    with EmbeddedBroker({"rt": 2}) as broker:
        kafka = KafkaSettings(bootstrap=broker.bootstrap)
        producer = make_producer(kafka)
        for i in range(50):
            producer.send("rt", key=str(i % 2).encode(), value=f"m{i}".encode())
        producer.flush()
        producer.close()
        consumer = make_consumer(kafka, "g", ["rt"], max_poll_records=20)
        seen = _drain(consumer, 50)
        assert sorted(seen) == sorted(f"m{i}".encode() for i in range(50))
        consumer.close(autocommit=False)
        # Nothing was committed: a new member of the group starts over from the beginning.
        again = make_consumer(kafka, "g", ["rt"])
        assert len(_drain(again, 50)) == 50
        again.close()


def _drain(consumer, expected: int, deadline_s: float = 30.0) -> list[bytes]:
    seen: list[bytes] = []
    deadline = time.monotonic() + deadline_s
    while len(seen) < expected and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            seen += [r.value for r in records]
    return seen

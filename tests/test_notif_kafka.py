"""Notifications on the ``alerts`` Kafka topic, through the embedded broker (a real Kafka protocol server)."""

from __future__ import annotations

import json

from alerts.rules import parse_rules
from monitor.cli.commands_alerts import build_service
from monitor.config import SmtpSettings, load_settings
from monitor.store.db import open_store
from tests.alert_helpers import MIN, T0, run_clock
from tests.kafka_helpers import fresh_topics, read_topic
from tests.test_alert_notify import rules, seed_burst


def test_grouped_notices_are_published_keyed_by_group(broker, tmp_path):
    kafka = fresh_topics(broker.bootstrap)
    engine = open_store(f"sqlite:///{tmp_path / 's.db'}")
    seed_burst(engine)
    ruleset = parse_rules(rules().replace("    email: [desk@example.com]\n", "    kafka: true\n"), tmp_path / "r.yaml")
    service, closers = build_service(load_settings(), engine, ruleset, SmtpSettings(host="127.0.0.1"), kafka)
    try:
        run_clock(service, T0 + 55 * MIN, T0 + 100 * MIN)
    finally:
        for close in closers:
            close()
    records = read_topic(broker.bootstrap, kafka.topics.alerts)
    bodies = [json.loads(r.value) for r in records]
    assert [b["status"] for b in bodies] == ["firing", "resolved"]
    assert {r.key for r in records} == {bodies[0]["groupKey"].encode()}
    assert sorted(a["labels"]["lang"] for a in bodies[0]["alerts"]) == ["de", "fr", "ja"]

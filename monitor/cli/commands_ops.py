"""Operations: ``demo`` (everything on embedded defaults) and ``config show``."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from monitor.cli.supervisor import ChildSpec, Supervisor
from monitor.config import Settings, load_settings, redacted


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo", help="run the whole monitor on embedded defaults (broker, feed, scorer, aggregator, alerts, dashboard)",
        description="Start the embedded broker (unless MONITOR_KAFKA_BOOTSTRAP is set), the synthetic multilingual "
        "feed, the scorer, the aggregator, the alert scheduler (with a local SMTP sink unless MONITOR_SMTP_HOST is "
        "set) and the dashboard, each as its own process restarted if it dies. Prints where to look; Ctrl-C stops "
        "everything cleanly.")
    p.add_argument("--duration", type=float, metavar="SECONDS", help="stop by itself after this long (unattended runs)")
    p.add_argument("--rate", type=float, default=20.0, help="synthetic posts per second (default 20)")
    p.add_argument("--no-dashboard", action="store_true", help="do not start the dashboard")
    p.add_argument("--model", type=Path, help="model directory for the scorer (default: the shipped model)")
    p.set_defaults(handler=_demo)

    p = sub.add_parser("config", help="inspect the effective settings")
    sub2 = p.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    show = sub2.add_parser("show", help="print the validated settings with every secret masked")
    show.set_defaults(handler=_config_show)


def _config_show(args: argparse.Namespace) -> int:
    print(json.dumps(redacted(load_settings(args.config)), indent=2, default=str))
    return 0


def _children(settings: Settings, args: argparse.Namespace, duration: float | None) -> list[ChildSpec]:
    from ingest.broker import free_port

    feed = ["produce", "--synthetic", "--rate", str(args.rate), "--no-progress"]
    if duration:
        feed += ["--duration", str(duration)]
    # The scorer serves Prometheus metrics on a port of its own; the dashboard reads lag and throughput there.
    scorer_metrics = settings.metrics_port or free_port()
    specs = [
        ChildSpec("scorer", ["score"] + (["--model", str(args.model)] if args.model else []),
                  ready_text="as group", env={"MONITOR_METRICS_PORT": str(scorer_metrics)}),
        ChildSpec("aggregator", ["aggregate"], env={"MONITOR_METRICS_PORT": "0"}),
        ChildSpec("alerts", ["alerts", "run"], env={"MONITOR_METRICS_PORT": "0"}),  # a free port, in its heartbeat
        ChildSpec("feed", feed, restart=False),
    ]
    if not args.no_dashboard:
        specs.append(ChildSpec("dashboard", ["dashboard"], env={
            "MONITOR_DASHBOARD_METRICS_URLS": json.dumps([f"http://127.0.0.1:{scorer_metrics}/metrics"])}))
    return specs


def _timeline(rate: float) -> str:
    """When to look: the feed's scripted episodes, in minutes after the start (baselines need the first ten)."""
    from ingest.synthetic import FeedConfig

    lines = [f"  +{ep.offset_s / 60:.0f} min {ep.kind.replace('_', ' ')}: {', '.join(ep.tickers)} in {', '.join(ep.langs)}"
             for ep in FeedConfig.demo(rate=rate).episodes]
    return "  the feed's episodes (steady traffic before and between):\n  " + "\n  ".join(lines)


def _summary(settings: Settings) -> dict:
    from sqlalchemy import func, select

    from alerts.smtp_sink import list_mail, mail_dir
    from monitor.store.aggregate_tables import anomalies
    from monitor.store.db import open_store
    from monitor.store.posts import count_posts

    engine = open_store(settings.database_url_value)
    with engine.connect() as conn:
        n_anomalies = conn.execute(select(func.count()).select_from(anomalies)).scalar_one()
    summary = {"posts_stored": count_posts(engine), "anomalies": int(n_anomalies),
               "emails_received": len(list_mail(mail_dir(settings.data_dir)))}
    engine.dispose()
    return summary


def _demo(args: argparse.Namespace) -> int:
    from ingest.broker import free_port

    settings = load_settings(args.config)
    data_dir = settings.data_dir.resolve()
    env = dict(os.environ, MONITOR_DATA_DIR=str(data_dir), PYTHONUNBUFFERED="1")
    sup = Supervisor(data_dir / "logs", env)
    if not settings.kafka.bootstrap:
        port = free_port()
        env["MONITOR_KAFKA_BOOTSTRAP"] = f"127.0.0.1:{port}"
        sup.start(ChildSpec("broker", ["broker", "--port", str(port)], ready_text="embedded broker ready"))
    print(f"monitor demo: Kafka at {env['MONITOR_KAFKA_BOOTSTRAP']}, data in {data_dir}", flush=True)
    started = time.monotonic()
    try:
        for spec in _children(settings, args, args.duration):
            sup.start(spec)
        dash = settings.dashboard
        print(f"  dashboard:  http://{dash.host}:{dash.port}" if not args.no_dashboard else "  dashboard: off")
        print(f"  e-mails:    {data_dir / 'mail'} (local SMTP sink)" if not settings.smtp.host
              else f"  e-mails:    via {settings.smtp.host}:{settings.smtp.port}")
        print(f"  logs:       {data_dir / 'logs'}")
        print(_timeline(args.rate))
        print("  Ctrl-C stops everything" + (f"; stopping by itself after {args.duration:.0f} s" if args.duration else ""),
              flush=True)
        while args.duration is None or time.monotonic() - started < args.duration:
            for event in sup.check():
                print(f"  [{time.strftime('%H:%M:%S')}] {event}", flush=True)
            time.sleep(1.0)
    except KeyboardInterrupt:
        print("\nstopping...", flush=True)
    finally:
        # Producers first, so the scorer can drain what was sent; the broker last.
        sup.stop(order=["feed", "dashboard", "scorer", "aggregator", "alerts", "broker"])
    summary = _summary(settings)
    print(json.dumps(summary), flush=True)
    if args.duration and summary["posts_stored"] == 0:
        print("monitor demo: no post was scored; see the logs above", file=sys.stderr)
        return 1
    return 0

"""Commands of the alerts concern: ``monitor alerts [run | test-rule | list | silence | mail]``.

This module wires the alerts package to the rest: the store from the settings, SMTP from
``SmtpSettings`` (or the local sink when no server is configured), and a Kafka producer from
``ingest.kafka_clients`` when a receiver publishes on the alerts topic.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from monitor.config import PROJECT_ROOT, KafkaSettings, Settings, SmtpSettings, load_settings
from monitor.errors import UserError
from monitor.schemas import utcnow

log = logging.getLogger(__name__)
EXAMPLE_RULES = PROJECT_ROOT / "configs" / "rules.example.yaml"


def register(sub: argparse._SubParsersAction) -> None:
    """Add this concern's sub-commands to the `monitor` parser."""
    alerts = sub.add_parser("alerts", help="alert rules, their schedule, silences and sent mail",
                            description="Evaluate alert rules on the store and notify by e-mail, webhook and the "
                            "alerts Kafka topic. Without a sub-command: run the schedule (like `alerts run`).")
    _rules_arg(alerts, None)
    alerts.set_defaults(handler=_run, once=False)
    sub2 = alerts.add_subparsers(dest="alerts_command", metavar="SUBCOMMAND")

    p = sub2.add_parser("run", help="evaluate the rules on their schedule and deliver notifications until Ctrl-C",
                        description="Every rule at its interval, groups and the outbox every MONITOR_ALERTS_TICK_S, "
                        "the digest daily at MONITOR_ALERTS_DIGEST_AT (UTC). Without MONITOR_SMTP_HOST, e-mail goes "
                        "to a local SMTP sink that saves each message as an .eml file in <data dir>/mail.")
    _rules_arg(p, argparse.SUPPRESS)
    p.add_argument("--once", action="store_true", help="one evaluation of every rule, one flush, one delivery, then exit")
    p.set_defaults(handler=_run)

    p = sub2.add_parser("test-rule", help="dry run: which alerts a rules file would have fired on the stored data",
                        description="Validate FILE.yaml (errors name the line), then replay the stored aggregates "
                        "and anomalies through it at each rule's interval, without touching alert state or sending "
                        "anything. Prints each alert episode: when it fired, when it resolved, its peak value.")
    p.add_argument("file", type=Path, metavar="FILE.yaml")
    p.add_argument("--since", type=_when, help="start of the replay (ISO time, or e.g. 6h for 6 hours ago; "
                   "default: the first stored window)")
    p.add_argument("--until", type=_when, help="end of the replay (default: the last stored window)")
    p.add_argument("--json", action="store_true", help="one JSON object per alert episode")
    p.set_defaults(handler=_test_rule)

    p = sub2.add_parser("list", help="alerts by state, or the outbox, or the history",
                        description="Current alerts (firing and pending by default); --outbox shows notifications "
                        "with their delivery status; --history shows state changes.")
    p.add_argument("--state", choices=["firing", "pending", "resolved", "all"], help="only alerts in this state")
    p.add_argument("--outbox", action="store_true", help="notifications and their delivery status")
    p.add_argument("--history", type=_duration, metavar="SPAN", help="state changes in the last SPAN (e.g. 24h)")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_list)

    silence = sub2.add_parser("silence", help="mute matching alerts for a while",
                              description="Silences mute notifications of alerts whose labels match every matcher "
                              "(label=value, label!=value, label=~regex, label!~regex). Labels: rule, severity, "
                              "series_kind, series_key, ticker, lang, source.")
    sub3 = silence.add_subparsers(dest="silence_command", metavar="ACTION", required=True)
    p = sub3.add_parser("add", help="create a silence", description="e.g. monitor alerts silence add ticker=AAPL "
                        "lang=~de|fr --for 2h --comment 'earnings call'")
    p.add_argument("matchers", nargs="+", metavar="MATCHER")
    p.add_argument("--for", dest="duration", type=_duration, required=True, metavar="DURATION", help="e.g. 30m, 2h, 1d")
    p.add_argument("--comment", required=True, help="why (shown in `silence list`)")
    p.add_argument("--by", default=None, help="who (default: the user name)")
    p.set_defaults(handler=_silence_add)
    p = sub3.add_parser("list", help="active (and with --all, expired) silences")
    p.add_argument("--all", action="store_true")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_silence_list)
    p = sub3.add_parser("expire", help="end a silence now")
    p.add_argument("id", help="silence id (an unambiguous prefix is enough)")
    p.set_defaults(handler=_silence_expire)

    p = sub2.add_parser("mail", help="list the e-mails the local SMTP sink received",
                        description="Messages saved by the local sink (<data dir>/mail/*.eml), newest first.")
    p.add_argument("--limit", type=int, default=20)
    p.set_defaults(handler=_mail)


def _rules_arg(p: argparse.ArgumentParser, default: Any) -> None:
    p.add_argument("--rules", type=Path, metavar="FILE.yaml", default=default,
                   help="rules file (default: MONITOR_ALERTS_RULES_FILE, else configs/rules.example.yaml)")


def _duration(text: str) -> timedelta:
    from alerts.durations import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _when(text: str) -> datetime:
    try:
        return utcnow() - _duration(text)
    except argparse.ArgumentTypeError:
        pass
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither an ISO time nor a span like 6h") from None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def rules_path(settings: Settings, override: Path | None = None) -> Path:
    return override or settings.alerts.rules_file or EXAMPLE_RULES


def _store(settings: Settings):
    from monitor.store.db import open_store

    return open_store(settings.database_url_value)


def _load(settings: Settings, override: Path | None):
    from alerts.rules import RulesError, load_rules

    ruleset = load_rules(rules_path(settings, override))
    missing = ruleset.missing_secrets()
    if missing:
        raise RulesError("\n".join(missing))
    return ruleset


@dataclass
class AlertsRuntime:
    """A running alerting service (scheduler, and the local SMTP sink when one was started)."""

    service: Any
    scheduler: Any
    sink: Any = None
    closers: list = field(default_factory=list)

    def stop(self) -> None:
        self.scheduler.shutdown(wait=True)
        for close in self.closers:
            close()
        if self.sink is not None:
            self.sink.stop()


def build_service(settings: Settings, engine, ruleset, smtp: SmtpSettings, kafka: KafkaSettings | None):
    """The alert service with a notifier per channel; returns it and the closers of what it opened."""
    from alerts.notifiers.mail import EmailNotifier
    from alerts.notifiers.webhook import WebhookNotifier
    from alerts.outbox import Backoff
    from alerts.service import AlertService, ServiceOptions

    hooks = {h.target: h for r in ruleset.spec.receivers.values() for h in r.webhooks}
    notifiers: dict[str, Any] = {"email": EmailNotifier(smtp),
                                 "webhook": WebhookNotifier(hooks, settings.alerts.webhook_timeout_s)}
    closers = []
    wants_kafka = any(r.kafka for r in ruleset.spec.receivers.values())
    if wants_kafka and kafka is not None and kafka.bootstrap:
        from alerts.notifiers.kafka import KafkaNotifier
        from ingest.kafka_clients import make_producer

        notifiers["kafka"] = KafkaNotifier(lambda: make_producer(kafka))
        closers.append(notifiers["kafka"].close)
    elif wants_kafka:
        log.warning("a receiver publishes on the alerts topic but MONITOR_KAFKA_BOOTSTRAP is not set: those "
                    "notifications wait in the outbox until a process with Kafka delivers them")
    options = ServiceOptions(sender=smtp.sender, dashboard_url=settings.alerts.dashboard_url,
                             kafka_topic=(kafka or settings.kafka).topics.alerts,
                             resolution_s=min(settings.aggregator.windows_s),
                             backoff=Backoff(settings.alerts.delivery_retry_min_s, settings.alerts.delivery_retry_max_s))
    return AlertService(engine, ruleset, notifiers, options), closers


def start_alerts(settings: Settings, *, rules: Path | None = None, kafka: KafkaSettings | None = None,
                 clock=utcnow) -> AlertsRuntime:
    """Start alerting in the background (for ``monitor demo`` too); ``.stop()`` ends it.

    ``kafka``: settings with a resolved bootstrap (e.g. the demo's embedded broker); default
    ``settings.kafka``. With no SMTP host configured, a local sink receives the e-mail.
    """
    from alerts.scheduler import build_scheduler, quiet_libraries
    from alerts.smtp_sink import SmtpSink, mail_dir

    quiet_libraries()
    ruleset = _load(settings, rules)
    engine = _store(settings)
    smtp, sink = settings.smtp, None
    if not smtp.host:
        sink = SmtpSink(mail_dir(settings.data_dir)).start()
        smtp = smtp.model_copy(update={"host": sink.host, "port": sink.port, "starttls": False, "ssl": False,
                                       "username": None, "password": None})
        log.info("no MONITOR_SMTP_HOST: e-mail goes to the local sink at %s:%d, saved in %s", sink.host, sink.port,
                 sink.folder)
    service, closers = build_service(settings, engine, ruleset, smtp, kafka or settings.kafka)
    service.start(clock())
    digest_at = settings.alerts.digest_at if settings.alerts.digest_enabled else None
    scheduler = build_scheduler(service, clock, tick_s=settings.alerts.tick_s, digest_at=digest_at)
    scheduler.start()
    log.info("alerting: %d rules from %s", len(ruleset.rules), ruleset.path)
    return AlertsRuntime(service, scheduler, sink, closers)


def _run(args: argparse.Namespace) -> int:
    from alerts import metrics
    from monitor.health import heartbeat, metrics_endpoint

    settings = load_settings(args.config)
    if args.once:
        return _run_once(settings, args.rules)
    runtime = start_alerts(settings, rules=args.rules)
    metrics_url = metrics_endpoint(settings.metrics_port)
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        with heartbeat(settings.data_dir, "alerts", metrics.status, metrics_url=metrics_url,
                       info={"rules": len(runtime.service.ruleset.rules)}):
            while not stop.wait(1.0):
                pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        runtime.stop()
    return 0


def _run_once(settings: Settings, rules: Path | None) -> int:
    if not settings.smtp.host:
        raise UserError("--once sends e-mail right away and needs a server: set MONITOR_SMTP_HOST "
                        "(the local sink only lives as long as `monitor alerts run`)")
    ruleset = _load(settings, rules)
    service, closers = build_service(settings, _store(settings), ruleset, settings.smtp, settings.kafka)
    now = utcnow()
    service.start(now)
    changed = service.evaluate_due(now)
    report = service.flush(now)
    for close in closers:
        close()
    print(json.dumps({"state_changes": len(changed), "sent": report.sent, "retrying": report.retrying,
                      "failed": report.failed}))
    return 0


def _test_rule(args: argparse.Namespace) -> int:
    from alerts.dryrun import replay
    from alerts.queries import StoreQueries
    from alerts.rules import load_rules

    settings = load_settings(args.config)
    ruleset = load_rules(args.file)
    queries = StoreQueries(_store(settings), min(settings.aggregator.windows_s))
    span = queries.data_span()
    if span is None and not (args.since and args.until):
        raise UserError(f"the store ({settings.database_url_value.split('://')[0]}) holds no aggregates yet: "
                        "run the aggregator first, or point MONITOR_DATABASE_URL at a store that has some")
    start = args.since or span[0]  # type: ignore[index]
    end = args.until or span[1]  # type: ignore[index]
    if end < start:
        raise UserError("--until is before --since")

    def bar(total: int):
        from tqdm import tqdm

        progress = tqdm(total=total, unit="eval", disable=not sys.stderr.isatty(), file=sys.stderr)
        return progress.update

    episodes = replay(ruleset, queries, start, end, progress=bar)
    if args.json:
        for e in episodes:
            print(json.dumps(e.as_dict(), ensure_ascii=False))
        return 0
    print(f"{ruleset.path}: {len(ruleset.rules)} rules valid; replayed {start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M} UTC")
    if not episodes:
        print("no alert would have fired")
    for e in episodes:
        until = f"resolved {e.resolved_at:%m-%d %H:%M}" if e.resolved_at else "still firing"
        print(f"{e.fired_at:%m-%d %H:%M}  {until:<20} {e.severity:<8} {e.rule}: {e.summary}")
    return 0


def _table(rows: list[dict], columns: list[str]) -> None:
    def cell(v: Any) -> str:
        if isinstance(v, datetime):
            return v.strftime("%Y-%m-%d %H:%M:%S")
        return "" if v is None else str(v)

    widths = {c: min(60, max([len(c)] + [len(cell(r.get(c))) for r in rows])) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    for r in rows:
        print("  ".join(cell(r.get(c))[:60].ljust(widths[c]) for c in columns))


def _print(rows: list[dict], columns: list[str], as_json: bool, empty: str) -> None:
    if as_json:
        for r in rows:
            print(json.dumps(r, default=str, ensure_ascii=False))
    elif not rows:
        print(empty)
    else:
        _table(rows, columns)


def _list(args: argparse.Namespace) -> int:
    from alerts.alert_store import history, load_alerts
    from alerts.outbox import outbox_rows

    engine = _store(load_settings(args.config))
    if args.outbox:
        _print(outbox_rows(engine, limit=args.limit), ["id", "created_at", "kind", "channel", "target", "status",
                                                       "attempts", "last_error", "subject"],
               args.json, "the outbox is empty")
        return 0
    if args.history:
        now = utcnow()
        rows = history(engine, now - args.history, now)[-args.limit:]
        _print(rows, ["at", "state", "rule", "severity", "series_kind", "series_key", "value"], args.json,
               "no state changes in that span")
        return 0
    states = None if args.state == "all" else [args.state] if args.state else ["firing", "pending"]
    rows = [{"state": a.state, "severity": a.severity, "rule": a.rule, "since": a.fired_at or a.active_since,
             "fingerprint": a.fingerprint, "summary": a.summary, "labels": a.labels}
            for a in load_alerts(engine, states=states)][: args.limit]
    _print(rows, ["state", "severity", "rule", "since", "summary"], args.json, "no alerts")
    return 0


def _silence_add(args: argparse.Namespace) -> int:
    import getpass

    from alerts.silences import create_silence, parse_matcher

    engine = _store(load_settings(args.config))
    silence = create_silence(engine, [parse_matcher(m) for m in args.matchers], duration=args.duration, now=utcnow(),
                             created_by=args.by or getpass.getuser(), comment=args.comment)
    print(f"silence {silence.id} until {silence.ends_at:%Y-%m-%d %H:%M} UTC: "
          f"{' '.join(str(m) for m in silence.matchers)}")
    return 0


def _silence_list(args: argparse.Namespace) -> int:
    from alerts.silences import list_silences

    now = utcnow()
    rows = [{"id": s.id, "matchers": " ".join(str(m) for m in s.matchers), "starts_at": s.starts_at,
             "ends_at": s.ends_at, "state": "active" if s.active(now) else "expired" if s.ends_at <= now else "pending",
             "created_by": s.created_by, "comment": s.comment}
            for s in list_silences(_store(load_settings(args.config)), now, include_expired=args.all)]
    _print(rows, ["id", "state", "matchers", "ends_at", "created_by", "comment"], args.json, "no silences")
    return 0


def _silence_expire(args: argparse.Namespace) -> int:
    from alerts.silences import expire_silence

    expire_silence(_store(load_settings(args.config)), args.id, utcnow())
    print(f"silence {args.id} expired")
    return 0


def _mail(args: argparse.Namespace) -> int:
    from alerts.smtp_sink import list_mail, mail_dir

    folder = mail_dir(load_settings(args.config).data_dir)
    rows = [{"date": m.date, "to": m.to, "subject": m.subject, "file": m.path.name} for m in list_mail(folder)]
    _print(rows[: args.limit], ["date", "to", "subject", "file"], False, f"no mail in {folder}")
    return 0

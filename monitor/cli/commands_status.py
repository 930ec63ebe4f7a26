"""``monitor status``: what is running, lagging or failing, from every source that knows.

* processes: the heartbeat files of the long-running commands (``monitor.health``): alive, responding,
  their counters and current problem, and whether their metrics endpoint answers;
* Kafka: the cluster answers (settings, else the one the running processes name), and how far each
  consumer group is behind its topic;
* the store: it answers, the newest post and when it was scored, the outbox, firing alerts.

Exit status 0 when nothing fails (warnings included), 1 when something fails, 2 for a bad configuration.
"""

from __future__ import annotations

import argparse
import json
import urllib.request
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from monitor.config import Settings, load_settings, redact_url

LEVELS = ("ok", "warn", "fail")


@dataclass
class Check:
    what: str
    level: str  # ok | warn | fail
    detail: str


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="say what is running, lagging or failing (exit 1 when something fails)",
                       description="Read the heartbeats the long-running commands write under MONITOR_DATA_DIR/run, "
                       "ask their metrics endpoints, the Kafka cluster (consumer-group lag) and the store (newest "
                       "post, outbox, firing alerts), and print one line per finding. Exit status 1 when something "
                       "fails (a crashed or hung process, a process waiting out an outage, Kafka or the store "
                       "unreachable), else 0; lag over --max-lag and undelivered notifications are warnings.")
    p.add_argument("--json", action="store_true", help="print the findings as JSON")
    p.add_argument("--max-lag", type=int, default=10_000, metavar="N",
                   help="a consumer group more than N records behind is reported as lagging (default 10000)")
    p.add_argument("--timeout-s", type=float, default=5.0, metavar="S", help="longest wait for each service (default 5)")
    p.set_defaults(handler=_status)


def _age(when: Any, now: datetime) -> str:
    if when is None:
        return "never"
    if isinstance(when, (int, float)):
        when = datetime.fromtimestamp(when, timezone.utc)
    elif isinstance(when, str):
        when = datetime.fromisoformat(when)
    seconds = (now - when).total_seconds()
    if abs(seconds) < 1:
        return "just now"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if abs(seconds) >= size:
            return f"{seconds / size:.0f} {unit} ago"
    return f"{seconds:.0f} s ago"


def _answers(url: str, timeout_s: float) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return response.status == 200
    except OSError:
        return False


def _counters(beat: dict[str, Any], now: datetime) -> str:
    if beat.get("role") == "scorer":
        return (f"consumed {beat.get('consumed', 0)}, scored {beat.get('scored', 0)}, dead-lettered "
                f"{beat.get('deadlettered', 0)}, lag {beat.get('lag', 0)}, last commit {_age(beat.get('last_commit_unix'), now)}")
    if beat.get("role") == "alerts":
        return f"{beat.get('rules', '?')} rules, {beat.get('delivered', 0)} delivered, {beat.get('delivery_failures', 0)} failed attempts"
    return ", ".join(f"{k} {v}" for k, v in beat.items() if isinstance(v, int) and k not in ("pid", "every_s"))


def process_checks(settings: Settings, now: datetime, timeout_s: float) -> list[Check]:
    import socket

    from monitor.health import pid_alive, read_heartbeats, run_dir

    beats = read_heartbeats(settings.data_dir)
    if not beats:
        return [Check("processes", "warn", f"no heartbeat under {run_dir(settings.data_dir)}: nothing has run with "
                      "this MONITOR_DATA_DIR (or it runs elsewhere)")]
    checks, host = [], socket.gethostname()
    for beat in beats:
        what = f"{beat.get('role', '?')} pid {beat.get('pid', '?')}" + ("" if beat.get("host") == host else f"@{beat.get('host')}")
        updated = datetime.fromisoformat(beat["updated_at"])
        silent_s = (now - updated).total_seconds()
        alive = pid_alive(int(beat.get("pid", 0))) if beat.get("host") == host else None
        if beat.get("state") == "stopped":
            checks.append(Check(what, "ok", f"stopped cleanly {_age(updated, now)}"))
        elif alive is False:
            checks.append(Check(what, "fail", f"gone without stopping (crashed or killed); last heartbeat {_age(updated, now)}"))
        elif silent_s > 3 * float(beat.get("every_s", 5)):
            checks.append(Check(what, "fail", f"not responding: last heartbeat {_age(updated, now)}"))
        elif beat.get("problem"):
            checks.append(Check(what, "fail", f"{beat['problem']} ({_counters(beat, now)})"))
        else:
            url = beat.get("metrics_url")
            if url and not _answers(url, timeout_s):
                checks.append(Check(what, "warn", f"running, but its metrics endpoint {url} does not answer"))
            else:
                checks.append(Check(what, "ok", f"running since {_age(beat.get('started_at'), now)}; {_counters(beat, now)}"
                                    + (f"; metrics {url}" if url else "")))
    return checks


def kafka_checks(settings: Settings, max_lag: int, timeout_s: float) -> list[Check]:
    from ingest.kafka_clients import KafkaUnavailable, admin_client, group_lag
    from monitor.health import read_heartbeats

    bootstrap = settings.kafka.bootstrap or next(
        (b["kafka"] for b in read_heartbeats(settings.data_dir) if b.get("kafka") and b.get("state") != "stopped"), None)
    if not bootstrap:
        return [Check("kafka", "warn", "no cluster: MONITOR_KAFKA_BOOTSTRAP is unset and no running process names one")]
    kafka = settings.kafka.model_copy(update={"bootstrap": bootstrap, "bootstrap_timeout_ms": int(timeout_s * 1000),
                                              "request_timeout_ms": max(1000, int(timeout_s * 1000))})
    try:
        admin = admin_client(kafka)
        try:
            cluster = admin.describe_cluster().get("cluster_id")
        finally:
            admin.close()
    except KafkaUnavailable as exc:
        return [Check(f"kafka {bootstrap}", "fail", str(exc))]
    checks = [Check(f"kafka {bootstrap}", "ok", f"answers (cluster {cluster})")]
    for group, topic in ((settings.scorer.group_id, kafka.topics.raw), (settings.aggregator.group_id, kafka.topics.scored)):
        try:
            lag = group_lag(kafka, group, topic, timeout_s)
        except KafkaUnavailable as exc:
            checks.append(Check(f"group {group}", "fail", str(exc)))
            continue
        total = sum(lag.values())
        level = "warn" if total > max_lag else "ok"
        checks.append(Check(f"group {group}", level, f"lag {total} on {topic}" + (f" (over --max-lag {max_lag})" if level == "warn" else "")))
    return checks


def store_checks(settings: Settings, now: datetime) -> list[Check]:
    from sqlalchemy.exc import DBAPIError, OperationalError

    from sqlalchemy.engine import make_url

    from monitor.errors import UserError
    from monitor.health import store_health
    from monitor.store.db import make_engine, normalise_url

    url = settings.database_url_value
    what = f"store {redact_url(url)}"
    path = make_url(normalise_url(url)).database if url.startswith("sqlite") else None
    if path and path != ":memory:" and not Path(path).exists():
        return [Check(what, "warn", "no store file yet: nothing has written to it")]
    try:
        engine = make_engine(url)
    except UserError as exc:
        return [Check(what, "fail", str(exc))]
    try:
        h = store_health(engine)
    except (OperationalError, DBAPIError) as exc:
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()
        reason_line = reason[0] if reason else type(exc).__name__
        if "no such table" in reason_line or ("relation" in reason_line and "does not exist" in reason_line):
            return [Check(what, "warn", "the store has no tables yet: no monitor process has opened it")]
        return [Check(what, "fail", f"unavailable: {reason_line}")]
    finally:
        engine.dispose()
    newest = ("no post yet" if h["newest_post_at"] is None else
              f"newest post scored {_age(h['newest_post_scored_at'], now)}")
    checks = [Check(what, "ok", f"{newest}; {h['alerts_firing']} alerts firing")]
    if h["outbox_failed"]:
        checks.append(Check("outbox", "warn", f"{h['outbox_failed']} notifications failed for good "
                            f"({h['outbox_failed_error']}); see monitor alerts list --outbox"))
    if h["outbox_pending"] and h["outbox_max_attempts"]:
        checks.append(Check("outbox", "warn", f"{h['outbox_pending']} notifications waiting since "
                            f"{_age(h['outbox_oldest_pending_at'], now)} after {h['outbox_max_attempts']} tries: "
                            f"{h['outbox_pending_error']}"))
    elif not h["outbox_failed"]:
        checks.append(Check("outbox", "ok", f"{h['outbox_pending']} pending"))
    return checks


def collect(settings: Settings, max_lag: int = 10_000, timeout_s: float = 5.0) -> list[Check]:
    now = datetime.now(timezone.utc)
    return process_checks(settings, now, timeout_s) + kafka_checks(settings, max_lag, timeout_s) + store_checks(settings, now)


def _status(args: argparse.Namespace) -> int:
    checks = collect(load_settings(args.config), args.max_lag, args.timeout_s)
    worst = max((c.level for c in checks), key=LEVELS.index, default="ok")
    if args.json:
        print(json.dumps({"status": worst, "checks": [asdict(c) for c in checks]}, indent=2))
    else:
        print(f"monitor status: {worst.upper()}")
        width = max(len(c.what) for c in checks)
        for c in checks:
            print(f"  {c.level.upper() if c.level != 'ok' else 'ok':<5} {c.what:<{width}}  {c.detail}")
    return 1 if worst == "fail" else 0

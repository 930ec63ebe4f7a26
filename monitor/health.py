"""Liveness of the long-running commands: heartbeat files, a metrics endpoint, and reading them back.

Each long-running command (``monitor score``, ``monitor alerts run``...) writes
``DATA_DIR/run/<role>-<pid>.json`` every few seconds: who it is, where its Prometheus endpoint listens,
which Kafka cluster it uses, its counters and its current problem (a store outage it is waiting out,
say); on a clean stop it writes ``state: stopped``. ``monitor status`` reads them back: a file whose
process is gone without saying ``stopped`` is a crash; one not rewritten for three intervals is a hung
process. Files are replaced atomically, so a reader never sees half a file. A new process of a role
removes the files of that role's dead processes on this host (a supervisor restart leaves no ghost).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from prometheus_client import start_http_server

from monitor.schemas import utcnow

log = logging.getLogger(__name__)
HEARTBEAT_S = 5.0


def run_dir(data_dir: Path) -> Path:
    return data_dir / "run"


def serve_metrics(port: int, host: str = "127.0.0.1") -> int:
    """Serve ``/metrics`` (the process-wide registry) in a daemon thread; ``port=0`` picks a free port."""
    server, _thread = start_http_server(port, addr=host)
    return int(server.server_port)


def metric_total(metric: Any) -> float:
    """A metric's value summed over its label sets (a counter's ``_total`` samples), for heartbeats."""
    return sum(s.value for m in metric.collect() for s in m.samples if not s.name.endswith("_created"))


def metrics_endpoint(port: int | None) -> str | None:
    """Serve the metrics on ``port`` (``MONITOR_METRICS_PORT``; 0: a free one) and say where; None: not served."""
    if port is None:
        return None
    url = f"http://127.0.0.1:{serve_metrics(port)}/metrics"
    log.info("metrics at %s", url)
    return url


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


class Heartbeat:
    """Writes this process's heartbeat file every ``every_s`` until :meth:`stop`.

    ``status()`` is called on the heartbeat thread and returns the counters and ``problem`` (None when
    all is well); it must be cheap and must not raise (an exception is recorded as the problem).
    """

    def __init__(self, data_dir: Path, role: str, status: Callable[[], Mapping[str, Any]], *,
                 metrics_url: str | None = None, info: Mapping[str, Any] | None = None, every_s: float = HEARTBEAT_S) -> None:
        self.folder = run_dir(data_dir)
        self.role = role
        self.status = status
        self.every_s = every_s
        self.path = self.folder / f"{role}-{os.getpid()}.json"
        self.base = {"role": role, "pid": os.getpid(), "host": socket.gethostname(), "started_at": utcnow().isoformat(),
                     "every_s": every_s, "metrics_url": metrics_url, **(info or {})}
        self._stop = threading.Event()
        self._warned = False
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{role}", daemon=True)

    def start(self) -> "Heartbeat":
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._prune()
        except OSError:  # a read-only data directory must not stop the work; beat() says why, once
            pass
        self.beat()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.every_s + 5)
        self.beat(state="stopped")

    def beat(self, state: str = "running") -> None:
        try:
            current = dict(self.status())
        except Exception as exc:  # a status that fails is itself the news
            current = {"problem": f"status unavailable: {type(exc).__name__}: {exc}"}
        record = {**self.base, **current, "state": state, "updated_at": utcnow().isoformat()}
        tmp = self.path.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps(record, default=str), encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError as exc:  # a full or read-only data directory must not stop the work itself
            if not self._warned:
                log.warning("cannot write the heartbeat %s: %s; monitor status will not see this process",
                            self.path, exc.strerror)
                self._warned = True

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self.beat()

    def _prune(self) -> None:
        host = socket.gethostname()
        for beat in read_heartbeats(self.folder.parent):
            if beat.get("role") == self.role and beat.get("host") == host and not pid_alive(int(beat.get("pid", 0))):
                Path(beat["_path"]).unlink(missing_ok=True)


@contextmanager
def heartbeat(data_dir: Path, role: str, status: Callable[[], Mapping[str, Any]], **options: Any) -> Iterator[Heartbeat]:
    """A :class:`Heartbeat` for the duration of the block, ``stopped`` when it ends (even by an exception)."""
    beat = Heartbeat(data_dir, role, status, **options).start()
    try:
        yield beat
    finally:
        beat.stop()


def read_heartbeats(data_dir: Path) -> list[dict[str, Any]]:
    """Every heartbeat under ``data_dir`` (``_path`` added); unreadable files are skipped."""
    out = []
    folder = run_dir(data_dir)
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(record, dict):
            out.append({**record, "_path": str(path)})
    return out


def store_health(engine: Any) -> dict[str, Any]:
    """What the store says about the pipeline: the newest post and when it was scored, the outbox, firing alerts.

    Index-only or small queries (the newest post by ``created_at``, the outbox by status), so a status
    check stays fast on a store of millions of posts. Raises SQLAlchemy's errors when the store is down.
    """
    from sqlalchemy import func, select

    from monitor.store.alert_tables import alerts, notifications
    from monitor.store.tables import posts

    with engine.connect() as conn:
        newest = conn.execute(select(posts.c.created_at, posts.c.scored_at).order_by(posts.c.created_at.desc())
                              .limit(1)).first()
        outbox = dict(conn.execute(select(notifications.c.status, func.count()).group_by(notifications.c.status)).all())
        waiting = conn.execute(select(func.min(notifications.c.created_at), func.max(notifications.c.attempts))
                               .where(notifications.c.status == "pending")).first()
        last_error = {status: conn.execute(select(notifications.c.last_error).where(
            notifications.c.status == status, notifications.c.last_error.is_not(None))
            .order_by(notifications.c.id.desc()).limit(1)).scalar() for status in ("pending", "failed")}
        firing = conn.execute(select(func.count()).select_from(alerts).where(alerts.c.state == "firing")).scalar_one()
    return {"newest_post_at": newest.created_at if newest else None, "newest_post_scored_at": newest.scored_at if newest else None,
            "outbox_pending": int(outbox.get("pending", 0)), "outbox_failed": int(outbox.get("failed", 0)),
            "outbox_oldest_pending_at": waiting[0] if waiting else None,
            "outbox_max_attempts": int(waiting[1] or 0) if waiting else 0,
            "outbox_pending_error": last_error["pending"], "outbox_failed_error": last_error["failed"],
            "alerts_firing": int(firing)}

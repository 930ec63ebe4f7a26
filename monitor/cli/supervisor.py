"""A small process supervisor for ``monitor demo``: start children, restart the ones that die, stop all.

Each part of the monitor runs as its own ``monitor ...`` process (as it would in production), so a
crash, a kill -9 or a broker restart hits one process and the supervisor restarts it with back-off
(1 s, doubling, at most 30 s). Output goes to one log file per child. Stopping sends SIGINT (each
child finishes its batch and commits), then SIGKILL after a grace period.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)
MAX_BACKOFF_S = 30.0


@dataclass
class ChildSpec:
    name: str
    args: list[str]  # arguments of the ``monitor`` command
    ready_text: str | None = None  # a line in its log that says it is up
    restart: bool = True  # a child that exits 0 on its own (e.g. a feed with --duration) is not restarted
    env: dict[str, str] = field(default_factory=dict)  # on top of the supervisor's environment


@dataclass
class _Child:
    spec: ChildSpec
    process: subprocess.Popen
    log_path: Path
    started: float
    restarts: int = 0
    backoff: float = 1.0
    next_start: float | None = None
    done: bool = False


@dataclass
class Supervisor:
    log_dir: Path
    env: dict[str, str]
    children: dict[str, _Child] = field(default_factory=dict)

    def _spawn(self, spec: ChildSpec) -> subprocess.Popen:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        out = (self.log_dir / f"{spec.name}.log").open("ab")
        cmd = [sys.executable, "-m", "monitor.cli", *spec.args]
        # A new session per child: Ctrl-C in the terminal reaches the supervisor only, which then
        # stops the children in order instead of all of them at once.
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env={**self.env, **spec.env},
                                start_new_session=True)

    def start(self, spec: ChildSpec, ready_timeout_s: float = 300.0) -> None:
        log_path = self.log_dir / f"{spec.name}.log"
        offset = log_path.stat().st_size if log_path.exists() else 0
        child = _Child(spec, self._spawn(spec), log_path, time.monotonic())
        self.children[spec.name] = child
        if spec.ready_text:
            self._wait_ready(child, offset, ready_timeout_s)

    def _wait_ready(self, child: _Child, offset: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            text = child.log_path.read_bytes()[offset:].decode("utf-8", "replace")
            if child.spec.ready_text in text:
                return
            if child.process.poll() is not None:
                raise RuntimeError(f"{child.spec.name} exited with {child.process.returncode} while starting; "
                                   f"see {child.log_path}:\n{text[-1500:]}")
            time.sleep(0.2)
        raise RuntimeError(f"{child.spec.name} was not ready after {timeout_s:.0f} s; see {child.log_path}")

    def check(self) -> list[str]:
        """Restart dead children (with back-off); return a line per event for the console."""
        events = []
        now = time.monotonic()
        for child in self.children.values():
            if child.done:
                continue
            code = child.process.poll()
            if code is None:
                if now - child.started > 60:
                    child.backoff = 1.0  # up for a minute: the next crash starts the back-off afresh
                continue
            if code == 0 and not child.spec.restart:
                child.done = True
                events.append(f"{child.spec.name} finished")
                continue
            if child.next_start is None:
                child.next_start = now + child.backoff
                events.append(f"{child.spec.name} exited with {code}; restarting in {child.backoff:.0f} s "
                              f"(log: {child.log_path})")
            elif now >= child.next_start:
                child.process = self._spawn(child.spec)
                child.started, child.next_start = now, None
                child.restarts += 1
                child.backoff = min(MAX_BACKOFF_S, child.backoff * 2)
                events.append(f"{child.spec.name} restarted (restart #{child.restarts})")
        return events

    def stop(self, grace_s: float = 20.0, order: list[str] | None = None) -> None:
        names = order or list(reversed(self.children))
        for name in names:
            child = self.children.get(name)
            if child is None or child.process.poll() is not None:
                continue
            child.process.send_signal(signal.SIGINT)
            try:
                child.process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop within %.0f s: killing it", name, grace_s)
                os.killpg(child.process.pid, signal.SIGKILL)
                child.process.wait()

"""Starting the Streamlit server for ``monitor dashboard`` and ``monitor demo``.

Settings reach the app through the environment (the app loads them itself), so what the command
validated is what the app sees: ``--config`` becomes ``MONITOR_CONFIG``. The server is refused
before it starts when it would expose the store without a login (:mod:`dashboard.exposure`).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path

from dashboard.exposure import auth_mode, check_exposure
from monitor.config import Settings
from monitor.errors import UserError
from monitor.store.db import open_store

APP = Path(__file__).resolve().parent / "app.py"
log = logging.getLogger(__name__)


def _check_oidc(settings: Settings) -> None:
    cfg = settings.dashboard
    path = cfg.oidc_secrets_file
    assert path is not None
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"MONITOR_DASHBOARD_OIDC_SECRETS_FILE {path} does not exist") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UserError(f"MONITOR_DASHBOARD_OIDC_SECRETS_FILE {path}: not readable TOML ({exc})") from None
    auth = doc.get("auth")
    if not isinstance(auth, dict):
        raise UserError(f"{path} has no [auth] section (see README: dashboard login)")
    provider = auth.get(cfg.oidc_provider, {}) if cfg.oidc_provider else auth
    missing = [k for k in ("redirect_uri", "cookie_secret") if k not in auth]
    missing += [k for k in ("client_id", "client_secret", "server_metadata_url") if k not in provider]
    if missing:
        where = f"[auth.{cfg.oidc_provider}]" if cfg.oidc_provider else "[auth]"
        raise UserError(f"{path}: {where} lacks {', '.join(missing)} (see README: dashboard login)")
    try:
        import authlib  # noqa: F401  (st.login needs it)
    except ImportError:
        raise UserError("OIDC login needs Authlib: .venv/bin/pip install 'streamlit[auth]'") from None


def preflight(settings: Settings) -> None:
    """Refuse an exposed address without login, a broken login setup or an unreachable store, before starting."""
    warning = check_exposure(settings.dashboard)
    if warning:
        log.warning("%s", warning)
    if auth_mode(settings.dashboard) == "oidc":
        _check_oidc(settings)
    open_store(settings.database_url_value).dispose()


def command(settings: Settings, port: int | None = None) -> list[str]:
    """The ``streamlit run`` command line."""
    cfg = settings.dashboard
    argv = [sys.executable, "-m", "streamlit", "run", str(APP),
            "--server.address", cfg.host, "--server.port", str(port or cfg.port),
            "--server.headless", "true", "--server.fileWatcherType", "none", "--server.runOnSave", "false",
            "--browser.gatherUsageStats", "false", "--global.developmentMode", "false",
            "--client.toolbarMode", "minimal", "--theme.base", "light"]
    if auth_mode(cfg) == "oidc":
        argv += ["--secrets.files", str(Path(cfg.oidc_secrets_file).resolve())]  # type: ignore[arg-type]
    return argv


def environment(config_file: str | Path | None, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {**os.environ, **(extra or {})}
    if config_file:
        env["MONITOR_CONFIG"] = str(Path(config_file).resolve())
    return env


def exec_server(settings: Settings, config_file: str | Path | None = None, port: int | None = None) -> None:
    """Become the Streamlit server (``monitor dashboard``): signals from a supervisor or Ctrl-C reach it
    directly, and no server is left behind when the command is stopped."""
    preflight(settings)
    argv = command(settings, port)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(argv[0], argv, environment(config_file))


def wait_healthy(proc: subprocess.Popen, base_url: str, timeout_s: float = 60.0) -> None:
    """Block until Streamlit answers its health check; ``UserError`` when it exits or never answers."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise UserError(f"the dashboard server exited with status {proc.returncode} (is the port taken?)")
        try:
            with urllib.request.urlopen(f"{base_url}/_stcore/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise UserError(f"the dashboard did not answer on {base_url} within {timeout_s:.0f} s")


def start(settings: Settings, config_file: str | Path | None = None, port: int | None = None,
          extra_env: dict[str, str] | None = None, **popen: object) -> subprocess.Popen:
    """The dashboard server as a child process (``monitor demo`` stops it with the rest).

    ``extra_env`` reaches the app's settings, e.g. ``MONITOR_DASHBOARD_METRICS_URLS`` for scorers whose
    metrics port was picked at run time.
    """
    preflight(settings)
    return subprocess.Popen(command(settings, port), env=environment(config_file, extra_env),  # type: ignore[call-overload]
                            **popen)

"""Who can reach the dashboard: loopback only, or the network behind a login.

Bound to a non-loopback address the dashboard shows every stored post to whoever can reach the port,
so it refuses to start there without a password or an OIDC login, and warns even with one (plain
HTTP: passwords and session cookies cross the network unencrypted unless a TLS proxy is in front).
"""

from __future__ import annotations

import ipaddress

from monitor.config import DashboardSettings
from monitor.errors import UserError


def is_loopback(host: str) -> bool:
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name may resolve to anything: treat it as exposed


def auth_mode(cfg: DashboardSettings) -> str:
    """``oidc``, ``password`` or ``none``; configuring both is refused rather than guessed."""
    if cfg.oidc_secrets_file and cfg.password:
        raise UserError("MONITOR_DASHBOARD_PASSWORD and MONITOR_DASHBOARD_OIDC_SECRETS_FILE are both set; choose one login")
    if cfg.oidc_secrets_file:
        return "oidc"
    return "password" if cfg.password else "none"


def check_exposure(cfg: DashboardSettings, host: str | None = None) -> str | None:
    """Raise ``UserError`` for an exposed address without login; a warning to show when exposed with one."""
    host = cfg.host if host is None else host
    if is_loopback(host):
        return None
    if auth_mode(cfg) == "none":
        raise UserError(f"refusing to serve the dashboard on {host} (reachable from other machines) without a login: "
                        "set MONITOR_DASHBOARD_PASSWORD or MONITOR_DASHBOARD_OIDC_SECRETS_FILE, "
                        "or bind to 127.0.0.1 (MONITOR_DASHBOARD_HOST)")
    return (f"the dashboard listens on {host}, reachable from other machines; it speaks plain HTTP, "
            "so put a TLS proxy in front of it")

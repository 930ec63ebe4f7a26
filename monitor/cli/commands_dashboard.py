"""``monitor dashboard``: the Streamlit app on the configured address (MONITOR_DASHBOARD_HOST/PORT)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dashboard", help="serve the analyst dashboard (Streamlit)",
                       description="Serve the multipage dashboard (overview, ticker, drill-down, alerts, model) "
                       "reading the store of MONITOR_DATABASE_URL. Binds MONITOR_DASHBOARD_HOST:PORT "
                       "(default 127.0.0.1:8501); a non-loopback address needs MONITOR_DASHBOARD_PASSWORD or "
                       "MONITOR_DASHBOARD_OIDC_SECRETS_FILE, otherwise the command refuses to start.")
    p.add_argument("--port", type=int, help="override MONITOR_DASHBOARD_PORT")
    p.set_defaults(handler=_dashboard)


def _dashboard(args: argparse.Namespace) -> int:
    from dashboard import server
    from monitor.config import load_settings

    settings = load_settings(args.config)
    print(f"dashboard on http://{settings.dashboard.host}:{args.port or settings.dashboard.port} (Ctrl-C stops it)",
          flush=True)
    server.exec_server(settings, args.config, args.port)
    return 0  # not reached: the process is the server now

"""Page-load time of every dashboard page against a big store (default: one million posts).

    .venv/bin/python bench/dashboard_load.py                      # 1M posts, SQLite in a temp dir
    .venv/bin/python bench/dashboard_load.py --url postgresql://postgres@127.0.0.1:5432/bench --posts 1000000
    .venv/bin/python bench/dashboard_load.py --posts 300000 --screenshots docs/screenshots

It seeds the store with :mod:`dashboard.synthetic` (bulk inserts), then measures two things per page:

* ``script``: the page's server-side run (all its queries and figures) with an empty cache (cold) and
  again with the cache filled (warm), through streamlit's AppTest;
* ``browser``: headless Chromium opening the page on a real ``monitor dashboard`` server until the
  charts are drawn and the app is idle (cold, then a reload), when chromium is installed.

``--url`` must name an empty database (the store is created in it); prints a table and a JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PAGES = ["overview", "ticker", "drilldown", "alerts", "model"]
# What "loaded" means per page: its charts drawn (plotly SVG), its table shown, or its heading.
READY = {
    "overview": "document.querySelectorAll('.js-plotly-plot .main-svg').length >= 2",
    "ticker": "document.querySelectorAll('.js-plotly-plot .main-svg').length >= 3",
    "model": "document.querySelectorAll('.js-plotly-plot .main-svg').length >= 2",
    "drilldown": "!!document.querySelector('[data-testid=\"stDataFrame\"] canvas')",
    "alerts": "!!document.querySelector('[data-testid=\"stDataFrame\"] canvas')",
}
NO_SKELETON = "!document.querySelector('[data-testid=\"stSkeleton\"]')"


def seed(url: str, n_posts: int, span_hours: float) -> dict:
    from sqlalchemy import func, select

    from dashboard import synthetic
    from monitor.store.db import open_store
    from monitor.store.tables import posts

    engine = open_store(url)
    with engine.connect() as conn:
        present = conn.execute(select(func.count()).select_from(posts)).scalar_one()
    if present:
        engine.dispose()
        return {"reused_posts": present}
    start = time.perf_counter()
    seeded = synthetic.seed_store(engine, n_posts=n_posts, span=timedelta(hours=span_hours))
    took = time.perf_counter() - start
    engine.dispose()
    return {"seeded_posts": seeded.n_posts, "seed_s": round(took, 1), "seed_posts_per_s": round(seeded.n_posts / took)}


def script_times(pages: list[str]) -> dict[str, dict[str, float]]:
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    out = {}
    for page in pages:
        st.cache_data.clear()
        times = {}
        for run in ("cold", "warm"):
            at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=600)
            at.query_params["page"] = page
            start = time.perf_counter()
            at.run()
            times[run] = round(time.perf_counter() - start, 3)
            if at.exception:
                raise SystemExit(f"{page}: the page raised: {at.exception[0].message}")
        out[page] = times
    return out


def page_query(page: str) -> str:
    """The URL query of a page: the drill-down opens the way an alert e-mail's link opens it."""
    from urllib.parse import urlencode

    from dashboard import queries
    from dashboard.links import drilldown_params
    from monitor.config import load_settings
    from monitor.store.db import open_store

    if page != "drilldown":
        return urlencode({"page": page})
    engine = open_store(load_settings().database_url_value)
    firing = queries.alerts_by_state(engine, ["firing"], 1)
    engine.dispose()
    if firing.empty:
        return urlencode({"page": page})
    a = firing.iloc[0]
    return urlencode({"page": page, **drilldown_params(a["series_kind"], a["series_key"], a["window_start"],
                                                       a["window_end"], alert=a["fingerprint"])})


def _open_first_row(browser) -> None:
    """Tick the first row of the drill-down table, so the screenshot shows a post with its probabilities."""
    box = browser.evaluate("(() => { const r = document.querySelector('[data-testid=\"stDataFrame\"]')"
                           ".getBoundingClientRect(); return [r.left, r.top]; })()")
    browser.click(box[0] + 17, box[1] + 35 + 17)
    browser.wait_for("[...document.querySelectorAll('h3')].some(h => h.textContent.startsWith('Post'))", timeout_s=120,
                     settle_s=0.5)


def browser_times(pages: list[str], shots: Path | None) -> dict[str, dict[str, float]] | str:
    from dashboard import server
    from dashboard.devtools import Chromium, find_chromium
    from monitor.config import load_settings

    if not find_chromium():
        return "skipped: chromium not installed"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    proc = server.start(load_settings(), port=port, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    out = {}
    try:
        server.wait_healthy(proc, base)
        with Chromium(width=1360, height=1000, timeout_s=600) as browser:
            for page in pages:
                ready = f"({READY[page]}) && {NO_SKELETON}"
                query = page_query(page)
                times = {}
                for run in ("cold", "warm"):
                    browser.goto("about:blank")
                    start = time.perf_counter()
                    browser.goto(f"{base}/?{query}")
                    browser.wait_for(ready, timeout_s=600, settle_s=0.3)
                    times[run] = round(time.perf_counter() - start, 3)
                out[page] = times
                if browser.evaluate("document.querySelectorAll('[data-testid=\"stException\"]').length"):
                    raise SystemExit(f"{page}: the browser shows a Streamlit exception")
                if shots:
                    if page == "drilldown":
                        _open_first_row(browser)
                    path = browser.screenshot(shots / f"{page}.png")
                    print(f"screenshot {path} ({path.stat().st_size // 1024} KB)", file=sys.stderr)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--posts", type=int, default=1_000_000)
    parser.add_argument("--span-hours", type=float, default=48.0, help="the posts spread over this many hours")
    parser.add_argument("--url", help="empty database to seed (default: SQLite in a temporary folder)")
    parser.add_argument("--pages", nargs="+", default=PAGES, choices=PAGES)
    parser.add_argument("--no-browser", action="store_true")
    parser.add_argument("--screenshots", type=Path, help="save a PNG of each page here (needs chromium)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dashboard-bench-") as tmp:
        url = args.url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        os.environ["MONITOR_DATABASE_URL"] = url
        os.environ.setdefault("MONITOR_DATA_DIR", str(Path(tmp) / "data"))
        result: dict = {"posts": args.posts, "backend": url.split(":", 1)[0], **seed(url, args.posts, args.span_hours)}
        print(f"store ready: {result}", file=sys.stderr)
        result["script_s"] = script_times(args.pages)
        if not args.no_browser:
            result["browser_s"] = browser_times(args.pages, args.screenshots)
    print(f"{'page':<10}{'script cold':>12}{'script warm':>12}{'browser cold':>14}{'browser warm':>14}")
    browser = result.get("browser_s") if isinstance(result.get("browser_s"), dict) else {}
    for page in args.pages:
        s, b = result["script_s"][page], browser.get(page, {})
        print(f"{page:<10}{s['cold']:>12.2f}{s['warm']:>12.2f}{b.get('cold', float('nan')):>14.2f}"
              f"{b.get('warm', float('nan')):>14.2f}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Cached access to settings, the store and the queries, shared by every page and session.

The engine (a connection pool) is a ``st.cache_resource``: one per database URL for the whole
server. Query results are ``st.cache_data`` with a 5 s TTL (the default refresh interval), so a
hundred open browser tabs cost the database one query per refresh, not a hundred. Query arguments must be
stable for the cache to hit: times are rounded down to the refresh interval (:func:`now`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Concatenate, ParamSpec, TypeVar

import streamlit as st
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, OperationalError

from dashboard import queries, scorer_metrics
from monitor.config import ConfigError, Settings, get_settings
from monitor.store.db import StoreUnavailable, open_store

P = ParamSpec("P")
R = TypeVar("R")

_TTL_S = 5.0  # fixed when the module loads: st.cache_data takes its TTL at decoration


def settings() -> Settings:
    """The settings, or the page shows the configuration problem and stops."""
    try:
        return get_settings()
    except ConfigError as exc:
        st.error(f"Invalid configuration:\n\n{exc}")
        st.stop()
        raise


@st.cache_resource(show_spinner=False)
def _engine(url: str) -> Engine:
    return open_store(url)


def engine() -> Engine:
    try:
        return _engine(settings().database_url_value)
    except StoreUnavailable as exc:
        st.error(str(exc))
        st.stop()
        raise


@st.cache_data(ttl=_TTL_S, show_spinner=False, max_entries=1024)
def _run(url: str, name: str, args: tuple, kwargs: tuple) -> object:
    return getattr(queries, name)(_engine(url), *args, **dict(kwargs))


def query(fn: Callable[Concatenate[Engine, P], R], *args: P.args, **kwargs: P.kwargs) -> R:
    """``fn(engine, *args)`` for a function of :mod:`dashboard.queries`, cached for a few seconds."""
    engine()  # a store problem shows as one clear message, not a traceback inside the cache
    try:
        return _run(settings().database_url_value, fn.__name__, args, tuple(sorted(kwargs.items())))  # type: ignore[return-value]
    except (OperationalError, DBAPIError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        st.error(f"The store did not answer ({reason}); the page retries on the next refresh.")
        st.stop()
        raise


@st.cache_resource(show_spinner=False)
def _last_scrapes() -> dict[tuple[str, ...], scorer_metrics.Scrape]:
    return {}


@st.cache_data(ttl=_TTL_S, show_spinner=False)
def _scorer_status(urls: tuple[str, ...]) -> tuple[scorer_metrics.Scrape, float | None]:
    current = scorer_metrics.scrape(urls)
    last = _last_scrapes()
    rate = scorer_metrics.per_minute(last.get(urls), current)
    last[urls] = current
    return current, rate


def scorer_status() -> tuple[scorer_metrics.Scrape, float | None] | None:
    """The scorers' Prometheus view (lag, scored per minute), or None when no endpoint is configured."""
    urls = tuple(scorer_metrics.endpoints(settings()))
    return _scorer_status(urls) if urls else None


def invalidate() -> None:
    """Forget cached query results, after the page itself changed the store (a silence, an acknowledgement)."""
    _run.clear()


def refresh_s() -> int:
    return settings().dashboard.refresh_s


def now() -> datetime:
    """Wall-clock UTC rounded down to the refresh interval, so queries in one interval share a cache entry."""
    step = refresh_s()
    return datetime.fromtimestamp(datetime.now(timezone.utc).timestamp() // step * step, timezone.utc)


def data_end(window_s: int) -> datetime:
    """The end of the newest aggregated window, or now: ranges are anchored where the data is (replays too)."""
    latest = query(queries.latest_window_start, window_s)
    return latest + timedelta(seconds=window_s) if latest else now()


def windows() -> list[int]:
    return sorted(settings().aggregator.windows_s)

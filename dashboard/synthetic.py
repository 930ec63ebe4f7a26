"""A synthetic store for the dashboard's tests, its load benchmark and the README screenshots.

It writes what the pipeline would have written (posts, post_tickers, aggregates, anomalies, risk
scores, alerts) for ``n_posts`` multilingual posts, with one injected event that the pages must
show: a burst of negative German posts about ``SPIKE_TICKER`` in the newest hour, which makes
anomalies, the top risk score and a firing alert. A million posts are written with bulk paths
(``executemany`` on SQLite, ``COPY`` on PostgreSQL) and the aggregates are computed in pandas,
because the point is to measure the dashboard against a big store, not to re-test the aggregator.

Deterministic for a given seed and ``end``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
from sqlalchemy import Engine, Table, insert

from alerts.model import fingerprint
from monitor.store.aggregate_tables import aggregates, anomalies, risk_scores
from monitor.store.alert_tables import alert_events, alerts, notifications
from monitor.store.tables import post_tickers, posts

LANGS = ["en", "de", "fr", "es", "ja", "zh", "pt", "it"]
LANG_WEIGHTS = [0.40, 0.12, 0.10, 0.10, 0.08, 0.08, 0.07, 0.05]
LANG_MOOD = {"en": 0.05, "de": 0.0, "fr": -0.05, "es": 0.1, "ja": 0.0, "zh": 0.15, "pt": -0.1, "it": 0.0}
TICKERS = ["AAPL", "MSFT", "TSLA", "NVDA", "AMZN", "SAP", "7203.T", "BABA", "VOW3.DE", "MC.PA", "ITX.MC", "PETR4.SA"]
SOURCES = ["reuters", "bloomberg", "x.com", "reddit", "stocktwits", "handelsblatt", "nikkei", "lesechos"]
SPIKE_TICKER, SPIKE_LANG = "TSLA", "de"
MODEL_VERSION = "synthetic-model-1"
WINDOWS = (60, 900, 3600)
HOSTILE_TEXT = "<script>alert('x')</script> [click me](javascript:alert(1)) ![img](http://evil.invalid/p.png) **bold**"

_TEMPLATES = {
    "en": {"negative": "${t} plunges after weak guidance, analysts cut targets",
           "neutral": "${t} to report quarterly results on Thursday",
           "positive": "${t} beats estimates, shares rally"},
    "de": {"negative": "${t} bricht nach Gewinnwarnung ein", "neutral": "${t} legt am Donnerstag Zahlen vor",
           "positive": "${t} übertrifft die Erwartungen, Aktie steigt"},
    "fr": {"negative": "${t} chute après un avertissement sur résultats", "neutral": "${t} publiera ses résultats jeudi",
           "positive": "${t} dépasse les attentes, le titre grimpe"},
    "es": {"negative": "${t} se desploma tras rebajar previsiones", "neutral": "${t} presentará resultados el jueves",
           "positive": "${t} supera las previsiones y sube en bolsa"},
    "ja": {"negative": "${t} 業績下方修正で株価急落", "neutral": "${t} 木曜日に決算発表予定",
           "positive": "${t} 予想を上回る決算で株価上昇"},
    "zh": {"negative": "${t} 业绩预警后股价暴跌", "neutral": "${t} 将于周四公布季度业绩", "positive": "${t} 业绩超预期，股价大涨"},
    "pt": {"negative": "${t} despenca após alerta de lucro", "neutral": "${t} divulga resultados na quinta-feira",
           "positive": "${t} supera expectativas e dispara"},
    "it": {"negative": "${t} crolla dopo il taglio delle stime", "neutral": "${t} pubblicherà i risultati giovedì",
           "positive": "${t} batte le attese, il titolo vola"},
}
_LABELS = np.array(["negative", "neutral", "positive"])


@dataclass(frozen=True)
class Seeded:
    """What was written, for assertions: the newest data time and the injected event."""

    end: datetime
    n_posts: int
    spike_post_ids: list[str]
    spike_window_start: datetime
    alert_fingerprint: str


def make_posts(n_posts: int, end: datetime, span: timedelta, seed: int = 7, hostile: bool = False) -> pd.DataFrame:
    """``n_posts`` scored posts in ``[end - span, end)``, the newest hour carrying the negative spike."""
    rng = np.random.default_rng(seed)
    n_spike = max(60, n_posts // 100)
    n_base = n_posts - n_spike
    span_s = span.total_seconds()
    offsets = np.sort(rng.uniform(0, span_s, n_base))
    spike_start = _spike_start(end)
    spike_offsets = (spike_start - (end - span)).total_seconds() + rng.uniform(0, 300, n_spike)
    seconds = np.concatenate([offsets, spike_offsets])
    lang = np.concatenate([rng.choice(LANGS, n_base, p=LANG_WEIGHTS), np.full(n_spike, SPIKE_LANG)])
    ticker_ix = rng.integers(0, len(TICKERS), len(seconds))
    has_ticker = rng.random(len(seconds)) < 0.7
    ticker = np.where(has_ticker, np.array(TICKERS)[ticker_ix], "")
    ticker[n_base:] = SPIKE_TICKER
    mood = np.vectorize(LANG_MOOD.get)(lang) + np.sin(seconds / 7200.0) * 0.3
    mood[n_base:] = -2.5
    logits = rng.normal(0, 1, (len(seconds), 3))
    logits[:, 0] -= mood
    logits[:, 2] += mood
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    label = _LABELS[probs.argmax(axis=1)]
    created = pd.to_datetime((end - span).timestamp() + seconds, unit="s", utc=True).as_unit("us")
    ids = [f"syn-{i:07d}" for i in range(len(seconds))]
    source = np.array(SOURCES)[rng.integers(0, len(SOURCES), len(seconds))]
    text = [_TEMPLATES[lg][lb].replace("{t}", tk or "market") for lg, lb, tk in zip(lang, label, ticker)]
    url = [f"https://news.example/{s}/{i}" for s, i in zip(source, ids)]
    if hostile:
        text[0], url[0] = HOSTILE_TEXT, "javascript:alert(document.cookie)"
    frame = pd.DataFrame({
        "id": ids, "text": text, "source": source, "created_at": created,
        "received_at": created + pd.Timedelta(milliseconds=200), "scored_at": created + pd.Timedelta(milliseconds=450),
        "lang": lang, "lang_declared": None, "lang_confidence": 0.97, "author": None, "url": url,
        "tickers": [json.dumps([t]) if t else "[]" for t in ticker], "label": label,
        "p_negative": probs[:, 0], "p_neutral": probs[:, 1], "p_positive": probs[:, 2],
        "score": probs[:, 2] - probs[:, 0], "model_version": MODEL_VERSION, "dedup_key": [f"{i:016x}" for i in range(len(ids))],
        "notes": "[]", "meta": "{}",
    })
    frame["ticker"] = ticker
    return frame


def _spike_start(end: datetime) -> datetime:
    """Six minutes before the end, so the newest windows (and the current risk ranking) carry the spike."""
    return _floor(end - timedelta(minutes=6), 60)


def _floor(t: datetime, step_s: int) -> datetime:
    return datetime.fromtimestamp(t.timestamp() // step_s * step_s, timezone.utc)


def make_aggregates(frame: pd.DataFrame, now: datetime) -> pd.DataFrame:
    """Every series of every window, as the aggregator would store them."""
    frame = frame.assign(**{f"is_{label}": (frame["label"] == label).astype("int64") for label in _LABELS})
    with_ticker = frame[frame["ticker"] != ""]
    kinds = {
        "all": (frame, pd.Series("*", index=frame.index)),
        "lang": (frame, frame["lang"]),
        "source": (frame, frame["source"]),
        "ticker": (with_ticker, with_ticker["ticker"]),
        "ticker_lang": (with_ticker, with_ticker["ticker"] + "|" + with_ticker["lang"]),
    }
    epoch = frame["created_at"].astype("int64") // 1_000_000
    parts = []
    for window_s in WINDOWS:
        for kind, (rows, key) in kinds.items():
            bucket = epoch.loc[rows.index] // window_s * window_s
            g = rows.assign(series_key=key, bucket=bucket).groupby(["series_key", "bucket"])
            out = g.agg(count=("id", "size"), n_negative=("is_negative", "sum"), n_neutral=("is_neutral", "sum"),
                        n_positive=("is_positive", "sum"), sum_score=("score", "sum")).reset_index()
            out["window_s"], out["series_kind"] = window_s, kind
            parts.append(out)
    agg = pd.concat(parts, ignore_index=True)
    agg["unique_count"] = agg["count"]
    agg["mean_score"] = agg["sum_score"] / agg["count"]
    agg["share_negative"] = agg["n_negative"] / agg["count"]
    agg["share_positive"] = agg["n_positive"] / agg["count"]
    agg["window_start"] = pd.to_datetime(agg["bucket"], unit="s", utc=True)
    agg["updated_at"] = now
    return agg.drop(columns="bucket")


def make_anomalies(agg: pd.DataFrame, frame: pd.DataFrame, spike_start: datetime, now: datetime) -> pd.DataFrame:
    """The injected spike in every series it touches, scored by robust z against the previous windows."""
    rows = []
    spike = frame[(frame["ticker"] == SPIKE_TICKER) & (frame["lang"] == SPIKE_LANG) & (frame["created_at"] >= spike_start)]
    for kind, key in (("lang", SPIKE_LANG), ("ticker", SPIKE_TICKER), ("ticker_lang", f"{SPIKE_TICKER}|{SPIKE_LANG}")):
        for window_s in (60, 900):
            series = agg[(agg["series_kind"] == kind) & (agg["series_key"] == key) & (agg["window_s"] == window_s)]
            series = series.sort_values("window_start")
            first = spike_start - pd.Timedelta(seconds=window_s - 1)  # windows that overlap the spike
            past = series[series["window_start"] < first]["mean_score"].tail(24)
            for row in series[series["window_start"] >= first].itertuples():
                baseline = float(past.median()) if len(past) else 0.0
                spread = float((past - baseline).abs().median()) if len(past) else 0.1
                z = (row.mean_score - baseline) / max(spread * 1.4826, 0.05)
                if row.count < 8:  # the spike windows are the anomalies by construction; z is reported as found
                    continue
                end = row.window_start + pd.Timedelta(seconds=window_s)
                ids = spike[(spike["created_at"] >= row.window_start) & (spike["created_at"] < end)]["id"]
                rows.append({"series_kind": kind, "series_key": key, "window_s": window_s,
                             "window_start": row.window_start, "window_end": end, "metric": "mean_score",
                             "detector": "robust_z", "direction": "down", "observed": float(row.mean_score),
                             "baseline": baseline, "spread": spread, "score": float(z), "volume": int(row.count),
                             "post_ids": json.dumps(list(ids[:200])), "detected_at": now})
    return pd.DataFrame(rows)


def make_risk(agg: pd.DataFrame, now: datetime) -> pd.DataFrame:
    """Risk per ticker and window from its shift against its own past (a stand-in for the aggregator's score)."""
    parts = []
    langs = agg[agg["series_kind"] == "ticker_lang"].assign(
        ticker=lambda d: d["series_key"].str.rsplit("|", n=1).str[0], lang=lambda d: d["series_key"].str.rsplit("|", n=1).str[1])
    negative_langs = (langs[langs["mean_score"] < -0.2].groupby(["window_s", "ticker", "window_start"])["lang"]
                      .agg(lambda s: sorted(s)).rename("languages"))
    for window_s in (900, 3600):
        t = agg[(agg["series_kind"] == "ticker") & (agg["window_s"] == window_s)].sort_values(["series_key", "window_start"])
        grouped = t.groupby("series_key")
        base_mean = grouped["mean_score"].transform(lambda s: s.shift(1).rolling(24, min_periods=1).median())
        base_count = grouped["count"].transform(lambda s: s.shift(1).rolling(24, min_periods=1).median())
        out = pd.DataFrame({"ticker": t["series_key"], "window_s": window_s, "window_start": t["window_start"],
                            "negative_shift": (base_mean - t["mean_score"]).fillna(0.0),
                            "volume_spike": (t["count"] / base_count).fillna(1.0)})
        out = out.join(negative_langs, on=["window_s", "ticker", "window_start"])
        out["languages"] = out["languages"].apply(lambda v: v if isinstance(v, list) else [])
        out["languages_negative"] = out["languages"].str.len()
        out["risk"] = (40 * out["negative_shift"].clip(lower=0) + 8 * (out["volume_spike"] - 1).clip(lower=0)
                       + 10 * out["languages_negative"]).clip(0, 100)
        parts.append(out)
    risk = pd.concat(parts, ignore_index=True)
    risk["languages"] = risk["languages"].map(json.dumps)
    risk["updated_at"] = now
    return risk


def _driver_rows(frame: pd.DataFrame, sqlite: bool) -> list[tuple]:
    frame = frame.copy()
    for name in frame.columns:
        if isinstance(frame[name].dtype, pd.DatetimeTZDtype):
            # SQLAlchemy's SQLite DateTime storage is naive UTC text; psycopg takes datetimes.
            frame[name] = (frame[name].dt.strftime("%Y-%m-%d %H:%M:%S.%f") if sqlite
                           else pd.Series(frame[name].dt.to_pydatetime(), index=frame.index, dtype=object))
    return list(frame.astype(object).where(frame.notna(), None).itertuples(index=False, name=None))


def bulk_insert(engine: Engine, table: Table, frame: pd.DataFrame, chunk: int = 50_000) -> None:
    """Append ``frame`` to ``table`` through the driver's fastest path; JSON columns must already be text."""
    columns = [c.name for c in table.columns if c.name in frame.columns]
    sqlite = engine.dialect.name == "sqlite"
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        if sqlite:
            sql = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
            for i in range(0, len(frame), chunk):
                cur.executemany(sql, _driver_rows(frame[columns].iloc[i : i + chunk], sqlite))
        else:
            quoted = ", ".join(f'"{c}"' for c in columns)
            with cur.copy(f'COPY "{table.name}" ({quoted}) FROM STDIN') as copy:
                for i in range(0, len(frame), chunk):
                    for row in _driver_rows(frame[columns].iloc[i : i + chunk], sqlite):
                        copy.write_row(row)
        raw.commit()
        if sqlite:  # fold the bulk write into the database file, as a long-running store would be
            cur.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        raw.close()


def seed_store(engine: Engine, n_posts: int = 3000, end: datetime | None = None, span: timedelta = timedelta(hours=24),
               seed: int = 7, hostile: bool = False) -> Seeded:
    """Fill a migrated, empty store; see the module docstring for what it contains."""
    end = _floor(end or datetime.now(timezone.utc), 60) + timedelta(minutes=1)
    frame = make_posts(n_posts, end, span, seed, hostile)
    spike_start = _spike_start(end)
    bulk_insert(engine, posts, frame)
    tickers = frame[frame["ticker"] != ""]
    bulk_insert(engine, post_tickers, pd.DataFrame({"post_id": tickers["id"], "ticker": tickers["ticker"],
                                                    "created_at": tickers["created_at"], "lang": tickers["lang"]}))
    agg = make_aggregates(frame, end)
    bulk_insert(engine, aggregates, agg)
    found = make_anomalies(agg, frame, spike_start, end)
    if not found.empty:
        bulk_insert(engine, anomalies, found)
    bulk_insert(engine, risk_scores, make_risk(agg, end))
    spike_ids = list(frame[(frame["ticker"] == SPIKE_TICKER) & (frame["lang"] == SPIKE_LANG)
                           & (frame["created_at"] >= spike_start)]["id"])
    fingerprint = _seed_alerts(engine, spike_start, end, spike_ids)
    return Seeded(end=end, n_posts=len(frame), spike_post_ids=spike_ids, spike_window_start=spike_start,
                  alert_fingerprint=fingerprint)


def _seed_alerts(engine: Engine, spike_start: datetime, end: datetime, spike_ids: Sequence[str]) -> str:
    firing = fingerprint("ticker_negative_turn", "ticker_lang", f"{SPIKE_TICKER}|{SPIKE_LANG}")
    resolved = fingerprint("language_volume_spike", "lang", "en")
    window_end = spike_start + timedelta(seconds=900)
    base = {"receivers": ["analysts"], "threshold": -0.3, "window_start": spike_start, "window_end": window_end,
            "evaluated_at": end, "last_true_at": end}
    rows = [
        {**base, "fingerprint": firing, "rule": "ticker_negative_turn", "severity": "critical", "state": "firing",
         "labels": {"rule": "ticker_negative_turn", "severity": "critical", "series_kind": "ticker_lang",
                    "series_key": f"{SPIKE_TICKER}|{SPIKE_LANG}", "ticker": SPIKE_TICKER, "lang": SPIKE_LANG},
         "annotations": {"summary": f"{SPIKE_TICKER} sentiment turned negative in {SPIKE_LANG}"},
         "value": -0.8, "series_kind": "ticker_lang", "series_key": f"{SPIKE_TICKER}|{SPIKE_LANG}",
         "post_ids": list(spike_ids[:200]), "active_since": spike_start, "fired_at": spike_start + timedelta(minutes=5),
         "resolved_at": None},
        {**base, "fingerprint": resolved, "rule": "language_volume_spike", "severity": "warning", "state": "resolved",
         "labels": {"rule": "language_volume_spike", "severity": "warning", "series_kind": "lang", "series_key": "en",
                    "lang": "en"},
         "annotations": {"summary": "volume spike in en"}, "value": 4.2, "series_kind": "lang", "series_key": "en",
         "window_start": end - timedelta(hours=5), "window_end": end - timedelta(hours=4, minutes=45),
         "post_ids": [], "active_since": end - timedelta(hours=5), "fired_at": end - timedelta(hours=5),
         "resolved_at": end - timedelta(hours=4)},
    ]
    events = [{"fingerprint": r["fingerprint"], "rule": r["rule"], "severity": r["severity"], "at": t, "state": s,
               "value": r["value"], "labels": r["labels"], "series_kind": r["series_kind"], "series_key": r["series_key"]}
              for r in rows for s, t in _transitions(r)]
    note = {"dedup_key": f"firing:{firing}", "kind": "firing", "channel": "email", "receiver": "analysts",
            "target": "analysts@example.com", "group_key": None, "subject": f"[FIRING] {SPIKE_TICKER} negative in {SPIKE_LANG}",
            "body": "Subject: test\n\nbody", "fingerprints": [firing], "status": "sent", "attempts": 1,
            "next_attempt_at": end, "claimed_until": None, "last_error": None,
            "created_at": spike_start + timedelta(minutes=5), "sent_at": spike_start + timedelta(minutes=5, seconds=2)}
    with engine.begin() as conn:
        conn.execute(insert(alerts), rows)
        conn.execute(insert(alert_events), events)
        conn.execute(insert(notifications), [note])
    return firing


def _transitions(row: dict) -> Iterable[tuple[str, datetime]]:
    yield "pending", row["active_since"]
    if row["fired_at"]:
        yield "firing", row["fired_at"]
    if row["resolved_at"]:
        yield "resolved", row["resolved_at"]

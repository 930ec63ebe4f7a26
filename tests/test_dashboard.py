"""The dashboard pages (streamlit AppTest) against a real store seeded with synthetic pipeline output."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from dashboard import synthetic
from dashboard.links import drilldown_params, iso
from monitor.store.db import open_store

APP = str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py")


def _seed(url: str, monkeypatch) -> synthetic.Seeded:
    engine = open_store(url)
    seed = synthetic.seed_store(engine, n_posts=3000, hostile=True)
    engine.dispose()
    monkeypatch.setenv("MONITOR_DATABASE_URL", url)
    return seed


@pytest.fixture
def seeded(store_url, monkeypatch):
    """Pages whose queries differ by backend run on SQLite and PostgreSQL."""
    return _seed(store_url, monkeypatch)


@pytest.fixture
def seeded_sqlite(tmp_path, monkeypatch):
    """For behaviour that does not depend on the backend (login, escaping, metrics)."""
    return _seed(f"sqlite:///{tmp_path / 'store.db'}", monkeypatch)


def run_page(page: str | None = None, timeout: float = 60, **params: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=timeout)
    if page:
        at.query_params["page"] = page
    for key, value in params.items():
        at.query_params[key] = value
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def figures(at: AppTest) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def table_with(at: AppTest, column: str) -> pd.DataFrame:
    """The first table showing ``column`` (read-only tables carry no key in AppTest)."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


def trace_names(fig: dict) -> set[str]:
    return {t.get("name") for t in fig["data"] if t.get("name")}


def test_overview_shows_every_language_anomalies_risk_and_kpis(seeded):
    at = run_page()
    assert [t.value for t in at.title] == ["Overview"]
    trend, risk = figures(at)
    assert set(synthetic.LANGS) | {"anomaly"} <= trace_names(trend)
    marker = next(t for t in trend["data"] if t.get("name") == "anomaly")
    assert {c[1] for c in marker["customdata"]} == {synthetic.SPIKE_LANG}
    assert risk["data"][0]["y"][-1] == synthetic.SPIKE_TICKER  # sorted ascending: the riskiest is drawn on top
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Firing alerts"] == "1"
    assert float(metrics["Posts / min"]) > 0
    assert metrics["Share negative"].endswith("%")


def test_overview_small_multiples_draw_one_panel_per_language(seeded_sqlite):
    at = run_page()
    at.radio(key="ov_layout").set_value("small multiples").run()
    assert not at.exception
    trend = figures(at)[0]
    titles = {a["text"] for a in trend["layout"]["annotations"]}
    assert set(synthetic.LANGS) <= titles


def test_ticker_view_shows_languages_sources_anomalies_and_alerts(seeded):
    at = run_page("ticker", ticker=synthetic.SPIKE_TICKER)
    timeline, heatmap, per_language = figures(at)
    assert synthetic.SPIKE_TICKER in trace_names(timeline) and "anomaly" in trace_names(timeline)
    assert any("ticker_negative_turn" in s.get("text", "") for s in timeline["layout"].get("annotations", []))
    assert synthetic.SPIKE_LANG in heatmap["data"][0]["y"]
    assert synthetic.SPIKE_LANG in trace_names(per_language)
    sources = table_with(at, "source")
    assert set(sources["source"]) <= set(synthetic.SOURCES) and sources["posts"].sum() > 0


def test_drilldown_link_opens_the_posts_of_the_series_window(seeded):
    start = seeded.spike_window_start
    params = drilldown_params("ticker_lang", f"{synthetic.SPIKE_TICKER}|{synthetic.SPIKE_LANG}", start,
                              start + timedelta(minutes=5))
    at = run_page("drilldown", **params)
    rows = at.dataframe(key="dd_posts").value
    assert len(rows) > 0
    assert set(rows["lang"]) == {synthetic.SPIKE_LANG}
    assert all(synthetic.SPIKE_TICKER in t for t in rows["tickers"])
    assert rows[["p_negative", "p_neutral", "p_positive"]].sum(axis=1).round(6).eq(1).all()


def test_drilldown_from_an_anomaly_shows_exactly_its_evidence(seeded, store_url):
    from sqlalchemy import select

    from monitor.store.aggregate_tables import anomalies

    engine = open_store(store_url)
    with engine.connect() as conn:
        row = conn.execute(select(anomalies).where(anomalies.c.series_kind == "ticker_lang", anomalies.c.window_s == 60)
                           .order_by(anomalies.c.window_start)).first()._mapping
    engine.dispose()
    params = drilldown_params(row["series_kind"], row["series_key"], row["window_start"], row["window_end"],
                              anomaly=row["id"])
    at = run_page("drilldown", **params)
    assert at.checkbox(key="dd_evidence").value is True
    rows = at.dataframe(key="dd_posts").value
    assert len(rows) == len(row["post_ids"]) > 0
    assert set(rows["lang"]) == {synthetic.SPIKE_LANG}


def test_drilldown_filters_by_text_and_label(seeded):
    params = drilldown_params("all", "*", seeded.end - timedelta(hours=24), seeded.end)
    at = run_page("drilldown", **params)
    at.text_input(key="dd_text").set_value("gewinnwarnung").run()  # case-insensitive
    rows = at.dataframe(key="dd_posts").value
    assert len(rows) > 0 and rows["text"].str.contains("Gewinnwarnung").all()
    at.multiselect(key="dd_labels").set_value(["positive"]).run()
    assert not at.exception
    assert not at.dataframe and any("No posts match" in i.value for i in at.info)


def test_drilldown_bad_link_is_reported_not_widened(seeded_sqlite):
    at = run_page("drilldown", series_kind="ticker", series_key="TSLA", start="yesterday", end="2025-01-01T00:00:00Z")
    assert any("'start' is not an ISO 8601 time" in e.value for e in at.error)


def test_hostile_post_is_never_rendered_as_markup_or_link(seeded_sqlite):
    hostile_start = seeded_sqlite.end - timedelta(hours=25)
    at = run_page("drilldown", **drilldown_params("all", "*", hostile_start, seeded_sqlite.end))
    at.text_input(key="dd_text").set_value("<script>").run()
    rows = at.dataframe(key="dd_posts").value
    assert list(rows["text"]) == [synthetic.HOSTILE_TEXT]
    assert rows["url"].isna().all()  # javascript: is never offered as a link
    rendered = " ".join(m.value for m in at.markdown) + " ".join(c.value for c in at.caption)
    assert "<script>" not in rendered and "javascript:" not in rendered


def test_model_page_versions_evaluation_and_drift(seeded, tmp_path, monkeypatch):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    monkeypatch.setenv("MONITOR_SCORER_MODEL_PATH", str(model_dir))
    at = run_page("model")
    assert any("no evaluation recorded" in i.value.lower() for i in at.info)
    assert table_with(at, "model_version")["model_version"].tolist() == [synthetic.MODEL_VERSION]
    shares, negative = figures(at)
    assert set(synthetic.LANGS) <= set(shares["data"][0]["x"][0])
    assert set(synthetic.LANGS) <= trace_names(negative)
    report = {"model_version": "m-1", "binary": False, "mean_language_macro_f1": 0.6,
              "overall": {"n": 30, "accuracy": 0.7, "macro_f1": 0.65, "classes": [], "confusion": []},
              "per_language": {"de": {"n": 10, "accuracy": 0.6, "macro_f1": 0.55, "classes": [], "confusion": []},
                               "en": {"n": 20, "accuracy": 0.8, "macro_f1": 0.75, "classes": [], "confusion": []}}}
    (model_dir / "eval.json").write_text(json.dumps({"model_version": "m-1", "precision": "fp32",
                                                     "sets": {"umsab": report}}))
    table = table_with(run_page("model"), "macro-F1")
    assert table["language"].tolist() == ["de", "en", "overall"]
    assert table["macro-F1"].tolist() == [0.55, 0.75, 0.65]


@pytest.mark.parametrize("page", ["overview", "ticker", "drilldown", "alerts", "model"])
def test_every_page_works_on_an_empty_store(page, tmp_path, monkeypatch):
    monkeypatch.setenv("MONITOR_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    at = run_page(page)
    assert not at.error


def test_unreachable_store_is_one_clear_message(monkeypatch):
    monkeypatch.setenv("MONITOR_DATABASE_URL", "postgresql://postgres@127.0.0.1:1/nothing")
    at = run_page()
    assert len(at.error) == 1 and "unavailable" in at.error[0].value
    assert not at.get("plotly_chart") and not at.metric


def test_password_gate(seeded_sqlite, monkeypatch):
    monkeypatch.setenv("MONITOR_DASHBOARD_PASSWORD", "s3cret")
    at = run_page()
    assert not at.title or at.title[0].value != "Overview"
    assert not at.get("plotly_chart")
    at.text_input[0].input("wrong")
    at.button[0].click().run()
    assert any("Wrong password" in e.value for e in at.error) and not at.get("plotly_chart")
    at.text_input[0].input("s3cret")
    at.button[0].click().run()
    assert not at.exception
    assert [t.value for t in at.title] == ["Overview"] and at.get("plotly_chart")


def test_oidc_login_is_required_when_configured(seeded_sqlite, tmp_path, monkeypatch):
    secrets = tmp_path / "secrets.toml"
    secrets.write_text('[auth]\nredirect_uri = "http://127.0.0.1:8501/oauth2callback"\ncookie_secret = "x"\n'
                       'client_id = "c"\nclient_secret = "s"\n'
                       'server_metadata_url = "http://127.0.0.1:9/.well-known/openid-configuration"\n')
    monkeypatch.setenv("MONITOR_DASHBOARD_OIDC_SECRETS_FILE", str(secrets))
    at = AppTest.from_file(APP, default_timeout=60)
    at.secrets["auth"] = {"redirect_uri": "http://127.0.0.1:8501/oauth2callback", "cookie_secret": "x",
                          "client_id": "c", "client_secret": "s",
                          "server_metadata_url": "http://127.0.0.1:9/.well-known/openid-configuration"}
    at.run()
    assert not at.exception
    assert [b.label for b in at.button] == ["Log in"]
    assert not at.get("plotly_chart")


def test_app_refuses_an_exposed_address_without_login(seeded_sqlite):
    from streamlit import config

    before = config.get_option("server.address")
    config.set_option("server.address", "0.0.0.0")
    try:
        at = run_page()
    finally:
        config.set_option("server.address", before)
    assert any("refusing to serve" in e.value for e in at.error)
    assert not at.get("plotly_chart")


def test_charts_and_tables_escape_series_names():
    from dashboard import charts

    frame = pd.DataFrame({"series_key": ["<b onmouseover=x>"], "window_start": [pd.Timestamp("2025-01-01", tz="UTC")],
                          "count": [3], "unique_count": [3], "n_negative": [1], "n_neutral": [1], "n_positive": [1],
                          "mean_score": [0.0], "share_negative": [0.3], "share_positive": [0.3]})
    fig = charts.trend_figure("source", frame, pd.DataFrame())
    assert {t.name for t in fig.data} == {"&lt;b onmouseover=x&gt;", "&lt;b onmouseover=x&gt; posts"}


def test_clicked_point_becomes_a_drilldown_link():
    from dashboard import charts
    from dashboard.links import parse_link
    from dashboard.views.common import clicked_params

    t0 = pd.Timestamp("2025-01-31T09:00:00", tz="UTC")
    frame = pd.DataFrame({"series_key": ["de"], "window_start": [t0], "count": [9], "unique_count": [9],
                          "n_negative": [9], "n_neutral": [0], "n_positive": [0], "mean_score": [-0.9],
                          "share_negative": [1.0], "share_positive": [0.0]})
    fig = charts.trend_figure("lang", frame, pd.DataFrame())
    event = {"selection": {"points": [{"customdata": list(fig.data[0].customdata[0])}]}}
    params = clicked_params(event, 60)
    link, errors = parse_link(params)
    assert not errors and (link.series_kind, link.series_key) == ("lang", "de")
    assert (link.start, link.end) == (t0.to_pydatetime(), (t0 + pd.Timedelta(minutes=1)).to_pydatetime())


def test_link_times_survive_an_unencoded_plus():
    from dashboard.links import parse_link

    link, errors = parse_link({"series_kind": "lang", "series_key": "de", "start": "2025-01-31T09:00:00 01:00",
                               "end": iso(pd.Timestamp("2025-01-31T09:00:00", tz="UTC").to_pydatetime())})
    assert not errors and link.start.hour == 8


def test_only_http_links_are_offered():
    from dashboard.safe import http_url, md

    assert http_url("https://example.com/a?b=1") == "https://example.com/a?b=1"
    for bad in ("javascript:alert(1)", "data:text/html,x", "//evil.example", "/relative", " https://x.y", None, 3):
        assert http_url(bad) is None
    assert md("[x](javascript:y) ![i](http://e/p.png) :red[x]") == (
        r"\[x\]\(javascript\:y\) \!\[i\]\(http\:\/\/e\/p\.png\) \:red\[x\]".replace(r"\/", "/"))


def test_no_page_scans_a_big_table(tmp_path, monkeypatch):
    """Every query the pages send is answered through an index (the 1M-post responsiveness rests on it)."""
    import re

    from sqlalchemy import Engine, event

    url = f"sqlite:///{tmp_path / 'plan.db'}"
    engine = open_store(url)
    seed = synthetic.seed_store(engine, n_posts=2000)
    monkeypatch.setenv("MONITOR_DATABASE_URL", url)
    sent: list[tuple[str, object]] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT"):
            sent.append((statement, parameters))

    event.listen(Engine, "before_cursor_execute", record)
    try:
        for page in ["overview", "ticker", "model", "alerts"]:
            run_page(page)
        run_page("drilldown", **drilldown_params("ticker", synthetic.SPIKE_TICKER, seed.end - timedelta(hours=2), seed.end))
        at = run_page("drilldown", **drilldown_params("lang", "de", seed.end - timedelta(hours=2), seed.end))
        at.text_input(key="dd_text").set_value("Zahlen").run()
    finally:
        event.remove(Engine, "before_cursor_execute", record)
    assert len(sent) > 10
    full_scan = re.compile(r"SCAN (posts|post_tickers|aggregates|anomalies|risk_scores)\b(?! USING)")
    with engine.connect() as conn:
        for statement, parameters in sent:
            plan = " | ".join(r[-1] for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters))
            assert not full_scan.search(plan), f"{plan}\n{statement}"
    engine.dispose()


def button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


def test_alerts_page_lists_alerts_history_notifications_and_received_mail(seeded, tmp_path):
    import smtplib
    from email.message import EmailMessage

    from alerts.smtp_sink import SmtpSink, mail_dir
    from monitor.config import load_settings

    with SmtpSink(mail_dir(load_settings().data_dir)) as sink:
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = "monitor@localhost", "analysts@example.com", "[FIRING] TSLA turned negative"
        msg.set_content("TSLA in de: -0.8")
        with smtplib.SMTP(sink.host, sink.port, timeout=10) as smtp:
            smtp.send_message(msg)
    at = run_page("alerts")
    firing = at.dataframe(key="al_firing").value
    assert firing["rule"].tolist() == ["ticker_negative_turn"] and firing["state"].tolist() == ["firing"]
    assert at.dataframe(key="al_resolved").value["rule"].tolist() == ["language_volume_spike"]
    history = table_with(at, "at")
    assert sorted(history["state"]) == ["firing", "firing", "pending", "pending", "resolved"]
    assert table_with(at, "channel")["subject"].tolist() == [f"[FIRING] {synthetic.SPIKE_TICKER} negative in {synthetic.SPIKE_LANG}"]
    assert at.dataframe(key="al_mail").value["subject"].tolist() == ["[FIRING] TSLA turned negative"]


def test_alerts_page_silences_and_acknowledges_through_the_alerts_concern(seeded, store_url):
    from alerts.silences import list_silences
    from monitor.schemas import utcnow

    at = run_page("alerts")
    at.text_area(key="al_matchers").input("ticker")
    button(at, "Silence").click().run()
    assert any("not a matcher" in e.value for e in at.error)
    at.text_area(key="al_matchers").input("ticker=TSLA\nlang=~de|fr")
    button(at, "Silence").click().run()
    assert not at.exception and any("Silence created" in s.value for s in at.success)
    at.session_state["al_selected"] = seeded.alert_fingerprint
    at.run()
    button(at, "Acknowledge").click().run()
    assert any("Acknowledged" in s.value for s in at.success)
    engine = open_store(store_url)
    made = {tuple(str(m) for m in s.matchers): s for s in list_silences(engine, utcnow())}
    engine.dispose()
    assert ("ticker=TSLA", "lang=~de|fr") in made
    ack = next(s for k, s in made.items() if "rule=ticker_negative_turn" in k)
    assert ack.mutes({"rule": "ticker_negative_turn", "severity": "critical", "series_kind": "ticker_lang",
                      "series_key": "TSLA|de", "ticker": "TSLA", "lang": "de"})
    assert not ack.mutes({"rule": "ticker_negative_turn", "severity": "critical", "series_kind": "ticker_lang",
                          "series_key": "TSLA|en", "ticker": "TSLA", "lang": "en"})
    assert len(at.dataframe(key="al_silences").value) == 2


def test_overview_reads_lag_and_throughput_from_the_scorers_metrics(seeded_sqlite, monkeypatch):
    from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

    from dashboard import scorer_metrics
    from monitor.config import get_settings

    registry = CollectorRegistry()
    lag = Gauge("monitor_scorer_lag", "lag", ["topic", "partition"], registry=registry)
    scored = Counter("monitor_scorer_scored", "scored", registry=registry)
    lag.labels("posts.raw", "0").set(40)
    lag.labels("posts.raw", "1").set(2)
    scored.inc(500)
    server, _thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    url = f"http://127.0.0.1:{server.server_port}/metrics"
    try:
        first = scorer_metrics.scrape([url])
        assert (first.lag, first.scored, first.failed) == (42, 500, [])
        scored.inc(120)
        later = scorer_metrics.scrape([url]).model_copy(update={"at": first.at + 60})
        assert scorer_metrics.per_minute(first, later) == 120
        assert scorer_metrics.per_minute(later, first.model_copy(update={"at": later.at + 60})) is None  # restart
        monkeypatch.setenv("MONITOR_DASHBOARD_METRICS_URLS", json.dumps([url]))
        metrics = {m.label: m.value for m in run_page().metric}
        assert metrics["Consumer lag"] == "42"
    finally:
        server.shutdown()
    monkeypatch.setenv("MONITOR_DASHBOARD_METRICS_URLS", json.dumps(["http://127.0.0.1:1/metrics"]))
    get_settings.cache_clear()  # the app reads settings once per process, like the server does
    at = run_page()
    assert any("Scorer metrics unreachable" in w.value for w in at.warning)


def test_monitor_dashboard_refuses_an_exposed_address_without_login(monkeypatch, capsys):
    from monitor.cli import main

    monkeypatch.setenv("MONITOR_DASHBOARD_HOST", "0.0.0.0")
    assert main(["dashboard"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "refusing to serve the dashboard on 0.0.0.0" in err[0]


def test_login_setup_problems_are_one_line_each(tmp_path, monkeypatch):
    from dashboard import server
    from monitor.config import load_settings
    from monitor.errors import UserError

    monkeypatch.setenv("MONITOR_DASHBOARD_HOST", "0.0.0.0")
    monkeypatch.setenv("MONITOR_DASHBOARD_OIDC_SECRETS_FILE", str(tmp_path / "missing.toml"))
    with pytest.raises(UserError, match="does not exist"):
        server.preflight(load_settings())
    partial = tmp_path / "secrets.toml"
    partial.write_text('[auth]\nredirect_uri = "http://h/oauth2callback"\nclient_id = "c"\n')
    monkeypatch.setenv("MONITOR_DASHBOARD_OIDC_SECRETS_FILE", str(partial))
    with pytest.raises(UserError, match=r"\[auth\] lacks cookie_secret, client_secret, server_metadata_url"):
        server.preflight(load_settings())
    monkeypatch.setenv("MONITOR_DASHBOARD_PASSWORD", "x")
    with pytest.raises(UserError, match="both set"):
        server.preflight(load_settings())

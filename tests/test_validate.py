"""Every bad input has a defined outcome: refused with a reason, or accepted with the repair recorded."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.validate import MAX_META_BYTES, Accepted, Rejected, ValidationOptions, validate_message

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)
OPTIONS = ValidationOptions(max_text_chars=1000, max_future_skew_s=300)


BASE = {"id": "p1", "text": "Acme beats estimates", "created_at": "2026-03-02T11:00:00Z"}


def check(value) -> Accepted | Rejected:
    """A dict is merged into a good post; bytes and str are sent as they are."""
    if isinstance(value, dict):
        value = json.dumps({**BASE, **value})
    if isinstance(value, str):
        value = value.encode("utf-8")
    return validate_message(value, NOW, OPTIONS)


def rejected(value, stage: str) -> str:
    out = check(value)
    assert isinstance(out, Rejected), out
    assert out.stage == stage
    return out.reason


def accepted(value) -> Accepted:
    out = check(value)
    assert isinstance(out, Accepted), out
    return out


def test_a_good_post_passes_untouched():
    created = "2026-03-02T11:00:00+01:00"
    out = accepted({"created_at": created, "lang": "en", "url": "https://news.example/acme", "tickers": ["acme"]})
    assert out.notes == []
    assert out.post.created_at == datetime(2026, 3, 2, 10, 0, tzinfo=timezone.utc)
    assert out.post.url == "https://news.example/acme"


@pytest.mark.parametrize("value, stage, reason", [
    (None, "decode", "no value"),
    (b"", "decode", "not JSON"),
    (b"Acme beats estimates", "decode", "not JSON"),
    (b'{"id": "p1", "text": "caf\xe9"}', "decode", "UTF-8"),
    (b'{"id": "p1", "text": "x", "meta": {"v": NaN}}', "decode", "NaN"),
    (b"[" * 100_000 + b"]" * 100_000, "decode", "nested"),
    (b'["id", "text"]', "validate", "JSON object"),
    (b'"just a string"', "validate", "JSON object"),
    (b"42", "validate", "JSON object"),
])
def test_undecodable_or_non_object_messages_are_refused(value, stage, reason):
    out = validate_message(value, NOW, OPTIONS)
    assert isinstance(out, Rejected) and out.stage == stage
    assert reason in out.reason


@pytest.mark.parametrize("obj, field", [
    ({"text": "no id"}, "id"),
    ({"id": "p1"}, "text"),
    ({"id": 1.5, "text": "float id"}, "id"),
    ({"id": True, "text": "bool id"}, "id"),
    ({"id": "p1", "text": 42}, "text"),
    ({"id": "p1", "text": "x", "tickers": "AAPL"}, "tickers"),
    ({"id": "p1", "text": "x", "created_at": "yesterday"}, "created_at"),
    ({"id": "p1", "text": "x", "meta": [1, 2]}, "meta"),
    ({"id": "p\n1", "text": "x"}, "id"),
])
def test_missing_or_wrong_typed_fields_are_refused_naming_the_field(obj, field):
    reason = rejected(json.dumps(obj), "validate")
    assert reason.startswith(field) or f"; {field}" in reason


@pytest.mark.parametrize("text", ["", "   ", "\n\t \u3000", "\u0000\u0000"])
def test_empty_or_whitespace_text_is_refused(text):
    reason = rejected(json.dumps({"id": "p1", "text": text}), "validate")
    assert "text" in reason


def test_integer_ids_are_accepted_as_strings():
    assert accepted({"id": 12345}).post.id == "12345"


def test_a_megabyte_of_text_is_truncated_and_the_truncation_recorded():
    out = accepted({"text": "x" * 1_000_000})
    assert len(out.post.text) == OPTIONS.max_text_chars
    assert out.notes == [f"text truncated from 1000000 to {OPTIONS.max_text_chars} characters"]


def test_timestamps_without_a_zone_are_taken_as_utc():
    out = accepted({"created_at": "2026-03-02T09:30:00"})
    assert out.post.created_at == datetime(2026, 3, 2, 9, 30, tzinfo=timezone.utc)
    assert any("no time zone" in n for n in out.notes)


def test_far_future_timestamps_are_clamped_to_receive_time_keeping_the_original():
    future = NOW + timedelta(days=400)
    out = accepted({"created_at": future.isoformat()})
    assert out.post.created_at == NOW
    assert any(future.isoformat() in n and "future" in n for n in out.notes)
    # a little clock skew is not a repair
    near = NOW + timedelta(seconds=60)
    assert accepted({"created_at": near.isoformat()}).post.created_at == near


def test_missing_created_at_is_receive_time():
    out = accepted(json.dumps({"id": "p1", "text": "Acme beats estimates"}))
    assert out.post.created_at == NOW
    assert out.notes == ["no created_at: receive time used"]


@pytest.mark.parametrize("url", ["javascript:alert(1)", "file:///etc/passwd", "data:text/html,x", "ftp://x/y",
                                 "http://", "not a url"])
def test_urls_that_are_not_http_are_dropped_and_noted(url):
    out = accepted({"url": url})
    assert out.post.url is None
    assert any("url" in n for n in out.notes)


@pytest.mark.parametrize("lang, noted", [(7, True), ("x" * 100, True), ({"code": "en"}, True), ("EN-us", False)])
def test_unusable_declared_languages_are_ignored_for_detection(lang, noted):
    out = accepted({"lang": lang})
    if noted:
        assert out.post.lang is None and any("lang" in n for n in out.notes)
    else:
        assert out.post.lang == "EN-us"  # normalised later by monitor.enrich


def test_nul_and_lone_surrogates_are_removed_so_every_store_and_encoder_takes_the_post():
    raw = b'{"id": "p1", "text": "Acme\\u0000 up \\ud800", "author": "a\\u0000b", "meta": {"k\\udfff": ["\\u0000"]}}'
    out = check(raw)
    assert isinstance(out, Accepted)
    assert out.post.text == "Acme up \ufffd" and out.post.author == "ab"
    assert out.post.meta == {"k\ufffd": [""]}
    assert any("NUL or invalid" in n for n in out.notes)
    out.post.model_dump_json().encode("utf-8")


def test_oversized_meta_is_dropped_so_the_scored_post_fits_in_a_message():
    out = accepted({"meta": {"blob": "y" * (MAX_META_BYTES + 1)}})
    assert out.post.meta == {}
    assert any("meta" in n for n in out.notes)


def test_a_utf8_bom_is_tolerated():
    assert isinstance(check(b"\xef\xbb\xbf" + json.dumps({"id": "p1", "text": "t"}).encode()), Accepted)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_raise(value):
    assert isinstance(validate_message(value, NOW, OPTIONS), (Accepted, Rejected))


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
                     | st.text(), lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
                     max_leaves=10)


@settings(max_examples=300, deadline=None)
@given(st.fixed_dictionaries({}, optional={"id": st.one_of(st.text(), st.integers(), _json), "text": st.text(),
                                           "lang": _json, "url": st.text(), "created_at": _json, "meta": _json,
                                           "tickers": _json, "author": _json}))
def test_arbitrary_objects_either_refused_or_serialisable(obj):
    out = validate_message(json.dumps(obj).encode(), NOW, OPTIONS)
    if isinstance(out, Accepted):
        out.post.model_dump_json().encode("utf-8")  # what the producer and the store will do
        assert out.post.created_at.tzinfo is not None and out.post.text.strip()

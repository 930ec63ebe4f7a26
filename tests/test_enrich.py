"""Enrichment: tickers from cashtags, exchange codes and multilingual names; the dedup key; languages."""

from __future__ import annotations

import pytest

from ingest.synthetic import company_names
from monitor.enrich import (DEFAULT_ALIASES, TickerExtractor, dedup_key, dedup_parts, enrich, extract_tickers,
                            ticker_extractor)
from monitor.errors import UserError
from monitor.schemas import RawPost


@pytest.fixture(scope="module")
def x() -> TickerExtractor:
    return TickerExtractor.from_file(DEFAULT_ALIASES)


@pytest.mark.parametrize("text, expected", [
    ("$AAPL and $aapl, then $MSFT", ["AAPL", "MSFT"]),
    ("$BRK.B holds; $7203.T and $0700.HK", ["BRK.B", "7203.T", "0700.HK"]),
    ("600519.SS, 000001.SZ, 7203.T, SAP.DE and 0700.HK all move.", ["600519.SS", "000001.SZ", "7203.T", "SAP.DE",
                                                                     "0700.HK"]),
    ("$TM is Toyota's ADR; 600519.SH is Moutai; 00700.HK is Tencent", ["7203.T", "600519.SS", "0700.HK"]),
    ("Apple and Siemens rally; APPLE CRASH; apple pie; Apples", ["AAPL", "SIE.DE"]),
    ("苹果股价大涨，贵州茅台下跌", ["AAPL", "600519.SS"]),
    ("トヨタが急騰、SAPが第4四半期報告書を提出", ["7203.T", "SAP.DE"]),
    ("$MSFT股价上涨", ["MSFT"]),
    ("Toyotas Gewinn steigt", ["7203.T"]),
    ("وأبل تهبط ولتسلا; حساب", ["AAPL", "TSLA"]),
])
def test_tickers_from_text(x, text, expected):
    assert x.extract(text) == expected


@pytest.mark.parametrize("text", [
    "price $5.5B and $100M, up 3.5 T-bills",
    "visit www.SAP.DE or write to ir@SIE.DE",
    "U.S. data, e.g. inflation at 3.2%",
    "Vale a pena investir?",  # Portuguese "worth it", not the miner
])
def test_no_false_tickers(x, text):
    assert x.extract(text) == []


def test_unknown_cashtags_and_declared_tickers_keep_their_form(x):
    assert x.extract("$MOON to the moon and $XYZ.L", declared=["$aapl", " tm ", "foo"]) == ["AAPL", "7203.T", "FOO",
                                                                                          "MOON", "XYZ.L"]


def test_every_feed_company_name_maps_to_its_ticker(x):
    for ticker, names in company_names().items():
        for lang, name in names.items():
            text = {"zh": f"{name}股价大涨", "ja": f"{name}株が急騰"}.get(lang, f"Stock of {name} rises")
            assert x.extract(text) == [ticker], (lang, name)


def test_alias_file_from_settings_replaces_the_default(tmp_path, monkeypatch):
    aliases = tmp_path / "aliases.yaml"
    aliases.write_text("ACME.DE:\n  names: [Acme, アクメ]\n  codes: [ACMEY]\n", encoding="utf-8")
    monkeypatch.setenv("MONITOR_AGGREGATOR_ALIASES_FILE", str(aliases))
    assert extract_tickers("Acme beats, $ACMEY up, アクメ株 and Apple") == ["ACME.DE"]  # no Apple in this list
    [e] = enrich([RawPost(id="1", text="Acme fällt", lang="de")])
    assert e.tickers == ["ACME.DE"]


@pytest.mark.parametrize("content, message", [
    ("AAPL: [Apple\n", "line"),
    ("AAPL:\n  names: [Apple]\n  tickers: [x]\n", "AAPL.tickers"),
    ("AAPL:\n  names: [Apple]\nMSFT:\n  names: [Apple]\n", "'Apple' is given for both AAPL and MSFT"),
])
def test_bad_alias_files_say_what_is_wrong(tmp_path, content, message):
    path = tmp_path / "aliases.yaml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(UserError, match=message):
        TickerExtractor.from_file(path)
    with pytest.raises(UserError, match="does not exist"):
        TickerExtractor.from_file(tmp_path / "missing.yaml")


STORY = "Apple shares fall 5% after weak iPhone sales in China as demand cools"


@pytest.mark.parametrize("copy", [
    STORY,
    f"RT @markets: {STORY}",
    f"{STORY} https://t.co/abc123",
    f"{STORY} - Reuters",
    f"[Reuters] {STORY}",
    f"BREAKING: {STORY}",
    f"  {STORY.upper()}!!",
])
def test_wrapped_copies_share_the_key(copy):
    assert dedup_key(copy) == dedup_key(STORY)


@pytest.mark.parametrize("other", [
    STORY.replace("5%", "4%"),
    STORY.replace("Apple", "Toyota"),
    STORY + " - analysts say",  # a lower-case tail is content, not an outlet
])
def test_different_stories_differ(other):
    assert dedup_parts(dedup_key(other)).core != dedup_parts(dedup_key(STORY)).core


def test_truncated_copy_shares_the_head_only():
    full, cut = dedup_parts(dedup_key(STORY)), dedup_parts(dedup_key(STORY[:52] + "…"))
    assert cut.truncated and not full.truncated
    assert cut.head == full.head and cut.core != full.core


def test_old_style_keys_count_as_exact():
    parts = dedup_parts("0" * 32)
    assert parts.core == parts.head == "0" * 32 and not parts.truncated


@pytest.mark.parametrize("mode", ["accurate", "compact"])
def test_enrich_keeps_declared_language_and_detects_missing_ones(mode, monkeypatch):
    monkeypatch.setenv("MONITOR_SCORER_LANGID", mode)
    posts = [RawPost(id="1", text="Die Siemens-Aktie steigt nach starken Zahlen deutlich", lang="DE-de"),
             RawPost(id="2", text="Die Siemens-Aktie steigt nach starken Zahlen deutlich"),
             RawPost(id="3", text="🚀🚀🚀 $$$"),
             RawPost(id="4", text="贵州茅台股价大涨", lang="not a code")]
    e = enrich(posts)
    assert (e[0].lang, e[0].lang_confidence, e[0].lang_declared) == ("de", None, "DE-de")
    assert e[1].lang == "de" and e[1].lang_confidence is not None and e[1].lang_confidence > 0.5
    assert e[2].lang == "und" and e[2].tickers == []
    assert e[3].lang == "zh" and e[3].notes and e[3].tickers == ["600519.SS"]
    assert e[0].tickers == e[1].tickers == ["SIE.DE"] and e[0].dedup_key == e[1].dedup_key


def test_extractor_is_built_once_per_file():
    assert ticker_extractor() is ticker_extractor()

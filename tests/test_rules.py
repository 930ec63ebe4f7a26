"""The rules file: valid files load with defaults applied; every mistake names its line."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from alerts.durations import format_duration, parse_duration
from alerts.rules import AggregateRule, RulesError, load_rules, parse_rules

ROOT = Path(__file__).resolve().parent.parent

HEAD = """\
receivers:
  desk:
    email: [desk@example.com]
defaults:
  receivers: [desk]
rules:
"""


def _errors(body: str) -> str:
    with pytest.raises(RulesError) as err:
        parse_rules(HEAD + body, Path("r.yaml"))
    return str(err.value)


def test_example_rules_file_is_valid_and_applies_defaults():
    ruleset = load_rules(ROOT / "configs" / "rules.example.yaml")
    names = [r.name for r in ruleset.rules]
    assert {"ticker-negative-share", "ticker-negative-multilingual", "language-mood-drop", "ticker-risk"} <= set(names)
    share = ruleset.rule("ticker-negative-share")
    assert isinstance(share, AggregateRule)
    assert share.for_ == timedelta(minutes=2) and share.keep_firing_for == timedelta(minutes=5)  # from defaults
    assert ruleset.rule("language-mood-drop").receivers == ["analysts"]  # a rule's own value wins
    assert ruleset.grouping("analysts").group_by == ["ticker"]
    assert ruleset.where("ticker-negative-share").startswith(str(ROOT / "configs" / "rules.example.yaml") + " line ")


def test_a_bad_duration_names_its_line_and_field():
    msg = _errors("  - name: r1\n    kind: aggregate\n    above: 0.5\n    for: 5 minutes\n")
    assert msg == "r.yaml line 10: rules[0].for (rule 'r1'): '5 minutes' is not a duration: write e.g. 90s, 15m, 1h30m or 2d"


def test_every_problem_is_reported_once_with_its_line():
    body = ("  - name: ok\n    kind: risk\n    above: 80\n"          # lines 7-9
            "  - name: two-thresholds\n    kind: aggregate\n    above: 0.5\n    below: 0.1\n"  # 10-13
            "  - name: extra\n    kind: anomaly\n    score_below: -3\n    colour: red\n"  # 14-17
            "  - name: nokind\n    above: 1\n")  # 18-19
    lines = _errors(body).splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("r.yaml line 10: rules[1] (rule 'two-thresholds'): give exactly one of `above` or `below`")
    assert lines[1].startswith("r.yaml line 17: rules[2].colour (rule 'extra'): Extra inputs are not permitted")
    assert lines[2].startswith("r.yaml line 18: rules[3] (rule 'nokind'):") and "kind" in lines[2]


def test_unknown_receiver_and_duplicate_names_point_at_the_rule():
    body = "  - name: a\n    kind: risk\n    above: 80\n    receivers: [nobody]\n  - name: a\n    kind: risk\n    above: 90\n"
    lines = _errors(body).splitlines()
    assert lines[0].startswith("r.yaml line 10: rules[0].receivers (rule 'a'): unknown receiver 'nobody'")
    assert lines[1].startswith("r.yaml line 11: rules[1]: a second rule named 'a'")


def test_scope_must_fit_the_series():
    msg = _errors("  - name: s\n    kind: aggregate\n    series: lang\n    above: 0.5\n    match: {ticker: [AAPL]}\n")
    assert "line 7" in msg and "match.ticker needs a series that has a ticker" in msg


def test_yaml_syntax_error_names_the_line():
    with pytest.raises(RulesError, match=r"r.yaml line 3: not valid YAML"):
        parse_rules("receivers:\n  desk: {email: [a@b.c]\nrules: [\n", Path("r.yaml"))


@pytest.mark.parametrize("hook, problem", [
    ("{url: 'https://user:secret@hooks.example.com/x'}", "credentials do not belong in the rules file"),
    ("{url: 'https://hooks.slack.com/services/T/B/X', format: slack}", "a Slack webhook URL is a secret"),
    ("{url: 'ftp://example.com/x'}", "http:// or https://"),
    ("{url_env: 'not a name'}", "not an environment variable name"),
])
def test_secrets_stay_out_of_the_rules_file(hook, problem):
    text = f"receivers:\n  hook:\n    webhooks: [{hook}]\nrules:\n  - {{name: r, kind: risk, above: 80, receivers: [hook]}}\n"
    with pytest.raises(RulesError, match="line 3") as err:
        parse_rules(text, Path("r.yaml"))
    assert problem in str(err.value)


def test_missing_webhook_secret_is_reported_at_load(monkeypatch):
    text = ("receivers:\n  hook:\n    webhooks: [{url_env: ALERT_TEST_HOOK_URL, format: slack}]\n"
            "rules:\n  - {name: r, kind: risk, above: 80, receivers: [hook]}\n")
    ruleset = parse_rules(text, Path("r.yaml"))
    monkeypatch.delenv("ALERT_TEST_HOOK_URL", raising=False)
    assert ruleset.missing_secrets() and "ALERT_TEST_HOOK_URL" in ruleset.missing_secrets()[0]
    monkeypatch.setenv("ALERT_TEST_HOOK_URL", "http://127.0.0.1:1/x")
    assert ruleset.missing_secrets() == []


def test_bad_email_address_is_refused():
    text = "receivers:\n  d:\n    email: ['x@y.z\\r\\nBcc: evil@example.com']\nrules:\n  - {name: r, kind: risk, above: 80, receivers: [d]}\n"
    with pytest.raises(RulesError, match="line 3.*is not an e-mail address"):
        parse_rules(text, Path("r.yaml"))


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("15m", 900), ("1h30m", 5400), ("2d", 172800), (30, 30)])
def test_durations(text, seconds):
    assert parse_duration(text) == timedelta(seconds=seconds)
    assert parse_duration(format_duration(timedelta(seconds=seconds))) == timedelta(seconds=seconds)


@pytest.mark.parametrize("bad", ["5 minutes", "m5", "-1s", "", True])
def test_bad_durations(bad):
    with pytest.raises(ValueError):
        parse_duration(bad)

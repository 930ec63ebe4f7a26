"""The rules file: what to watch, how long it must hold, who hears about it, and how they are grouped.

A YAML file validated by pydantic; every problem is reported with its line (``RulesError``). The
file holds no credentials: SMTP auth comes from the settings, and a webhook whose URL is a secret
(Slack's are) names an environment variable or secrets file with ``url_env`` instead of a ``url``.
See ``configs/rules.example.yaml`` for every field in use.
"""

from __future__ import annotations

import fnmatch
import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from alerts.durations import Duration
from monitor.yamldoc import YamlDocument, yaml_error_line
from monitor.errors import UserError

Severity = Literal["info", "warning", "critical"]
SeriesKind = Literal["all", "lang", "ticker", "ticker_lang", "source"]
Metric = Literal["share_negative", "share_positive", "mean_score", "volume"]
SERIES_KINDS: tuple[str, ...] = ("all", "lang", "ticker", "ticker_lang", "source")
# Which label each series kind carries: scoping by a label only makes sense on series that have it.
SERIES_LABELS: dict[str, tuple[str, ...]] = {
    "all": (), "lang": ("lang",), "ticker": ("ticker",), "ticker_lang": ("ticker", "lang"), "source": ("source",),
}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_EMAIL = re.compile(r"^[^@\s<>,;:\"()\[\]\\]+@[A-Za-z0-9.-]+$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class RulesError(UserError):
    """The rules file is missing or invalid; ``str()`` is one line per problem, each with its line."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class Match(_Strict):
    """Scope of a rule: shell-style patterns per label (``AAPL``, ``7203.*``), case-insensitive; empty = any."""

    ticker: list[str] = []
    lang: list[str] = []
    source: list[str] = []

    def accepts(self, labels: dict[str, str]) -> bool:
        for name in ("ticker", "lang", "source"):
            patterns = getattr(self, name)
            if patterns and not any(fnmatch.fnmatchcase(labels.get(name, "").casefold(), p.casefold()) for p in patterns):
                return False
        return True

    def used_labels(self) -> set[str]:
        return {name for name in ("ticker", "lang", "source") if getattr(self, name)}


class _Threshold(_Strict):
    above: float | None = None
    below: float | None = None

    @model_validator(mode="after")
    def _one_threshold(self) -> "_Threshold":
        if (self.above is None) == (self.below is None):
            raise ValueError("give exactly one of `above` or `below`")
        return self

    @property
    def threshold(self) -> float:
        return self.above if self.above is not None else self.below  # type: ignore[return-value]

    def breached(self, value: float) -> bool:
        return value > self.above if self.above is not None else value < self.below  # type: ignore[operator]


class _RuleBase(_Strict):
    name: str
    description: str = ""
    severity: Severity = "warning"
    receivers: list[str] = Field(min_length=1)
    for_: Duration = Field(timedelta(0), alias="for", description="the condition must hold this long to fire")
    keep_firing_for: Duration = Field(timedelta(0), description="keep firing this long after the condition stops")
    cooldown: Duration = Field(timedelta(0), description="after a resolve, the same alert cannot fire again this soon")
    interval: Duration = Field(timedelta(minutes=1), description="how often the rule is evaluated")
    match: Match = Match()

    @field_validator("name")
    @classmethod
    def _name_ok(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError("a rule name is 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit")
        return v

    @field_validator("interval")
    @classmethod
    def _interval_positive(cls, v: timedelta) -> timedelta:
        if v < timedelta(seconds=1):
            raise ValueError("interval must be at least 1s")
        return v

    def series_kinds(self) -> tuple[str, ...]:
        raise NotImplementedError


class AggregateRule(_Threshold, _RuleBase):
    """A windowed metric of each matching series crosses a threshold, with enough posts behind it."""

    kind: Literal["aggregate"]
    series: SeriesKind = "ticker_lang"
    metric: Metric = "share_negative"
    window: Duration = timedelta(minutes=15)
    min_posts: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _scope_fits_series(self) -> "AggregateRule":
        _check_scope(self.match, (self.series,))
        return self

    def series_kinds(self) -> tuple[str, ...]:
        return (self.series,)


class AnomalyRule(_RuleBase):
    """The aggregator flagged an anomaly (e.g. robust z below -3) on a matching series, recently."""

    kind: Literal["anomaly"]
    series: list[SeriesKind] = list(SERIES_KINDS)  # type: ignore[assignment]
    metric: list[str] = []  # anomaly metrics (mean_score, share_negative, volume); empty = any
    detector: list[str] = []  # robust_z, ewma...; empty = any
    direction: Literal["down", "up"] | None = None
    score_below: float | None = None
    score_above: float | None = None
    min_volume: int = Field(0, ge=0)
    within: Duration = Field(timedelta(minutes=15), description="an anomaly counts this long after its window ends")

    @model_validator(mode="after")
    def _one_bound(self) -> "AnomalyRule":
        if (self.score_below is None) == (self.score_above is None):
            raise ValueError("give exactly one of `score_below` or `score_above`")
        _check_scope(self.match, tuple(self.series))
        return self

    @property
    def threshold(self) -> float:
        return self.score_below if self.score_below is not None else self.score_above  # type: ignore[return-value]

    def breached(self, score: float) -> bool:
        return score < self.score_below if self.score_below is not None else score > self.score_above  # type: ignore[operator]

    def series_kinds(self) -> tuple[str, ...]:
        return tuple(self.series)


class RiskRule(_RuleBase):
    """A ticker's risk score (0..100, from the aggregator) is above a level."""

    kind: Literal["risk"]
    above: float = Field(ge=0, le=100)
    window: Duration = timedelta(minutes=15)

    @model_validator(mode="after")
    def _scope_fits_series(self) -> "RiskRule":
        _check_scope(self.match, ("ticker",))
        return self

    @property
    def threshold(self) -> float:
        return self.above

    def series_kinds(self) -> tuple[str, ...]:
        return ("ticker",)


class LanguagesRule(_Threshold, _RuleBase):
    """The same ticker crosses a threshold in at least ``min_languages`` languages at once."""

    kind: Literal["languages"]
    min_languages: int = Field(2, ge=2)
    metric: Metric = "share_negative"
    window: Duration = timedelta(minutes=15)
    min_posts: int = Field(1, ge=1, description="per language")

    @model_validator(mode="after")
    def _scope_fits_series(self) -> "LanguagesRule":
        _check_scope(self.match, ("ticker_lang",))
        return self

    def series_kinds(self) -> tuple[str, ...]:
        return ("ticker_lang",)


Rule = Annotated[Union[AggregateRule, AnomalyRule, RiskRule, LanguagesRule], Field(discriminator="kind")]
RULE_KINDS = ("aggregate", "anomaly", "risk", "languages")


def _check_scope(match: Match, kinds: tuple[str, ...]) -> None:
    for label in match.used_labels():
        if not any(label in SERIES_LABELS[k] for k in kinds):
            raise ValueError(f"match.{label} needs a series that has a {label} "
                             f"({', '.join(k for k in SERIES_KINDS if label in SERIES_LABELS[k])}); "
                             f"this rule watches {', '.join(kinds)}")


class Webhook(_Strict):
    url: str | None = None
    url_env: str | None = Field(None, description="environment variable or secrets file holding the URL")
    format: Literal["json", "slack"] = "json"
    headers_env: dict[str, str] = Field({}, description="header name -> variable holding its value")

    @model_validator(mode="after")
    def _url_from_one_place(self) -> "Webhook":
        if (self.url is None) == (self.url_env is None):
            raise ValueError("give exactly one of `url` or `url_env`")
        if self.url is not None:
            if not re.match(r"^https?://[^\s/]+", self.url):
                raise ValueError("url must be an http:// or https:// URL")
            if "@" in self.url.split("/", 3)[2]:
                raise ValueError("credentials do not belong in the rules file: put the URL in an environment "
                                 "variable (or secrets file) and name it with url_env")
            if self.format == "slack":
                raise ValueError("a Slack webhook URL is a secret: put it in an environment variable (or "
                                 "secrets file) and name it with url_env")
        for name in [self.url_env or "", *self.headers_env.values()]:
            if name and not _ENV_NAME.match(name):
                raise ValueError(f"{name!r} is not an environment variable name")
        return self

    @property
    def target(self) -> str:
        """What the outbox stores: the URL, or ``env:NAME`` so that a secret URL never reaches the store."""
        return self.url if self.url is not None else f"env:{self.url_env}"


class Grouping(_Strict):
    group_by: list[str] = ["ticker"]
    group_wait: Duration = Field(timedelta(seconds=30), description="wait for related alerts before the first notice")
    group_interval: Duration = Field(timedelta(minutes=5), description="wait between notices about one group")
    repeat_interval: Duration = Field(timedelta(hours=4), description="re-send a group that is still firing")


class Receiver(_Strict):
    email: list[str] = []
    webhooks: list[Webhook] = []
    kafka: bool = Field(False, description="publish on the alerts topic")
    send_resolved: bool = True
    digest: bool = Field(True, description="a daily summary e-mail to each address")
    group_by: list[str] | None = None
    group_wait: Duration | None = None
    group_interval: Duration | None = None
    repeat_interval: Duration | None = None

    @field_validator("email")
    @classmethod
    def _addresses(cls, v: list[str]) -> list[str]:
        for address in v:
            if not _EMAIL.match(address):
                raise ValueError(f"{address!r} is not an e-mail address (name@domain)")
        return v

    @model_validator(mode="after")
    def _somewhere(self) -> "Receiver":
        if not (self.email or self.webhooks or self.kafka):
            raise ValueError("a receiver needs at least one of email, webhooks or kafka: true")
        return self

    def grouping(self, route: Grouping) -> Grouping:
        overrides = {k: getattr(self, k) for k in Grouping.model_fields if getattr(self, k) is not None}
        return route.model_copy(update=overrides)


class Inhibit(_Strict):
    """While an alert matching ``source`` fires, alerts matching ``target`` with the same ``equal`` labels are muted."""

    source: dict[str, str]
    target: dict[str, str]
    equal: list[str] = []


class RuleFile(_Strict):
    route: Grouping = Grouping()
    receivers: dict[str, Receiver] = Field(min_length=1)
    rules: list[Rule] = Field(min_length=1)
    inhibit: list[Inhibit] = []



class RuleSet:
    """A validated rules file, with the line of each rule for later messages."""

    def __init__(self, spec: RuleFile, path: Path, lines: dict[str, int]) -> None:
        self.spec = spec
        self.path = path
        self.lines = lines

    @property
    def rules(self) -> list[Rule]:
        return list(self.spec.rules)

    def rule(self, name: str) -> Rule | None:
        return next((r for r in self.spec.rules if r.name == name), None)

    def receiver(self, name: str) -> Receiver | None:
        return self.spec.receivers.get(name)

    def grouping(self, receiver: str) -> Grouping:
        return self.spec.receivers[receiver].grouping(self.spec.route)

    def where(self, rule_name: str) -> str:
        line = self.lines.get(rule_name)
        return f"{self.path} line {line}" if line else str(self.path)

    def missing_secrets(self) -> list[str]:
        """Webhook variables that are set nowhere (checked at start, so a typo is not found at 3 a.m.)."""
        out = []
        for name, receiver in self.spec.receivers.items():
            for hook in receiver.webhooks:
                for var in [hook.url_env or "", *hook.headers_env.values()]:
                    if var and secret_value(var) is None:
                        out.append(f"{self.path}: receiver {name!r} needs {var}, which is neither in the environment "
                                   f"nor in MONITOR_SECRETS_DIR")
        return out


def secret_value(name: str) -> str | None:
    """A secret from the environment, or from a file of that name in ``MONITOR_SECRETS_DIR``."""
    if os.environ.get(name):
        return os.environ[name]
    folder = os.environ.get("MONITOR_SECRETS_DIR")
    if folder and (Path(folder) / name).is_file():
        return (Path(folder) / name).read_text(encoding="utf-8").strip()
    return None


def _defaults(data: dict[str, Any]) -> dict[str, Any]:
    """``defaults:`` fills fields every rule leaves out (a rule's own value wins)."""
    defaults = data.pop("defaults", None) or {}
    if not isinstance(defaults, dict):
        raise RulesError("defaults must be a mapping of rule fields")
    if defaults and isinstance(data.get("rules"), list):
        data["rules"] = [{**defaults, **r} if isinstance(r, dict) else r for r in data["rules"]]
    return data


def _where(loc: tuple[Any, ...]) -> str:
    out = ""
    for i, step in enumerate(loc):
        if isinstance(step, int):
            out += f"[{step}]"
        elif i > 0 and isinstance(loc[i - 1], int) and step in RULE_KINDS:
            continue  # pydantic's union tag, not a field of the file
        else:
            out += f".{'for' if step == 'for_' else step}" if out else str(step)
    return out


def parse_rules(text: str, path: Path) -> RuleSet:
    try:
        doc = YamlDocument(text)
    except yaml.YAMLError as exc:
        raise RulesError(f"{path}{yaml_error_line(exc)}") from None
    if not isinstance(doc.data, dict):
        raise RulesError(f"{path}: the top level must be a mapping with receivers and rules")
    data = _defaults(dict(doc.data))
    try:
        spec = RuleFile.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple("for" if s == "for_" else s for s in err["loc"])
            line = doc.line_of(loc)
            name = ""
            if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
                rule = data["rules"][loc[1]]
                name = f" (rule {rule['name']!r})" if isinstance(rule, dict) and rule.get("name") else ""
            msg = err["msg"].removeprefix("Value error, ")
            problems.append(f"{path} line {line or '?'}: {_where(loc) or 'file'}{name}: {msg}")
        raise RulesError("\n".join(problems)) from None
    problems = _reference_problems(spec, doc, path)
    if problems:
        raise RulesError("\n".join(problems))
    lines = {rule.name: doc.lines.get(("rules", i), 0) for i, rule in enumerate(spec.rules)}
    return RuleSet(spec, path, lines)


def _reference_problems(spec: RuleFile, doc: YamlDocument, path: Path) -> list[str]:
    problems, seen = [], set()
    for i, rule in enumerate(spec.rules):
        if rule.name in seen:
            problems.append(f"{path} line {doc.line_of(('rules', i, 'name'))}: rules[{i}]: "
                            f"a second rule named {rule.name!r}; rule names must be unique")
        seen.add(rule.name)
        unknown = [r for r in rule.receivers if r not in spec.receivers]
        if unknown:
            problems.append(f"{path} line {doc.line_of(('rules', i, 'receivers'))}: rules[{i}].receivers "
                            f"(rule {rule.name!r}): unknown receiver {', '.join(map(repr, unknown))} "
                            f"(defined: {', '.join(spec.receivers)})")
    return problems


def load_rules(path: Path | str) -> RuleSet:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RulesError(f"rules file {path} does not exist (MONITOR_ALERTS_RULES_FILE)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesError(f"rules file {path} cannot be read: {exc}") from None
    return parse_rules(text, path)

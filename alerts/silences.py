"""Silences: label matchers that mute matching alerts until they expire (like Alertmanager's).

A silence mutes notifications only; the alert keeps its state, so when the silence ends while the
alert still fires, the receiver hears about it (it was never told).
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator
from sqlalchemy import Engine, insert, select, update

from monitor.errors import UserError
from monitor.store.alert_tables import silences

_MATCHER = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$")


class Matcher(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    op: Literal["=", "!=", "=~", "!~"]
    value: str

    @field_validator("value")
    @classmethod
    def _regex_compiles(cls, v: str, info) -> str:
        if info.data.get("op") in ("=~", "!~"):
            try:
                re.compile(v)
            except re.error as exc:
                raise ValueError(f"{v!r} is not a regular expression: {exc}") from None
        return v

    def matches(self, labels: dict[str, str]) -> bool:
        got = labels.get(self.name, "")
        if self.op == "=":
            return got == self.value
        if self.op == "!=":
            return got != self.value
        hit = re.fullmatch(self.value, got) is not None
        return hit if self.op == "=~" else not hit

    def __str__(self) -> str:
        return f"{self.name}{self.op}{self.value}"


def parse_matcher(text: str) -> Matcher:
    """``ticker=AAPL``, ``lang=~de|fr``, ``rule!=volume-spike``."""
    m = _MATCHER.match(text)
    if not m:
        raise UserError(f"{text!r} is not a matcher: write label=value, label!=value, label=~regex or label!~regex")
    try:
        return Matcher(name=m.group(1), op=m.group(2), value=m.group(3))  # type: ignore[arg-type]
    except ValidationError as exc:
        raise UserError(f"matcher {text!r}: {exc.errors()[0]['msg'].removeprefix('Value error, ')}") from None


class Silence(BaseModel):
    id: str
    matchers: list[Matcher]
    starts_at: datetime
    ends_at: datetime
    created_by: str
    comment: str
    created_at: datetime

    def active(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at

    def mutes(self, labels: dict[str, str]) -> bool:
        return all(m.matches(labels) for m in self.matchers)


def create_silence(engine: Engine, matchers: list[Matcher], *, duration: timedelta, now: datetime,
                   created_by: str, comment: str, starts_at: datetime | None = None) -> Silence:
    if not matchers:
        raise UserError("a silence needs at least one matcher (e.g. ticker=AAPL); it would mute everything")
    if duration <= timedelta(0):
        raise UserError("a silence needs a positive duration (e.g. --for 2h)")
    start = starts_at or now
    silence = Silence(id=str(uuid.uuid4()), matchers=matchers, starts_at=start, ends_at=start + duration,
                      created_by=created_by[:200], comment=comment, created_at=now)
    with engine.begin() as conn:
        conn.execute(insert(silences).values(**silence.model_dump(exclude={"matchers"}),
                                             matchers=[m.model_dump() for m in matchers]))
    return silence


def list_silences(engine: Engine, now: datetime, include_expired: bool = False) -> list[Silence]:
    stmt = select(silences)
    if not include_expired:
        stmt = stmt.where(silences.c.ends_at > now)
    with engine.connect() as conn:
        rows = conn.execute(stmt.order_by(silences.c.starts_at)).all()
    return [Silence(**{**r._mapping, "matchers": [Matcher(**m) for m in r.matchers]}) for r in rows]


def expire_silence(engine: Engine, silence_id: str, now: datetime) -> None:
    """End a silence now; an id prefix is enough when it is unambiguous."""
    with engine.begin() as conn:
        ids = list(conn.execute(select(silences.c.id).where(silences.c.id.startswith(silence_id, autoescape=True),
                                                            silences.c.ends_at > now)).scalars())
        if not ids:
            raise UserError(f"no active silence with id {silence_id!r} (see: monitor alerts silence list)")
        if len(ids) > 1:
            raise UserError(f"id {silence_id!r} matches {len(ids)} silences; give more of it")
        conn.execute(update(silences).where(silences.c.id == ids[0]).values(ends_at=now))

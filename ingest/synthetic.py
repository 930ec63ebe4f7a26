"""A synthetic multilingual financial feed with known ground truth, for demos, tests and benchmarks.

Pure Python, seeded, no Kafka: :func:`generate` yields :class:`~monitor.schemas.RawPost` in event-time
order, with timestamps in *simulated* time (hours of traffic in seconds); :func:`paced` yields the same
stream in real time for demos. Producers put the posts on ``posts.raw`` themselves.

Steady traffic is a Poisson stream over (language, ticker) cells with a fixed label mix. Episodes
(:class:`Episode`) change the cells they name for a while, and are the truth a detector is scored on:

* ``negative_burst``: the share of negative posts jumps to ``negative_share`` (volume times ``volume_factor``);
* ``volume_spike``: volume times ``volume_factor``, label mix unchanged;
* ``drift``: the negative share moves linearly from the steady mix to ``negative_share`` over the episode;
* ``crisis``: a burst in several languages at once (name them all in ``langs``).

Each post's ``meta["synthetic"]`` says what it was meant to be: ``intended_label``, ``lang``,
``tickers``, ``episode`` (name or None) and ``duplicate_of`` (the id of the story it syndicates, or None;
a share ``duplicate_share`` of posts are such copies: verbatim, retweeted, attributed, truncated).
Texts come from ``synthetic_text.yaml``: clear-cut positive, neutral and negative headlines in
en, zh, de, fr, es, ja, ar and pt, so that a real sentiment model labels them well.

>>> from datetime import datetime, timezone
>>> config = FeedConfig(seed=1, start=datetime(2026, 1, 5, tzinfo=timezone.utc), duration_s=60)
>>> posts = list(generate(config))   # about rate x 60 posts
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from monitor.schemas import RawPost, ScoredPost, Scores

LABELS = ("negative", "neutral", "positive")
LANGUAGES = ("en", "zh", "de", "fr", "es", "ja", "ar", "pt")
DEFAULT_LANGUAGE_WEIGHTS = {"en": 0.30, "zh": 0.12, "de": 0.10, "fr": 0.10, "es": 0.10, "ja": 0.10, "ar": 0.08, "pt": 0.10}
SOURCES = ("newswire", "social", "forum", "blog")
_DECIMAL_COMMA = {"de", "fr", "es", "pt"}
_US_LISTED = {"AAPL", "MSFT", "NVDA", "TSLA"}  # referred to by cashtag; the others by exchange code


@lru_cache(maxsize=1)
def text_bank() -> dict[str, Any]:
    """Company names, templates and slot values per language (``synthetic_text.yaml``)."""
    return yaml.safe_load((Path(__file__).with_name("synthetic_text.yaml")).read_text(encoding="utf-8"))


def company_names() -> dict[str, dict[str, str]]:
    """``{ticker: {lang: name as the feed writes it}}``: what enrichment must map back to the ticker."""
    return text_bank()["companies"]


class Episode(BaseModel):
    """One injected anomaly: what changes, where, from when (seconds after the feed start) and how long."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    kind: Literal["negative_burst", "volume_spike", "drift", "crisis"]
    offset_s: float = Field(ge=0)
    duration_s: float = Field(gt=0)
    tickers: list[str] = Field(min_length=1)
    langs: list[str] = Field(min_length=1)
    negative_share: float = Field(0.8, ge=0, le=1, description="target negative share (not used by volume_spike)")
    volume_factor: float = Field(1.0, ge=1, le=100, description="rate multiplier of the cells named")

    @model_validator(mode="after")
    def _kind_consistent(self) -> "Episode":
        if self.kind == "volume_spike" and self.volume_factor <= 1:
            raise ValueError(f"episode {self.name!r}: a volume_spike needs volume_factor > 1")
        if self.kind == "crisis" and len(self.langs) < 2:
            raise ValueError(f"episode {self.name!r}: a crisis spans at least two languages")
        return self

    def window(self, feed_start: datetime) -> tuple[datetime, datetime]:
        """The true anomaly interval ``[start, end)`` in event time."""
        start = feed_start + timedelta(seconds=self.offset_s)
        return start, start + timedelta(seconds=self.duration_s)

    def negative_share_at(self, progress: float, steady: float) -> float | None:
        """Negative share in the episode's cells at ``progress`` (0..1), or None: steady mix."""
        if self.kind == "volume_spike":
            return None
        if self.kind == "drift":
            return steady + (self.negative_share - steady) * progress
        return self.negative_share


class FeedConfig(BaseModel):
    """Everything that determines the feed; the same config (and seed) gives the same posts."""

    model_config = ConfigDict(extra="forbid")

    seed: int = 0
    start: datetime | None = Field(None, description="event time of the first second; None: now")
    duration_s: float | None = Field(None, gt=0, description="simulated seconds to generate; None: endless")
    rate: float = Field(20.0, gt=0, le=100_000, description="steady posts per simulated second, all languages")
    languages: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_LANGUAGE_WEIGHTS))
    tickers: list[str] = Field(default_factory=lambda: list(company_names()))
    label_mix: dict[str, float] = Field(default_factory=lambda: {"negative": 0.2, "neutral": 0.5, "positive": 0.3})
    duplicate_share: float = Field(0.05, ge=0, lt=1, description="share of posts that syndicate a recent story")
    declared_lang_share: float = Field(0.5, ge=0, le=1, description="share of posts that declare their language")
    cashtag_share: float = Field(0.2, ge=0, le=1, description="tickers written as $TAG / exchange code, not a name")
    episodes: list[Episode] = Field(default_factory=list)

    @field_validator("start")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        if v is not None and v.tzinfo is None:
            raise ValueError("start must be timezone-aware (UTC)")
        return v.astimezone(timezone.utc) if v is not None else None

    @model_validator(mode="after")
    def _known(self) -> "FeedConfig":
        unknown_langs = set(self.languages) - set(LANGUAGES)
        if unknown_langs:
            raise ValueError(f"languages {sorted(unknown_langs)} have no templates; use some of {LANGUAGES}")
        if not self.languages or min(self.languages.values()) < 0 or sum(self.languages.values()) <= 0:
            raise ValueError("languages needs at least one positive weight")
        unknown = set(self.tickers) - set(company_names())
        if unknown or not self.tickers:
            raise ValueError(f"tickers must be some of {sorted(company_names())} (got unknown {sorted(unknown)})")
        if set(self.label_mix) != set(LABELS) or min(self.label_mix.values()) < 0 or sum(self.label_mix.values()) <= 0:
            raise ValueError(f"label_mix needs non-negative weights for exactly {LABELS}")
        for ep in self.episodes:
            if set(ep.tickers) - set(self.tickers) or set(ep.langs) - set(self.languages):
                raise ValueError(f"episode {ep.name!r} names tickers or languages that the feed does not carry")
        if len({ep.name for ep in self.episodes}) != len(self.episodes):
            raise ValueError("episode names must be unique")
        return self

    @classmethod
    def demo(cls, start: datetime | None = None, seed: int = 7, rate: float = 20.0) -> "FeedConfig":
        """A live demo at 20 posts/s: ten steady minutes (baselines warm up), then one episode of each
        kind within the first 50 minutes, each strong enough to be seen at that volume."""
        episodes = [
            Episode(name="burst-de-siemens", kind="negative_burst", offset_s=600, duration_s=300,
                    tickers=["SIE.DE"], langs=["de"], negative_share=0.85, volume_factor=4),
            Episode(name="spike-ja-toyota", kind="volume_spike", offset_s=1080, duration_s=240,
                    tickers=["7203.T"], langs=["ja"], volume_factor=6),
            Episode(name="crisis-tesla", kind="crisis", offset_s=1500, duration_s=420, tickers=["TSLA"],
                    langs=["en", "de", "zh", "es", "fr"], negative_share=0.85, volume_factor=4),
            Episode(name="drift-zh-moutai", kind="drift", offset_s=2100, duration_s=900,
                    tickers=["600519.SS"], langs=["zh"], negative_share=0.8, volume_factor=2),
        ]
        return cls(seed=seed, start=start, rate=rate, episodes=episodes)


def _now_second() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


class _Writer:
    """Fills templates: the only place that knows how posts are worded."""

    def __init__(self, rng: random.Random, cashtag_share: float) -> None:
        self.rng = rng
        self.cashtag_share = cashtag_share
        bank = text_bank()
        self.companies, self.templates = bank["companies"], bank["templates"]
        self.days, self.quarters, self.outlets = bank["days"], bank["quarters"], bank["outlets"]

    def text(self, lang: str, label: str, ticker: str) -> str:
        r = self.rng
        if r.random() < self.cashtag_share:
            co = f"${ticker}" if ticker in _US_LISTED else ticker
        else:
            co = self.companies[ticker][lang]
        pct = f"{r.uniform(0.5, 12.0):.1f}"
        if lang in _DECIMAL_COMMA:
            pct = pct.replace(".", ",")
        return r.choice(self.templates[lang][label]).format(
            co=co, pct=pct, n=r.randint(2, 999), m=r.randint(2, 36), q=r.choice(self.quarters[lang]), day=r.choice(self.days[lang]))

    def syndicate(self, text: str, lang: str) -> str:
        """A copy of a story as another outlet or account republishes it."""
        r = self.rng
        outlet = r.choice(self.outlets[lang])
        variants = [
            lambda: text,
            lambda: f"RT @{''.join(ch for ch in outlet if ch.isalnum()).lower() or 'news'}_fin: {text}",
            lambda: f"{text} - {outlet}",
            lambda: f"{text} https://news.example/{lang}/{r.randrange(10**8):08d}",
            lambda: f"[{outlet}] {text}",
        ]
        if len(text) >= 64:  # previews cut long posts, not short headlines
            variants.append(lambda: text[: max(48, int(len(text) * 0.7))].rstrip() + "…")
        return r.choice(variants)()


def _cell_table(config: FeedConfig) -> tuple[list[tuple[str, str]], np.ndarray]:
    """(lang, ticker) cells and their steady rates: languages by weight, tickers mildly skewed."""
    lang_total = sum(config.languages.values())
    ticker_w = np.array([1.0 / (1.0 + 0.15 * i) for i in range(len(config.tickers))])
    ticker_w /= ticker_w.sum()
    cells, rates = [], []
    for lang, lw in config.languages.items():
        for ticker, tw in zip(config.tickers, ticker_w):
            cells.append((lang, ticker))
            rates.append(config.rate * lw / lang_total * tw)
    return cells, np.array(rates)


def generate(config: FeedConfig) -> Iterator[RawPost]:
    """Posts in event-time order over simulated time; endless unless ``config.duration_s`` is set."""
    start = config.start or _now_second()
    rng = random.Random(config.seed)
    counts_rng = np.random.default_rng(config.seed)
    writer = _Writer(rng, config.cashtag_share)
    cells, steady_rates = _cell_table(config)
    cell_index = {cell: i for i, cell in enumerate(cells)}
    mix_total = sum(config.label_mix.values())
    steady = [config.label_mix[x] / mix_total for x in LABELS]
    windows = [(ep, *ep.window(start)) for ep in config.episodes]
    recent: list[deque[RawPost]] = [deque(maxlen=50) for _ in cells]  # stories a copy can syndicate
    serial = 0
    second = 0
    while config.duration_s is None or second < config.duration_s:
        t0 = start + timedelta(seconds=second)
        rates = steady_rates.copy()
        neg_share: dict[int, tuple[float, str]] = {}
        episode_of: dict[int, str] = {}
        for ep, ep_start, ep_end in windows:
            if not ep_start <= t0 < ep_end:
                continue
            progress = (t0 - ep_start).total_seconds() / ep.duration_s
            share = ep.negative_share_at(progress, steady[0])
            for lang in ep.langs:
                for ticker in ep.tickers:
                    i = cell_index[(lang, ticker)]
                    rates[i] *= ep.volume_factor
                    episode_of[i] = ep.name
                    if share is not None:
                        neg_share[i] = (share, ep.name)
        step = min(1.0, config.duration_s - second) if config.duration_s is not None else 1.0
        counts = counts_rng.poisson(rates * step)
        events: list[tuple[float, int]] = [(rng.random() * step, i) for i in np.flatnonzero(counts)
                                          for _ in range(int(counts[i]))]
        events.sort()
        for offset, i in events:
            lang, ticker = cells[i]
            created = t0 + timedelta(seconds=offset)
            serial += 1
            pool = recent[i]
            if pool and rng.random() < config.duplicate_share:
                yield _copy(rng.choice(pool), writer, f"syn{config.seed}-{serial:09d}", created, config, rng)
                continue
            if i in neg_share:
                ns = neg_share[i][0]
                rest = steady[1] + steady[2]
                probs = [ns, (1 - ns) * steady[1] / rest, (1 - ns) * steady[2] / rest]
            else:
                probs = steady
            label = rng.choices(LABELS, weights=probs)[0]
            post = _post(f"syn{config.seed}-{serial:09d}", writer.text(lang, label, ticker), lang, ticker, label,
                         created, episode_of.get(i), config, rng)
            pool.append(post)
            yield post
        second += 1


def _post(post_id: str, text: str, lang: str, ticker: str, label: str, created: datetime, episode: str | None,
          config: FeedConfig, rng: random.Random) -> RawPost:
    source = rng.choice(SOURCES)
    return RawPost.model_construct(  # valid by construction; validation would double the feed's cost
        id=post_id, text=text, source=source, created_at=created,
        lang=lang if rng.random() < config.declared_lang_share else None,
        author=f"{source}-{rng.randrange(500):03d}",
        url=f"https://{source}.example/{lang}/{post_id}",
        tickers=[], meta={"synthetic": {"intended_label": label, "lang": lang, "tickers": [ticker],
                                        "episode": episode, "duplicate_of": None}},
    )


def _copy(original: RawPost, writer: _Writer, post_id: str, created: datetime, config: FeedConfig,
          rng: random.Random) -> RawPost:
    truth = dict(original.meta["synthetic"])
    truth["duplicate_of"] = truth["duplicate_of"] or original.id
    source = rng.choice([s for s in SOURCES if s != original.source])
    return original.model_copy(update={
        "id": post_id, "text": writer.syndicate(original.text, truth["lang"]), "source": source,
        "created_at": created, "author": f"{source}-{rng.randrange(500):03d}",
        "url": f"https://{source}.example/{truth['lang']}/{post_id}", "meta": {"synthetic": truth}})


def paced(config: FeedConfig, speed: float = 1.0, sleep: Callable[[float], None] = time.sleep,
          clock: Callable[[], float] = time.monotonic) -> Iterator[RawPost]:
    """The same stream in real time (``speed`` x faster), for demos: each post is yielded at its event time.

    With ``config.start`` unset the feed starts now, so event times match the wall clock at speed 1.
    """
    if speed <= 0:
        raise ValueError("speed must be positive")
    config = config if config.start is not None else config.model_copy(update={"start": _now_second()})
    assert config.start is not None
    began = clock()
    for post in generate(config):
        assert post.created_at is not None
        due = (post.created_at - config.start).total_seconds() / speed
        wait = due - (clock() - began)
        if wait > 0:
            sleep(wait)
        yield post


def scored_stand_in(posts: Iterable[RawPost], *, seed: int = 0, accuracy: float = 0.9,
                    received_lag_s: float = 0.5) -> Iterator[ScoredPost]:
    """Scored posts without a model: the intended label kept with probability ``accuracy``, else
    another one, with noisy probabilities. A documented stand-in for the classifier, so that
    aggregation and detection benchmarks measure the detector, not the model (nor CPU time spent on
    it). Tickers and dedup keys come from the real enrichment; the language from the feed's truth.
    """
    from monitor.enrich import dedup_key, ticker_extractor

    extractor = ticker_extractor()
    rng = random.Random(seed)
    for post in posts:
        truth = post.meta["synthetic"]
        label = truth["intended_label"]
        if rng.random() >= accuracy:
            label = rng.choice([x for x in LABELS if x != label])
        top = rng.uniform(0.55, 0.97)
        others = [x for x in LABELS if x != label]
        split = rng.random()
        probs = {label: top, others[0]: (1 - top) * split, others[1]: (1 - top) * (1 - split)}
        assert post.created_at is not None
        received = post.created_at + timedelta(seconds=received_lag_s)
        yield ScoredPost.model_construct(
            id=post.id, text=post.text, source=post.source, created_at=post.created_at, received_at=received,
            lang=truth["lang"], lang_declared=post.lang, author=post.author, url=post.url,
            lang_confidence=None, tickers=extractor.extract(post.text, post.tickers), meta=post.meta, label=label,
            scores=Scores.model_construct(**probs), score=probs["positive"] - probs["negative"],
            model_version="synthetic-stand-in", scored_at=received, dedup_key=dedup_key(post.text), notes=[])

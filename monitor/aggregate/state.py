"""One window's posts and its per-(series, language) sums, kept exact under re-delivery and re-scoring.

The sums are a cache of a pure function of the window's set of posts (keyed by post id): adding a
post that is already there with the same content changes nothing, a post id that comes back with
another content (re-scored) replaces the old one, and the order of arrival never matters. That is
what makes live aggregation, a restart and a backfill agree.

Sums are kept per language ("parts") because one aggregator owns the languages of its Kafka
partitions: several aggregators write disjoint parts, and ``aggregates`` is their sum. Posts with
the same language, source and tickers share one tuple of part keys (``Contribution.parts``), so a
post costs one lookup per window, not one per series.
"""

from __future__ import annotations

from collections.abc import Iterable

from monitor.aggregate.dedup import StoryIndex
from monitor.aggregate.records import Contribution, PartKey, Series
from monitor.aggregate.windows import WindowKey

# Part sums: count (every post), unique (stories), negative, neutral, positive (unique posts), score sum (nano).
COUNT, UNIQUE, NEGATIVE, NEUTRAL, POSITIVE, SCORE = range(6)


class _Row:
    """The sums of every part a combination of (language, source, tickers) counts in."""

    __slots__ = ("keys", "sums", "dirty")

    def __init__(self, keys: tuple[PartKey, ...], sums: list[list[int]]) -> None:
        self.keys = keys
        self.sums = sums
        self.dirty = False


class WindowState:
    __slots__ = ("key", "posts", "stories", "parts", "_rows", "_dirty")

    def __init__(self, key: WindowKey) -> None:
        self.key = key
        self.posts: dict[str, Contribution] = {}
        self.stories = StoryIndex()
        self.parts: dict[PartKey, list[int]] = {}
        self._rows: dict[str, _Row] = {}  # Contribution.combo -> its sums
        self._dirty: list[_Row] = []  # rows changed since the last write

    @property
    def dirty(self) -> bool:
        return bool(self._dirty)

    def _row(self, c: Contribution) -> _Row:
        row = self._rows.get(c.combo)
        if row is None:
            parts = self.parts
            row = self._rows[c.combo] = _Row(c.parts, [parts.get(pk) or parts.setdefault(pk, [0, 0, 0, 0, 0, 0])
                                                       for pk in c.parts])
        return row

    def _mark(self, row: _Row) -> None:
        if not row.dirty:
            row.dirty = True
            self._dirty.append(row)

    def add(self, c: Contribution, *, mark: bool = True) -> bool:
        """Add or replace a post; False when it was already there unchanged. ``mark=False`` (posts loaded
        from the store) leaves the parts unmarked: another aggregator may own that language."""
        posts = self.posts
        size = len(posts)
        old = posts.setdefault(c.id, c)
        if len(posts) == size:  # the id was there already
            if old == c:  # re-delivered, or loaded before it arrived: its parts are ours to write now
                if mark:
                    self._mark(self._row(c))
                return False
            self._remove(old)
            self.posts[c.id] = c
        row = self._rows.get(c.combo) or self._row(c)
        flips = self.stories.add(c)
        if flips is None:  # a new story: counted and unique at once
            label, score = 2 + c.label, c.score_q
            for sums in row.sums:
                sums[0] += 1
                sums[1] += 1
                sums[label] += 1
                sums[5] += score
        else:
            for sums in row.sums:
                sums[0] += 1
            for q, sign in flips:
                self._count_unique(q, sign, mark)
        if mark and not row.dirty:
            row.dirty = True
            self._dirty.append(row)
        return True

    def _remove(self, c: Contribution) -> None:
        for q, sign in self.stories.remove(c):
            self._count_unique(q, sign, True)
        row = self._row(c)
        for sums in row.sums:
            sums[COUNT] -= 1
        self._mark(row)
        del self.posts[c.id]

    def _count_unique(self, q: Contribution, sign: int, mark: bool) -> None:
        label, score = 2 + q.label, sign * q.score_q
        row = self._row(q)
        for sums in row.sums:
            sums[UNIQUE] += sign
            sums[label] += sign
            sums[SCORE] += score
        if mark:
            self._mark(row)

    def dirty_parts(self) -> list[tuple[PartKey, list[int]]]:
        """The changed parts, as copies (a part whose count fell to 0 is reported with count 0); they
        stay marked until :meth:`written`, so a failed write is simply done again."""
        keys = {pk for row in self._dirty for pk in row.keys}
        return [(pk, list(self.parts[pk])) for pk in keys]

    def written(self) -> None:
        for row in self._dirty:
            row.dirty = False
        self._dirty.clear()

    def unique_posts(self, series: Iterable[Series]) -> dict[Series, list[Contribution]]:
        """The unique posts of each of these series (one pass over the window)."""
        wanted = {(kind, key): [] for kind, key in series}
        if not wanted:
            return {}
        kinds = {kind for kind, _ in wanted}
        copies = self.stories.copies
        for c in self.posts.values():
            if c.id in copies:
                continue
            for kind, key, _lang in c.parts:
                if kind in kinds:
                    found = wanted.get((kind, key))
                    if found is not None:
                        found.append(c)
        return wanted

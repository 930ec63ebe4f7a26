"""Which posts of a window are copies of another: near-duplicate detection with history.

Why here and not at enrichment: deciding that a post is a copy needs the posts before it, and the
aggregator is the first stage that has them. Why per (window, language): ``posts.scored`` is keyed by
language, so one aggregator sees every post of a language (copies of a story share its language;
translations are separate stories), and scoping to the window keeps every aggregate a pure function
of the window's posts: the same set gives the same answer whatever order, restart or backfill
brought it in. A story syndicated across a window boundary counts once in each window.

The rule (order-free): a post is a *copy* if an earlier post of the same window and language (by
``(created_at, id)``) has the same core text, or if it is truncated (ends in an ellipsis) and any
other post of the window and language starts with the same head (:func:`monitor.enrich.dedup_parts`):
a cut preview never counts when a fuller version is there, and never makes another post a copy (it
cannot tell which of several stories with that opening it cuts). Every other post is *unique*.

Cost: a story told once (most of them) is one dictionary entry and no object; in a group of copies
only the earliest member can be unique, so adding to it checks one post, not the group (a story
spammed 100,000 times stays linear). Removing a post (a re-scored id) rescans its groups: rare.
"""

from __future__ import annotations

from monitor.aggregate.records import Contribution

Flip = tuple[Contribution, int]  # +1: the post became unique, -1: it became a copy
_NEVER = (float("inf"), "")


class _Group:
    """Posts sharing a core; ``first`` is the earliest member, the only one that can be unique."""

    __slots__ = ("members", "first")

    def __init__(self, c: Contribution) -> None:
        self.members: dict[str, Contribution] = {c.id: c}
        self.first = c

    def join(self, c: Contribution) -> None:
        self.members[c.id] = c
        if c.rank < self.first.rank:
            self.first = c

    def rescan(self) -> None:
        self.first = min(self.members.values(), key=lambda m: m.rank)


Entry = Contribution | _Group  # a story told once is stored as the post itself
Heads = Contribution | list[Contribution]  # head groups need no order: only "is anyone else here"


class StoryIndex:
    """Copy/unique status of every post of one window.

    :meth:`add` returns None when the post is unique and nothing else changed (the common case),
    else the status changes as :data:`Flip` pairs (the added post's ``+1`` among them if unique).
    """

    __slots__ = ("_cores", "_heads", "copies")

    def __init__(self) -> None:
        self._cores: dict[str, Entry] = {}
        self._heads: dict[str, Heads] = {}  # only posts whose head can differ from the core
        self.copies: set[str] = set()

    def is_unique(self, c: Contribution) -> bool:
        return c.id not in self.copies

    def _is_copy(self, c: Contribution) -> bool:
        core = self._cores[c.core]
        if type(core) is _Group and core.first.rank < c.rank:
            return True
        return c.truncated and bool(c.head) and type(self._heads[c.head]) is list

    def add(self, c: Contribution) -> list[Flip] | None:
        ck, hk = c.core, c.head
        core = self._cores.get(ck)
        original = None  # the story's original until now: c may be earlier
        if core is None:
            self._cores[ck] = c
        elif type(core) is _Group:
            original = core.first
            core.join(c)
        else:
            original = core
            group = self._cores[ck] = _Group(core)
            group.join(c)
        lone = None  # a truncated post alone with its head until now: c makes it a copy
        if hk:
            head = self._heads.get(hk)
            if head is None:
                self._heads[hk] = c
            elif type(head) is list:
                head.append(c)
            else:
                self._heads[hk] = [head, c]
                if head.truncated:
                    lone = head
        if core is None and lone is None and not (c.truncated and hk and type(self._heads[hk]) is list):
            return None
        flips: list[Flip] = []
        for q in (original, lone):
            if q is not None and q.id not in self.copies and self._is_copy(q):
                self.copies.add(q.id)
                flips.append((q, -1))
        if self._is_copy(c):
            self.copies.add(c.id)
        elif flips:
            flips.append((c, 1))
        else:
            return None
        return flips

    def remove(self, c: Contribution) -> list[Flip]:
        flips: list[Flip] = [] if c.id in self.copies else [(c, -1)]
        self.copies.discard(c.id)
        affected: list[Contribution] = []
        core = self._cores[c.core]
        if type(core) is _Group and len(core.members) > 1:
            del core.members[c.id]
            if len(core.members) == 1:
                (self._cores[c.core],) = core.members.values()  # a group of one is a lone post again
            else:
                core.rescan()
            affected += core.members.values()
        else:
            del self._cores[c.core]
        if c.head:
            head = self._heads[c.head]
            if type(head) is list and len(head) > 1:
                head.remove(c)
                if len(head) == 1:
                    self._heads[c.head] = head[0]
                affected += head
            else:
                del self._heads[c.head]
        for q in affected:
            if q.id in self.copies and not self._is_copy(q):
                self.copies.discard(q.id)
                flips.append((q, 1))
        return flips

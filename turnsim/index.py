"""Items of one kind kept sorted by `(time, id)`, served a page at a time.

Each entry holds its JSON already serialised, and a page is a bisect to the window's edge (or
to the cursor's position) plus `page_size` steps: serving stays O(page) however large the data
set, which the puller benchmark needs (1000-item pages at 20 requests/s).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field

US = 1_000_000
Key = tuple[int, str]  # (time in microseconds since the epoch, id)


@dataclass(frozen=True)
class Entry:
    key: Key  # (time in microseconds since the epoch, id)
    body: bytes
    added_at: float  # wall time it appeared in Turn; 0.0 for the generated history
    late_draw: float  # uniform in [0, 1): late when below LateModel.share

    @property
    def id(self) -> str:
        return self.key[1]


@dataclass(frozen=True)
class LateModel:
    """Late arrivals: a share of items reaches the export `delay` seconds late.

    A late item becomes visible `delay` seconds after the later of its own time and `since`
    (when lateness was switched on). So a live item shows up `delay` after it happened, and a
    historical one `delay` after the fault was switched on: a window read before that misses
    it, a re-read of the same window later finds it.
    """

    share: float = 0.0
    delay: float = 0.0
    since: float = 0.0

    def visible(self, entry: Entry, as_of: float) -> bool:
        if entry.added_at > as_of:
            return False
        if entry.late_draw >= self.share or self.delay <= 0:
            return True
        happened = max(entry.key[0] / US, self.since, entry.added_at)
        return as_of >= happened + self.delay


@dataclass
class SortedIndex:
    keys: list[Key] = field(default_factory=list)
    entries: list[Entry] = field(default_factory=list)

    def insert(self, entry: Entry) -> None:
        at = bisect_right(self.keys, entry.key)
        self.keys.insert(at, entry.key)
        self.entries.insert(at, entry)

    def remove(self, key: Key) -> None:
        at = bisect_left(self.keys, key)
        if at < len(self.keys) and self.keys[at] == key:
            del self.keys[at]
            del self.entries[at]

    def page(
        self,
        lo: int,
        hi: int,
        *,
        ascending: bool,
        after: Key | None,
        size: int,
        as_of: float,
        late: LateModel,
    ) -> Page:
        """Up to `size` entries of `lo <= time < hi` visible at `as_of`, after `after`.

        Positions are keys, not list offsets, so items inserted or moved meanwhile (arrivals,
        edited contacts) neither shift nor break a cursor.
        """
        keys, entries = self.keys, self.entries
        lo_key, hi_key = (lo, ""), (hi, "")
        inside: Callable[[Key], bool]
        if ascending:
            at = bisect_left(keys, lo_key) if after is None else bisect_right(keys, after)
            step, inside = 1, hi_key.__gt__
        else:
            at = (bisect_left(keys, hi_key) if after is None else bisect_left(keys, after)) - 1
            step, inside = -1, lo_key.__le__
        bodies: list[bytes] = []
        last: Key | None = after
        while 0 <= at < len(keys) and inside(keys[at]):
            entry = entries[at]
            if late.visible(entry, as_of):
                if len(bodies) == size:
                    return Page(bodies, last, more=True)
                bodies.append(entry.body)
                last = entry.key
            at += step
        return Page(bodies, last, more=False)


@dataclass(frozen=True)
class Page:
    bodies: list[bytes]
    last: Key | None  # position to continue after
    more: bool

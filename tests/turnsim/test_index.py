from __future__ import annotations

from turnsim.index import US, Entry, LateModel, SortedIndex

NOBODY_LATE = LateModel()


def _index(*times: int) -> SortedIndex:
    index = SortedIndex()
    for n, at in enumerate(times):
        index.insert(Entry((at * US, f"id{n:02d}"), f'"{n}"'.encode(), 0.0, 0.5))
    return index


def _pages(index: SortedIndex, *, ascending: bool, size: int, as_of: float = 1.0) -> list[bytes]:
    served, after = [], None
    while True:
        page = index.page(
            10 * US, 20 * US, ascending=ascending, after=after, size=size, as_of=as_of,
            late=NOBODY_LATE,
        )  # fmt: skip
        served.extend(page.bodies)
        if not page.more:
            return served
        after = page.last


def test_pages_walk_a_half_open_window_both_ways_with_ties_by_id():
    index = _index(9, 10, 10, 15, 19, 20, 21)
    assert _pages(index, ascending=True, size=2) == [b'"1"', b'"2"', b'"3"', b'"4"']
    assert _pages(index, ascending=False, size=3) == [b'"4"', b'"3"', b'"2"', b'"1"']


def test_a_position_survives_inserts_before_and_after_it():
    index = _index(10, 11, 12, 13)
    first = index.page(
        10 * US, 20 * US, ascending=True, after=None, size=2, as_of=1.0, late=NOBODY_LATE
    )
    index.insert(Entry((10 * US, "id00a"), b'"early"', 0.0, 0.5))  # behind the cursor
    index.insert(Entry((14 * US, "id99"), b'"later"', 0.0, 0.5))  # ahead of it
    rest = index.page(
        10 * US, 20 * US, ascending=True, after=first.last, size=10, as_of=1.0, late=NOBODY_LATE
    )
    assert first.bodies + rest.bodies == [b'"0"', b'"1"', b'"2"', b'"3"', b'"later"']


def test_items_added_after_the_snapshot_or_late_are_skipped_without_ending_the_page():
    index = _index(11, 12, 13)
    index.insert(Entry((12 * US, "id01b"), b'"added"', 5.0, 0.5))
    index.insert(Entry((12 * US, "id01c"), b'"late"', 0.0, 0.01))
    late = LateModel(share=0.1, delay=10.0, since=0.0)
    page = index.page(10 * US, 20 * US, ascending=True, after=None, size=3, as_of=4.0, late=late)
    assert page.bodies == [b'"0"', b'"1"', b'"2"'] and not page.more
    later = index.page(10 * US, 20 * US, ascending=True, after=None, size=9, as_of=30.0, late=late)
    assert b'"added"' in later.bodies and b'"late"' in later.bodies

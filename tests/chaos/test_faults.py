"""The fault schedule: replayable from its seed, every fault alone first, then mixed."""

from __future__ import annotations

import itertools

from chaos.faults import ALL, schedule


def test_the_same_seed_gives_the_same_schedule_and_another_seed_another():
    assert schedule(7, 120) == schedule(7, 120)
    assert schedule(7, 120) != schedule(8, 120)


def test_each_fault_strikes_alone_before_the_mixed_stretch():
    plan = schedule(3, 100)
    solo = [fault for fault in plan if fault.at < 60]
    assert sorted(fault.kind for fault in solo) == sorted(ALL)
    for before, after in itertools.pairwise(solo):
        assert before.at + before.length <= after.at, (before, after)
    mixed = [fault for fault in plan if fault.at >= 60]
    assert len(mixed) == len(ALL)
    assert all(fault.at + fault.length <= 100 for fault in plan)


def test_no_mixed_stretch_when_asked():
    plan = schedule(5, 30, ("postgres", "kill:gateway"), mixed=0)
    assert [fault.kind for fault in plan] in (
        ["postgres", "kill:gateway"],
        ["kill:gateway", "postgres"],
    )

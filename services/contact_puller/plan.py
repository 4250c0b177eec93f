"""Which time ranges a run reads, cut into parallel windows (pure).

A run reads `[checkpoint - overlap, now - safety_lag)`, like the message puller's incremental
window (shared/window.py: whole-second, half-open boundaries, `until` never
in the future), but cut into several windows read side by side, each with its own cursor: one
cursor over a large contact base is a long serial walk, and Turn times out on huge ranges.

Windows have equal time spans and at most `max_window` seconds each. Contacts are not spread
evenly in time (recent edits cluster), so the windows are not equally full; that only costs
parallelism, never correctness.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from itertools import pairwise

from shared.window import Window, floor_second, horizon


def run_range(
    checkpoint: datetime, now: datetime, *, overlap: float, safety_lag: float
) -> Window | None:
    """What an incremental run reads; None when nothing is old enough to be read yet."""
    end = horizon(now, safety_lag)
    start = floor_second(checkpoint - timedelta(seconds=overlap))
    return Window(start, end) if start < end else None


def partition(window: Window, parts: int, max_window: float) -> list[Window]:
    """`window` cut into at least `parts` windows of equal span (whole seconds), none wider
    than `max_window`; fewer when the window has fewer whole seconds than that."""
    start, until = floor_second(window.start), window.until
    if until <= start:
        return []
    wanted = max(parts, math.ceil((until - start).total_seconds() / max_window), 1)
    span = until - start
    cuts = [start]
    for i in range(1, wanted):
        cut = floor_second(start + span * i / wanted)
        if cut > cuts[-1]:
            cuts.append(cut)
    cuts.append(until)
    return [Window(a, b) for a, b in pairwise(cuts) if b > a]

"""Which time ranges to read: pure functions of the checkpoint, the clock and the settings.

Messages filter on their `timestamp`, whole epoch seconds; windows (shared/window.py) are
half-open with whole-second boundaries, and `until` never passes the horizon.

- An incremental window starts `overlap` before the checkpoint, so items that reached Turn a
  little late are read on the next pass; duplicates are harmless (the writer is idempotent).
- A window is at most `max_window` wide (Turn times out on huge ranges); wider ranges split.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from shared.window import Window, floor_second, horizon


def incremental(
    checkpoint: datetime, now: datetime, *, overlap: float, safety_lag: float, max_window: float
) -> tuple[Window | None, bool]:
    """The next incremental window, and whether reading it catches up to the horizon."""
    end = horizon(now, safety_lag)
    start = floor_second(checkpoint - timedelta(seconds=overlap))
    if start >= end:
        return None, True
    until = min(end, start + timedelta(seconds=max_window))
    return Window(start, until), until == end


def split(start: datetime, until: datetime, max_window: float) -> list[Window]:
    """`[start, until)` cut into windows of at most `max_window` seconds."""
    windows: list[Window] = []
    step = timedelta(seconds=max_window)
    at = floor_second(start)
    while at < until:
        end = min(until, at + step)
        windows.append(Window(at, end))
        at = end
    return windows


def next_chunk(position: datetime, until: datetime, max_window: float) -> Window | None:
    """The first window of a job (sweep or back-fill) that has read up to `position`."""
    windows = split(position, until, max_window)
    return windows[0] if windows else None


def sweep_range(
    now: datetime, checkpoint: datetime, *, span: float, safety_lag: float
) -> tuple[datetime, datetime]:
    """A sweep re-reads the last `span` up to the checkpoint (the incremental loop owns what
    lies beyond it)."""
    return (
        floor_second(now - timedelta(seconds=span)),
        min(floor_second(checkpoint), horizon(now, safety_lag)),
    )

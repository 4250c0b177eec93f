"""A half-open time range `[start, until)` of Turn's Data Export, on whole-second boundaries.

Export windows filter on a time (a message's `timestamp` in whole epoch seconds, a contact's
`updated_at`); with half-open windows whose boundaries are whole seconds, nothing falls
between two adjacent windows. Both pullers plan their reads in these terms.

- `until` is at most `now - safety_lag` (`horizon`): Turn refuses a future `until`, and the
  newest seconds are still filling up.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta


@dataclass(frozen=True)
class Window:
    start: datetime
    until: datetime

    def __post_init__(self) -> None:
        if self.until <= self.start:
            raise ValueError(f"empty window {self.start} .. {self.until}")

    @property
    def seconds(self) -> float:
        return (self.until - self.start).total_seconds()

    def halves(self) -> tuple[Window, Window]:
        middle = floor_second(self.start + (self.until - self.start) / 2)
        if middle <= self.start:
            raise ValueError("a window of one second cannot be split")
        return Window(self.start, middle), Window(middle, self.until)


def floor_second(moment: datetime) -> datetime:
    return moment.replace(microsecond=0)


def horizon(now: datetime, safety_lag: float) -> datetime:
    """The newest `until` any window may have."""
    return floor_second(now.astimezone(UTC) - timedelta(seconds=safety_lag))

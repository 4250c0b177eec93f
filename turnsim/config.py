"""The simulator's knobs: what Turn allows, and which faults it injects. Changeable at runtime."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SimConfig:
    token: str = "sim-token"
    # Rate limit per number over a sliding window (turn-api.md §4: 60 per 60 s by default).
    rate_limit: int = 60
    rate_window: float = 60.0
    bucket: str = "general"
    # A cursor and every `next` cursor derived from it expire `cursor_ttl` s after its creation.
    cursor_ttl: float = 600.0
    max_page_size: int = 1000  # a larger page_size is refused with 400, not clamped
    default_page_size: int = 50
    # Faults.
    error_rate: float = 0.0  # share of admitted /v1 requests answered 500/502/503
    latency: float = 0.0  # seconds added to every /v1 answer
    max_window: float | None = None  # pages of a wider `from..until` (seconds) answer 500
    late_share: float = 0.0  # share of items that reach the export late ...
    late_delay: float = 0.0  # ... by this many seconds (dataset.LateModel)
    arrival_rate: float = 0.0  # new messages per second while running
    seed: int = 1  # for the fault draws
    # More than this many contact cursors created within 1 s -> 403 (reported of Turn [OBS S23]).
    contact_cursor_403_burst: int | None = None

    def changed(self, **changes: Any) -> SimConfig:
        """A copy with `changes` applied; an unknown name or a nonsensical value is refused."""
        names = {field.name for field in dataclasses.fields(self)}
        unknown = set(changes) - names
        if unknown:
            raise ValueError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        new = dataclasses.replace(self, **changes)
        new.check()
        return new

    def check(self) -> None:
        if self.rate_limit < 1 or self.rate_window <= 0:
            raise ValueError("rate_limit must be >= 1 and rate_window > 0")
        if not 1 <= self.default_page_size <= self.max_page_size:
            raise ValueError("need 1 <= default_page_size <= max_page_size")
        for name in ("error_rate", "late_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be within [0, 1]")
        for name in ("cursor_ttl", "latency", "late_delay", "arrival_rate"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")

    def public(self) -> dict[str, Any]:
        """The settings as JSON, the token left out."""
        values = dataclasses.asdict(self)
        values.pop("token")
        return values

"""Waiting on a condition with a deadline: the only way tests wait. Never a bare sleep."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


class Timeout(AssertionError):
    pass


async def eventually(
    probe: Callable[[], Awaitable[T]],
    *,
    until: Callable[[T], bool] = bool,
    timeout: float = 20.0,
    interval: float = 0.05,
    what: str = "condition",
) -> T:
    """Await `probe()` until `until(result)`; fail with the last result after `timeout`."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while True:
        last = await probe()
        if until(last):
            return last
        if time.monotonic() > deadline:
            raise Timeout(f"{what} not reached within {timeout}s; last value: {last!r}")
        await asyncio.sleep(interval)


def eventually_sync(
    probe: Callable[[], T],
    *,
    until: Callable[[T], bool] = bool,
    timeout: float = 20.0,
    interval: float = 0.05,
    what: str = "condition",
) -> T:
    deadline = time.monotonic() + timeout
    while True:
        last = probe()
        if until(last):
            return last
        if time.monotonic() > deadline:
            raise Timeout(f"{what} not reached within {timeout}s; last value: {last!r}")
        time.sleep(interval)

"""Hypothesis settings for the fuzz pass: a bounded run in the suite, a long one on demand.

FUZZ_EXAMPLES=5000 .venv/bin/pytest tests/fuzz      (a longer run; default is the suite's)
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

from hypothesis import HealthCheck, settings

T = TypeVar("T")

SCALE = float(os.environ.get("FUZZ_EXAMPLES", "0")) or None

settings.register_profile(
    "fuzz",
    deadline=None,
    derandomize=SCALE is None,  # the suite's run is the same every time; a long run explores
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)


def examples(default: int) -> int:
    """`default` in the suite, FUZZ_EXAMPLES when set."""
    return int(SCALE) if SCALE else default


def on_loop(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` on the test's event loop from the thread hypothesis runs in.

    Hypothesis runs synchronous tests only; the test body awaits `asyncio.to_thread(check)`,
    so the loop stays free to serve the coroutines each example hands it.
    """
    return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=60)

"""Fixtures for the message puller: a simulator on a port (tests/shared/simulated_export.py),
the puller in-process or as a process, and the published events counted straight from the
queue."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime

from services.message_puller import app
from services.message_puller.settings import STREAM, PullerSettings
from shared.settings import Env
from tests.shared.simulated_export import (
    Turn,
    service_running,
    spec_before_now,
    stream_checkpoint,
    turn_env,
)
from turnsim.dataset import DatasetSpec


def recent_spec(messages: int, *, days: float = 2.0, seed: int = 11) -> DatasetSpec:
    """A data set ending a little before now, so windows reach it without walking years."""
    return spec_before_now(
        messages=messages, contacts=max(10, messages // 50), days=days, seed=seed
    )


def puller_env(database_url: str, amqp_url: str, turn: Turn, **overrides: str) -> dict[str, str]:
    """Fast settings: a 1 s rate window, small lags, frequent passes."""
    env = {
        **turn_env(database_url, amqp_url, turn),
        "PULL_START_FROM": turn.spec.start.isoformat(),
        "PULL_SAFETY_LAG": "2",
        "PULL_OVERLAP": "60",
        "PULL_INTERVAL": "0.5",
        "PULL_MAX_WINDOW": str(12 * 3600),
        "PULL_ERROR_BACKOFF": "0.1",
    }
    env.update(overrides)
    return env


def settings_from(env: dict[str, str]) -> PullerSettings:
    return PullerSettings.from_env(Env(env))


def puller_running(
    env: dict[str, str],
) -> contextlib.AbstractAsyncContextManager[asyncio.Task[None]]:
    """The whole service in this process (probes on a free port), stopped like SIGTERM."""
    return service_running(app.run, settings_from(env))


async def checkpoint(database_url: str) -> datetime | None:
    return await stream_checkpoint(database_url, STREAM)

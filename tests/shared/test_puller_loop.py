import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge

from shared.checkpoint import Checkpoint
from shared.errors import RetryableError
from shared.puller_loop import MAX_BACKOFF, LoopMetrics, PullerLoop
from shared.puller_settings import PullerSettingsBase
from shared.settings import CommonSettings
from shared.turn_client import TurnForbidden

T0 = datetime(2026, 1, 1, tzinfo=UTC)
COMMON = CommonSettings("postgresql://h/db", "amqp://h/", "n1", "INFO", "turnio")


def metrics() -> LoopMetrics:
    registry = CollectorRegistry()
    return LoopMetrics(
        checkpoint=Gauge("checkpoint", "-", registry=registry),
        lag=Gauge("lag", "-", registry=registry),
        errors=Counter("errors", "-", ["category"], registry=registry),
    )


@pytest.fixture
async def pool(database_url):
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    yield pool
    await pool.close()


def loop_for(pool, m, **settings) -> PullerLoop:
    s = PullerSettingsBase(COMMON, "token", **settings)
    return PullerLoop(s, Checkpoint(pool, "n1", "messages"), m, lease=None, clock=lambda: T0)


async def test_the_first_checkpoint_is_the_start_point_then_whatever_is_stored(pool):
    m = metrics()
    loop = loop_for(pool, m, start_lookback=3600)
    assert loop.initial_checkpoint() == T0 - timedelta(hours=1)
    assert await loop.current_checkpoint() == T0 - timedelta(hours=1)
    assert m.lag._value.get() == 3600
    assert await loop.advance(T0) == T0
    assert await loop.start_checkpoint() == T0
    assert loop_for(pool, m, start_from=T0 - timedelta(days=2)).initial_checkpoint() == (
        T0 - timedelta(days=2)
    )


async def test_refusals_keep_the_backoff_and_retryable_failures_double_it(pool):
    m = metrics()
    loop = loop_for(pool, m)
    stop = asyncio.Event()
    stop.set()  # no waiting in a test
    assert await loop.recover(TurnForbidden(403, "no"), stop, 2.0) == 2.0
    assert await loop.recover(RetryableError("away"), stop, 2.0) == 4.0
    assert await loop.recover(RetryableError("away"), stop, 50.0) == MAX_BACKOFF
    assert m.errors.labels("rejected")._value.get() == 1
    assert m.errors.labels("RetryableError")._value.get() == 2

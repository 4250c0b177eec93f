import asyncio
import math
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge

from shared.checkpoint import Checkpoint
from shared.errors import RetryableError
from shared.lease import Lease, LeaseKeeper
from shared.puller_loop import MAX_BACKOFF, LoopMetrics, PullerLoop
from shared.puller_settings import PullerSettingsBase
from shared.settings import CommonSettings
from shared.turn_client import TurnForbidden
from tests.waiting import eventually

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


class Holding(PullerLoop):
    """Observes a checkpoint an hour old, then pulls nothing until stopped."""

    async def run(self, stop: asyncio.Event) -> None:
        await self.current_checkpoint()
        await stop.wait()


async def _held(keeper: LeaseKeeper) -> bool:
    return keeper.held


@pytest.mark.parametrize("how", ["lost", "released"])
async def test_a_replica_without_the_lease_reports_no_lag(pool, how):
    registry = CollectorRegistry()
    m = LoopMetrics(
        checkpoint=Gauge("checkpoint", "-", registry=registry),
        lag=Gauge("lag", "-", registry=registry),
        errors=Counter("errors", "-", ["category"], registry=registry),
    )
    s = PullerSettingsBase(COMMON, "token", start_lookback=3600)
    loop = Holding(s, Checkpoint(pool, "n1", "messages"), m, lease=None, clock=lambda: T0)
    lease = Lease(pool, "n1:messages", "a", ttl=1.0)
    keeper = LeaseKeeper(lease)
    stop = asyncio.Event()
    task = asyncio.create_task(keeper.run(lambda: loop.pull(stop), stop))
    try:
        await eventually(
            lambda: asyncio.sleep(0, registry.get_sample_value("lag")),
            until=lambda lag: lag == 3600,
            timeout=5,
            what="the holder's lag",
        )
        assert registry.get_sample_value("checkpoint") == (T0 - timedelta(hours=1)).timestamp()
        if how == "lost":
            await pool.execute("UPDATE leases SET holder = 'thief' WHERE name = $1", lease.name)
            await eventually(lambda: _held(keeper), until=lambda held: not held, what="lost")
        else:
            stop.set()
            await asyncio.wait_for(task, timeout=5)
        # max(lag) over the replicas must be the holder's: this one reports no figure at all.
        assert math.isnan(registry.get_sample_value("lag") or 0.0)
        assert math.isnan(registry.get_sample_value("checkpoint") or 0.0)
    finally:
        stop.set()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

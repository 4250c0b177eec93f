import asyncio
import time

import asyncpg
import pytest

from shared.lease import Lease, LeaseKeeper, lease_name
from tests.waiting import eventually


@pytest.fixture
async def pool(database_url):
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=6)
    yield pool
    await pool.close()


def test_lease_names_carry_number_and_stream():
    assert lease_name("27600000000", "messages") == "27600000000:messages"


async def test_only_one_holder_until_expiry_or_release(pool):
    a = Lease(pool, "n:messages", "a", ttl=30)
    b = Lease(pool, "n:messages", "b", ttl=30)
    assert await a.try_acquire()
    assert not await b.try_acquire()
    assert await a.try_acquire()  # re-entrant for its holder
    assert await a.renew()
    assert not await b.renew()
    await a.release()
    assert await b.try_acquire()
    assert not await a.renew()
    assert await a.holder_now() == "b"


async def test_an_expired_lease_can_be_taken(pool):
    a = Lease(pool, "n:messages", "a", ttl=0.2)
    b = Lease(pool, "n:messages", "b", ttl=30)
    assert await a.try_acquire()
    await eventually(b.try_acquire, timeout=5, what="takeover after expiry")
    assert not await a.renew()


async def test_standby_takes_over_when_the_holder_stops_renewing(pool):
    """A holder that dies (here: its keeper is cancelled, as with SIGKILL) is replaced within
    about one lease time."""
    ttl = 1.0
    stop_a, stop_b = asyncio.Event(), asyncio.Event()
    running: list[str] = []

    def worker(name: str):
        async def work() -> None:
            running.append(name)
            await asyncio.Event().wait()

        return work

    keeper_a = LeaseKeeper(Lease(pool, "n:messages", "a", ttl))
    keeper_b = LeaseKeeper(Lease(pool, "n:messages", "b", ttl))
    task_a = asyncio.create_task(keeper_a.run(worker("a"), stop_a))
    await eventually(lambda: _true(running == ["a"]), timeout=5, what="a runs")
    task_b = asyncio.create_task(keeper_b.run(worker("b"), stop_b))
    # b stands by while a renews, for several lease times.
    await asyncio.wait({task_b}, timeout=ttl * 2.5)
    assert running == ["a"]
    task_a.cancel()  # a dies without releasing
    killed = time.monotonic()
    await eventually(lambda: _true(running == ["a", "b"]), timeout=5, what="b takes over")
    assert time.monotonic() - killed < ttl + 1.0
    stop_b.set()
    task_b.cancel()
    await asyncio.gather(task_a, task_b, return_exceptions=True)


async def _true(value: bool) -> bool:
    return value


async def test_a_holder_that_loses_the_lease_stops_at_once(pool):
    ttl = 1.0
    lease = Lease(pool, "n:messages", "a", ttl)
    cancelled = asyncio.Event()
    held: list[bool] = []

    async def work() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    keeper = LeaseKeeper(lease, on_change=held.append)
    stop = asyncio.Event()
    task = asyncio.create_task(keeper.run(work, stop))
    await eventually(lambda: _true(held == [True]), timeout=5, what="held")
    # Someone else steals it (an operator, or a holder whose clock ran ahead).
    await pool.execute("UPDATE leases SET holder = 'thief' WHERE name = $1", lease.name)
    await asyncio.wait_for(cancelled.wait(), timeout=ttl + 1)
    assert held == [True, False]
    stop.set()
    await asyncio.wait_for(task, timeout=5)


async def test_a_holder_whose_database_vanishes_stops_before_the_expiry(pool):
    """Renewals fail (connection gone): the work is cancelled by the local deadline, which
    falls before the expiry recorded in the database, so nobody ever pulls beside it."""
    ttl = 1.0
    lease = Lease(pool, "n:messages", "a", ttl)
    stopped_at: list[float] = []

    async def work() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            stopped_at.append(time.monotonic())

    class Broken(Lease):
        async def renew(self) -> bool:
            raise ConnectionError("database away")

    keeper = LeaseKeeper(Broken(pool, lease.name, "a", ttl))
    task = asyncio.create_task(keeper.run(work, asyncio.Event()))
    await eventually(lambda: _true(keeper.held), timeout=5, what="held")
    expires_at = await pool.fetchval(
        "SELECT extract(epoch FROM expires_at - clock_timestamp()) FROM leases"
    )
    deadline = time.monotonic() + float(expires_at)
    await eventually(lambda: _true(bool(stopped_at)), timeout=5, what="work cancelled")
    assert stopped_at[0] <= deadline
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_graceful_stop_releases_for_an_immediate_takeover(pool):
    stop = asyncio.Event()

    async def work() -> None:
        await stop.wait()

    lease = Lease(pool, "n:messages", "a", ttl=60)
    task = asyncio.create_task(LeaseKeeper(lease).run(work, stop))
    await eventually(lambda: lease.holder_now(), until=lambda h: h == "a", timeout=5)
    stop.set()
    await asyncio.wait_for(task, timeout=5)
    assert await Lease(pool, lease.name, "b", ttl=60).try_acquire()

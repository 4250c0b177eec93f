import asyncio
import time

from shared.broker import Publisher, Topology
from shared.puller_service import Health, connect_database, wait_or_stop
from tests.servers import free_port
from tests.waiting import eventually


async def test_waiting_ends_early_when_stopped():
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(0.05, stop.set)
    started = time.monotonic()
    await wait_or_stop(stop, 30)
    assert time.monotonic() - started < 5


async def test_no_pool_when_stopped_while_the_database_is_away():
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(0.5, stop.set)
    url = f"postgresql://nobody:x@127.0.0.1:{free_port()}/none"
    assert await connect_database(url, stop) is None


async def test_a_pool_of_the_asked_size(database_url):
    pool = await connect_database(database_url, asyncio.Event(), max_size=2)
    assert pool is not None
    try:
        assert pool.get_max_size() == 2
    finally:
        await pool.close()


async def test_ready_reports_the_database_and_the_broker(database_url, amqp_url):
    publisher = Publisher(amqp_url, Topology())
    await publisher.start(wait=True)
    pool = await connect_database(database_url, asyncio.Event())
    assert pool is not None
    health = Health(publisher)
    assert health.ready() == {"database": False, "broker": True}
    watcher = asyncio.create_task(health.watch_database(database_url))
    try:

        async def ready() -> dict[str, bool]:
            return health.ready()

        await eventually(ready, until=lambda r: r["database"], timeout=10, what="database up")
        assert health.ready() == {"database": True, "broker": True}
    finally:
        watcher.cancel()
        await publisher.close()
        await pool.close()

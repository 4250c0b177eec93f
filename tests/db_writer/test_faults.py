"""The writer under faults: SIGKILL mid-batch, PostgreSQL restarted mid-stream, bad config."""

import asyncio
import subprocess
import sys

import aio_pika
import asyncpg
import httpx
import orjson
import pytest

from services.db_writer import metrics
from shared.broker import Topology
from shared.migrate import apply as apply_migrations
from tests.db_writer.conftest import Feed, started
from tests.processes import ROOT, ServiceProcess
from tests.servers import RABBIT_BIN, LocalPostgres, LocalRabbit
from tests.waiting import eventually

pytestmark = pytest.mark.slow


def body(i: int) -> bytes:
    return orjson.dumps(
        {
            "contacts": [{"wa_id": f"27{i:09d}", "profile": {"name": f"n{i}"}}],
            "messages": [
                {"id": f"wamid.K{i}", "from": f"27{i:09d}", "type": "text", "text": {"body": "x"}}
            ],
        }
    )


async def publish_many(feed: Feed, numbers: range) -> None:
    chunk = 200
    for start in range(numbers.start, numbers.stop, chunk):
        stop = min(start + chunk, numbers.stop)
        await asyncio.gather(*(feed.webhook(body(i)) for i in range(start, stop)))


async def stored(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM messages"))
    finally:
        await conn.close()


async def test_sigkill_mid_batch_then_restart_stores_everything_exactly_once(
    writer_env, feed: Feed, db, database_url, vhost
):
    total = 4000
    env = {**writer_env, "WRITER_BATCH_SIZE": "50", "PORT": ""}
    await publish_many(feed, range(total))
    with ServiceProcess("services.db_writer", env) as first:
        await first.ready()
        await eventually(
            lambda: stored(database_url), until=lambda n: n >= 200, timeout=30, what="some rows"
        )
        first.kill()
    partial = await stored(database_url)
    assert partial < total, "the writer finished before it could be killed mid-stream"

    with ServiceProcess("services.db_writer", env) as second:
        await second.ready()
        await eventually(
            lambda: stored(database_url),
            until=lambda n: n >= total,
            timeout=60,
            what="every message",
        )
        assert second.terminate() == 0  # SIGTERM: graceful, exit 0
    assert await db.fetchval("SELECT count(*) FROM messages") == total
    assert await db.fetchval("SELECT count(DISTINCT external_id) FROM messages") == total
    assert await db.fetchval("SELECT count(*) FROM webhook_events") == 2 * total
    topology = Topology()
    for queue in (topology.webhook_queue, topology.dead_queue):
        assert await vhost.depth(queue) == 0  # no writer runs: unacked ones would be ready


async def test_postgres_restarted_mid_stream(writer_env, feed: Feed):
    server = LocalPostgres()
    server.start()
    try:
        apply_migrations(server.url)
        env = {**writer_env, "DATABASE_URL": server.url}
        writer = await started(env)
        probe = f"http://127.0.0.1:{env['PORT']}/ready"
        try:
            await publish_many(feed, range(300))
            await eventually(lambda: stored(server.url), until=lambda n: n == 300, what="first 300")
            # As a crash: no shutdown checkpoint, connections cut mid-statement.
            server.stop("immediate")
            retries_before = metrics.DB_RETRIES._value.get()
            acked_before = writer.acked
            await publish_many(feed, range(300, 600))
            await eventually(
                lambda: _status(probe), until=lambda s: s == 503, what="/ready 503 while down"
            )
            await eventually(
                lambda: _value(metrics.DB_RETRIES),
                until=lambda n: n >= retries_before + 3,
                what="several retries while down",
            )
            assert writer.acked == acked_before  # nothing acked while PostgreSQL is away

            server.start()
            await eventually(
                lambda: stored(server.url), until=lambda n: n >= 600, timeout=30, what="all 600"
            )
            await eventually(lambda: _status(probe), until=lambda s: s == 200, what="ready again")
            assert await stored(server.url) == 600
            await eventually(
                lambda: _acked(writer), until=lambda n: n == acked_before + 300, what="acks"
            )
        finally:
            await writer.stop()
    finally:
        server.destroy()


async def _status(url: str) -> int:
    async with httpx.AsyncClient(timeout=2) as client:
        return (await client.get(url)).status_code


async def _value(counter) -> float:
    return float(counter._value.get())


async def _acked(writer) -> int:
    return int(writer.acked)


@pytest.mark.parametrize("missing", ["DATABASE_URL", "AMQP_URL"])
def test_the_service_refuses_to_start_without_its_urls(service_env, missing):
    env = {k: v for k, v in service_env.items() if k != missing}
    env["PATH"] = "/usr/bin:/bin"
    done = subprocess.run(
        [sys.executable, "-m", "services.db_writer"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode != 0
    assert missing in done.stderr


async def test_a_database_that_refuses_writes_is_waited_for_not_dead_lettered(
    writer_env, feed: Feed, db, database_url, vhost
):
    """Read-only after a failover (or disk full, a missing migration): retry, never DLQ."""
    await db.execute(
        f'ALTER DATABASE "{db_name(database_url)}" SET default_transaction_read_only = on'
    )
    writer = await started(writer_env)
    try:
        retries_before = await _value(metrics.DB_RETRIES)
        await publish_many(feed, range(20))
        await eventually(
            lambda: _value(metrics.DB_RETRIES),
            until=lambda n: n >= retries_before + 3,
            what="several retries against the read-only database",
        )
        assert writer.ready()["database"] is False
        assert writer.acked == 0
        assert await vhost.depth(Topology().dead_queue) == 0

        await db.execute(
            f'ALTER DATABASE "{db_name(database_url)}" SET default_transaction_read_only = off'
        )
        # Sessions keep the default they started with: make the pool open new ones.
        await db.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        await eventually(lambda: stored(database_url), until=lambda n: n == 20, what="all 20")
        await eventually(lambda: _all_acked(writer, 20), what="all acked")
        assert await vhost.depth(Topology().dead_queue) == 0
        await eventually(lambda: _ready(writer), what="ready again")
    finally:
        await writer.stop()


def db_name(url: str) -> str:
    return url.rsplit("/", 1)[1]


async def _all_acked(writer, count: int) -> bool:
    return bool(writer.acked == count)


async def _ready(writer) -> bool:
    return all(writer.ready().values())


async def test_a_refused_topology_is_retried_without_leaking_connections(writer_env, caplog):
    """A queue declared by someone else with other arguments: retry, one connection at a time.

    Counted by the broker's own CLI on a private node: the management API's connection list
    lags by its statistics interval and would miss short-lived connections.
    """
    node = LocalRabbit(management=False)
    node.start()
    try:
        connection = await aio_pika.connect(node.url)
        channel = await connection.channel()
        await channel.declare_queue(Topology().webhook_queue, durable=True)  # classic
        await connection.close()
        writer = await started({**writer_env, "AMQP_URL": node.url}, wait_ready=False)
        try:
            await eventually(
                lambda: _refusals(caplog),
                until=lambda n: n >= 4,
                timeout=30,
                what="several refused attempts",
            )
            assert _open_connections(node) <= 1
            assert writer.ready()["consuming"] is False
        finally:
            await writer.stop()
    finally:
        node.destroy()


async def _refusals(caplog) -> int:
    return sum(r.getMessage().startswith("RabbitMQ ") for r in caplog.records)


def _open_connections(node: LocalRabbit) -> int:
    listed = subprocess.run(
        [str(RABBIT_BIN / "rabbitmqctl"), "-q", "-n", node.node, "list_connections", "name"],
        env=node.env,
        capture_output=True,
        text=True,
        check=True,
    )
    return len([line for line in listed.stdout.splitlines() if line.strip()])

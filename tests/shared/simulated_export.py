"""Helpers for tests of Data Export pullers and their shared parts: a simulated Turn on a
port, the environment both pullers read, a puller service run in-process, the checkpoint of a
stream and the published events counted straight from a queue."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import aio_pika
import asyncpg

from shared.broker import Publisher, Topology
from shared.database import create_pool
from shared.rate_budget import BudgetPolicy, RateBudget
from tests.conftest import BUSINESS_NUMBER
from tests.servers import free_port
from turnsim.config import SimConfig
from turnsim.dataset import Dataset, DatasetSpec
from turnsim.server import running
from turnsim.simulator import Simulator

S = TypeVar("S")
T = TypeVar("T")


def spec_before_now(*, messages: int, contacts: int, days: float, seed: int) -> DatasetSpec:
    """A data set ending a little before now, so windows reach it without walking years."""
    end = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    return DatasetSpec(
        seed=seed,
        messages=messages,
        contacts=contacts,
        start=end - timedelta(days=days),
        end=end,
        business_number=BUSINESS_NUMBER,
    )


@dataclass
class Turn:
    sim: Simulator
    url: str

    @property
    def spec(self) -> DatasetSpec:
        return self.sim.dataset.spec


@contextlib.contextmanager
def turn(spec: DatasetSpec, **config: object) -> Iterator[Turn]:
    sim = Simulator(Dataset.generate(spec), SimConfig().changed(**config))
    with running(sim) as url:
        yield Turn(sim, url)


def turn_env(database_url: str, amqp_url: str, turn: Turn) -> dict[str, str]:
    """What both pullers read alike (shared/puller_settings.py), fast: a short lease, probes
    on a free local port."""
    return {
        "DATABASE_URL": database_url,
        "AMQP_URL": amqp_url,
        "BUSINESS_NUMBER_ID": BUSINESS_NUMBER,
        "TURNIO_BASE_URL": turn.url,
        "TURNIO_BEARER_TOKEN": turn.sim.config.token,
        "TURNIO_RATE_LIMIT": str(turn.sim.config.rate_limit),
        "TURNIO_RATE_WINDOW": str(turn.sim.config.rate_window),
        "LEASE_TTL": "2",
        "LOG_LEVEL": "INFO",
        "HOST": "127.0.0.1",
        "PORT": str(free_port()),
    }


def writer_env(env: dict[str, str]) -> dict[str, str]:
    """The db_writer's environment beside a puller's."""
    return {
        "DATABASE_URL": env["DATABASE_URL"],
        "AMQP_URL": env["AMQP_URL"],
        "BUSINESS_NUMBER_ID": env["BUSINESS_NUMBER_ID"],
        "LOG_LEVEL": "WARNING",
    }


@contextlib.asynccontextmanager
async def service_running(
    run: Callable[[S, asyncio.Event], Coroutine[Any, Any, None]], settings: S
) -> AsyncIterator[asyncio.Task[None]]:
    """A whole puller service in this process (probes on a free port), stopped like SIGTERM."""
    stop = asyncio.Event()
    task = asyncio.create_task(run(settings, stop))
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def stream_checkpoint(database_url: str, stream: str) -> datetime | None:
    conn = await asyncpg.connect(database_url)
    try:
        value: datetime | None = await conn.fetchval(
            "SELECT checkpoint FROM ingestion_state WHERE stream = $1", stream
        )
        return value
    finally:
        await conn.close()


async def drain_ids(amqp_url: str, queue: str | None = None) -> Counter[str]:
    """Consume everything in an export queue (messages by default) now; message id -> how
    often it was there."""
    name = queue or Topology().export_message_queue
    connection = await aio_pika.connect(amqp_url)
    ids: Counter[str] = Counter()
    try:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=2000)
        declared = await channel.declare_queue(name, passive=True)
        total = int(declared.declaration_result.message_count or 0)
        if total == 0:
            return ids
        done = asyncio.Event()

        async def take(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            ids[message.message_id or ""] += 1
            if ids.total() >= total:
                done.set()

        tag = await declared.consume(take, no_ack=True)
        await asyncio.wait_for(done.wait(), 120)
        await declared.cancel(tag)
        return ids
    finally:
        await connection.close()


@contextlib.asynccontextmanager
async def budget_and_publisher(
    database_url: str, amqp_url: str, stream: str
) -> AsyncIterator[tuple[RateBudget, Publisher]]:
    """A generous rate budget for `stream` and a started publisher, for reader tests."""
    pool = await create_pool(database_url)
    budget = RateBudget(pool, BUSINESS_NUMBER, stream, BudgetPolicy(1000, 1.0))
    await budget.setup()
    publisher = Publisher(amqp_url, Topology())
    await publisher.start(wait=True)
    try:
        yield budget, publisher
    finally:
        await publisher.close()
        await pool.close()


@contextlib.asynccontextmanager
async def sampled(probe: Callable[[], Awaitable[T | None]]) -> AsyncIterator[list[T]]:
    """Every distinct value `probe` returns while the block runs (None skipped), sampled
    often: a checkpoint's path, say."""
    seen: list[T] = []

    async def sample() -> None:
        while True:
            value = await probe()
            if value is not None and (not seen or seen[-1] != value):
                seen.append(value)
            await asyncio.sleep(0.05)

    task = asyncio.create_task(sample())
    try:
        yield seen
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

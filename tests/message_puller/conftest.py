"""Fixtures for the message puller: a simulator on a port, the puller in-process or as a
process, and the published events counted straight from the queue."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import aio_pika
import asyncpg

from services.message_puller import app
from services.message_puller.settings import PullerSettings
from shared.broker import Topology
from shared.settings import Env
from tests.conftest import BUSINESS_NUMBER
from tests.servers import free_port
from turnsim.config import SimConfig
from turnsim.dataset import Dataset, DatasetSpec
from turnsim.server import running
from turnsim.simulator import Simulator


def recent_spec(messages: int, *, days: float = 2.0, seed: int = 11) -> DatasetSpec:
    """A data set ending a little before now, so windows reach it without walking years."""
    end = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    return DatasetSpec(
        seed=seed,
        messages=messages,
        contacts=max(10, messages // 50),
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


def puller_env(database_url: str, amqp_url: str, turn: Turn, **overrides: str) -> dict[str, str]:
    """Fast settings: a 1 s rate window, small lags, frequent passes."""
    env = {
        "DATABASE_URL": database_url,
        "AMQP_URL": amqp_url,
        "BUSINESS_NUMBER_ID": BUSINESS_NUMBER,
        "TURNIO_BASE_URL": turn.url,
        "TURNIO_BEARER_TOKEN": turn.sim.config.token,
        "TURNIO_RATE_LIMIT": str(turn.sim.config.rate_limit),
        "TURNIO_RATE_WINDOW": str(turn.sim.config.rate_window),
        "PULL_START_FROM": turn.spec.start.isoformat(),
        "PULL_SAFETY_LAG": "2",
        "PULL_OVERLAP": "60",
        "PULL_INTERVAL": "0.5",
        "PULL_MAX_WINDOW": str(12 * 3600),
        "LEASE_TTL": "2",
        "PULL_ERROR_BACKOFF": "0.1",
        "LOG_LEVEL": "INFO",
        "HOST": "127.0.0.1",
        "PORT": str(free_port()),
    }
    env.update(overrides)
    return env


def settings_from(env: dict[str, str]) -> PullerSettings:
    return PullerSettings.from_env(Env(env))


@contextlib.asynccontextmanager
async def puller_running(env: dict[str, str]) -> AsyncIterator[asyncio.Task[None]]:
    """The whole service in this process (probes on a free port), stopped like SIGTERM."""
    stop = asyncio.Event()
    task = asyncio.create_task(app.run(settings_from(env), stop))
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def checkpoint(database_url: str) -> datetime | None:
    conn = await asyncpg.connect(database_url)
    try:
        value: datetime | None = await conn.fetchval(
            "SELECT checkpoint FROM ingestion_state WHERE stream = 'messages'"
        )
        return value
    finally:
        await conn.close()


async def drain_ids(amqp_url: str, queue: str | None = None) -> Counter[str]:
    """Consume everything in the export queue now; message id -> how often it was there."""
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

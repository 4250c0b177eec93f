"""The contact puller: a 100,000-contact back-fill, alone and beside the message puller's
incremental loop, both drawing from one budget in PostgreSQL.

Setup: Turn allows 600 requests per 30 s; 100,000 contacts updated over 30 days, 5 new
messages per second arriving; contact pages of 500 (so the back-fill is bound by requests,
where the budget shows); pullers as processes, the simulator in a thread of this process.

1. baseline: the contact back-fill alone, so it may use the whole budget;
2. the same back-fill beside the message puller (incremental every 5 s, caught up first):
   the contact puller is capped at a third of the budget while the message puller has demand.

Measured: contacts/s published, each puller's share of Turn's allowance during the back-fill,
answers 429, and the message puller's lag (beyond its safety lag) during the back-fill.

    python -m benchmarks contacts      (through `make bench`, which sets DATABASE_URL/AMQP_URL)
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx

from benchmarks.environment import fresh_database, fresh_vhost
from benchmarks.figures import Figure, record
from tests.processes import ServiceProcess
from tests.waiting import eventually
from turnsim.config import SimConfig
from turnsim.dataset import Dataset, DatasetSpec
from turnsim.server import running
from turnsim.simulator import Simulator

LIMIT = 600
WINDOW = 30.0
CONTACTS = 100_000
PAGE_SIZE = 500
SHARE = 0.333
MESSAGE_INTERVAL = 5.0
MESSAGE_SAFETY_LAG = 5.0
NUMBER = "27600000000"
TIMEOUT = 150.0


@dataclass(frozen=True)
class Run:
    seconds: float
    published: float
    contact_requests: int
    message_requests: int
    rate_limited: int
    max_message_lag: float | None

    @property
    def allowed(self) -> float:
        return LIMIT * self.seconds / WINDOW

    @property
    def contacts_per_second(self) -> float:
        return self.published / self.seconds


def dataset() -> Dataset:
    end = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    spec = DatasetSpec(
        seed=43,
        messages=2000,
        contacts=CONTACTS,
        start=end - timedelta(days=30),
        end=end,
        business_number=NUMBER,
    )
    return Dataset.generate(spec)


def common(database_url: str, amqp_url: str, base_url: str) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "AMQP_URL": amqp_url,
        "BUSINESS_NUMBER_ID": NUMBER,
        "TURNIO_BASE_URL": base_url,
        "TURNIO_BEARER_TOKEN": "sim-token",
        "TURNIO_RATE_LIMIT": str(LIMIT),
        "TURNIO_RATE_WINDOW": str(WINDOW),
        "LOG_LEVEL": "WARNING",
    }


async def scalar(database_url: str, sql: str) -> object:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


async def published(url: str) -> float:
    async with httpx.AsyncClient(timeout=5.0) as client:
        text = (await client.get(f"{url}/metrics")).text
    found = re.findall(
        r'^turnio_contact_puller_contacts_published_total\{run="\w+"\} ([0-9.e+]+)$', text, re.M
    )
    return sum(float(value) for value in found)


@contextlib.asynccontextmanager
async def message_lag(database_url: str) -> AsyncIterator[list[float]]:
    """The message puller's lag beyond its safety lag, sampled every 0.2 s."""
    seen: list[float] = []

    async def sample() -> None:
        while True:
            lag = await scalar(
                database_url,
                "SELECT extract(epoch FROM now() - checkpoint) FROM ingestion_state "
                "WHERE stream = 'messages'",
            )
            if lag is not None:
                seen.append(float(str(lag)) - MESSAGE_SAFETY_LAG)
            await asyncio.sleep(0.2)

    task = asyncio.create_task(sample())
    try:
        yield seen
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def backfill(sim: Simulator, base_url: str, *, beside_messages: bool) -> Run:
    newest = max(
        datetime.fromisoformat(v.replace("Z", "+00:00"))
        for v in sim.dataset.contact_versions().values()
    )
    with fresh_database() as database_url, fresh_vhost() as amqp_url:
        env = common(database_url, amqp_url, base_url)
        messages = ServiceProcess(
            "services.message_puller",
            env
            | {
                "PULL_START_FROM": (datetime.now(UTC) - timedelta(minutes=1)).isoformat(),
                "PULL_INTERVAL": str(MESSAGE_INTERVAL),
                "PULL_SAFETY_LAG": str(MESSAGE_SAFETY_LAG),
                "PULL_OVERLAP": "10",
            },
        )
        contacts = ServiceProcess(
            "services.contact_puller",
            env
            | {
                "CONTACTS_START_FROM": (newest - timedelta(days=31)).isoformat(),
                "CONTACTS_PAGE_SIZE": str(PAGE_SIZE),
                "CONTACTS_BUDGET_SHARE": str(SHARE),
                "CONTACTS_SAFETY_LAG": "5",
            },
        )
        deadline = time.monotonic() + TIMEOUT
        try:
            if beside_messages:
                messages.start()
                await messages.ready(timeout=60)

                async def messages_caught_up() -> bool:
                    lag = await scalar(
                        database_url,
                        "SELECT now() - checkpoint < interval '30 seconds' "
                        "FROM ingestion_state WHERE stream = 'messages'",
                    )
                    return bool(lag)

                await eventually(
                    messages_caught_up,
                    timeout=deadline - time.monotonic(),
                    interval=0.2,
                    what="message puller caught up",
                )
            async with message_lag(database_url) as lags:
                before = len(sim.request_log())
                before_429 = sim.stats().rate_limited
                contacts.start()
                await contacts.ready(timeout=60)
                started = time.monotonic()

                async def contacts_done() -> bool:
                    value = await scalar(
                        database_url,
                        "SELECT checkpoint FROM ingestion_state WHERE stream = 'contacts'",
                    )
                    return isinstance(value, datetime) and value >= newest

                await eventually(
                    contacts_done,
                    timeout=deadline - time.monotonic(),
                    interval=0.2,
                    what="contact back-fill",
                )
                seconds = time.monotonic() - started
                items = await published(contacts.url)
                log = [e for e in sim.request_log()[before:] if e.monotonic >= started]
                rate_limited = sim.stats().rate_limited - before_429
        finally:
            contacts.terminate()
            if messages.proc is not None:
                messages.terminate()
    return Run(
        seconds=seconds,
        published=items,
        contact_requests=sum(1 for e in log if "contact_puller" in e.client),
        message_requests=sum(1 for e in log if "message_puller" in e.client),
        rate_limited=rate_limited,
        max_message_lag=max(lags) if beside_messages and lags else None,
    )


async def measure_all() -> tuple[Run, Run]:
    print(f"  generating {CONTACTS:,} contacts ...", flush=True)
    data = dataset()
    sim = Simulator(data, SimConfig(rate_limit=LIMIT, rate_window=WINDOW, arrival_rate=5.0))
    with running(sim) as base_url:
        print("  baseline: the contact back-fill alone ...", flush=True)
        alone = await backfill(sim, base_url, beside_messages=False)
        print(f"    {alone}", flush=True)
        print("  the contact back-fill beside the message puller ...", flush=True)
        beside = await backfill(sim, base_url, beside_messages=True)
        print(f"    {beside}", flush=True)
    return alone, beside


def row(name: str, run: Run) -> str:
    lag = f"{run.max_message_lag:.1f} s" if run.max_message_lag is not None else "-"
    return (
        f"| {name} | {run.seconds:.1f} | {run.contacts_per_second:,.0f} "
        f"| {run.contact_requests / run.allowed:.1%} | {run.message_requests / run.allowed:.1%} "
        f"| {run.rate_limited} | {lag} |"
    )


def run() -> str:
    alone, beside = asyncio.run(measure_all())
    bound = 2 * MESSAGE_INTERVAL + 1
    speed = beside.contacts_per_second / alone.contacts_per_second
    record(
        Figure(
            "contact puller",
            throughput=beside.contacts_per_second,
            unit="contacts/s",
            baseline="contacts alone",
            baseline_throughput=alone.contacts_per_second,
        )
    )
    held = beside.contact_requests / beside.allowed
    lag_ok = beside.max_message_lag is not None and beside.max_message_lag <= bound
    return f"""## Contact puller

Simulated Turn allowing {LIMIT} requests per {WINDOW:.0f} s; {CONTACTS:,} contacts updated
over 30 days, pages of {PAGE_SIZE}; 5 messages/s arriving. Back-fill from an empty database
until the contact checkpoint reaches the newest `updated_at`. Baseline: the same back-fill
alone. Shares are of Turn's allowance over the back-fill's duration; the budget itself keeps a
0.9 margin, and caps the contact puller at {SHARE:.1%} of that while the message puller
(incremental every {MESSAGE_INTERVAL:.0f} s) has demand.

| run | seconds | contacts/s | contact share | message share | 429s | max message lag |
|---|---|---|---|---|---|---|
{row("baseline: contacts alone", alone)}
{row("beside the message puller", beside)}

- Beside the message puller the back-fill runs at {speed:.0%} of its speed alone, holding
  {held:.1%} of the allowance (cap {SHARE * 0.9:.1%} in any {WINDOW:.0f} s window; the run
  spans a little more than one); 429s: {alone.rate_limited + beside.rate_limited}.
- Message lag is the message checkpoint's age beyond its safety lag, sampled every 0.2 s.
  It stayed within two intervals plus one second of whole-second window
  boundaries ({bound:.0f} s): {"yes" if lag_ok else "NO"}.
"""

"""Wiring: database, broker, rate budget, Turn client, lease -> the pull loop; probes; SIGTERM.

Every replica connects, serves its probes and competes for the lease; the holder pulls, the
others stand by. /ready answers 200 for a standby too: readiness gates rollouts and traffic,
and a healthy standby is exactly what a rollout should count as available (no Service sends
it anything). Which replica pulls is visible in `turnio_message_puller_lease_held` and in
the `leases` table.

SIGTERM (or SIGINT): the loop stops between pages, the page in flight is published and
confirmed, the lease is released so a standby takes over at once, then everything closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

import asyncpg

from services.message_puller import metrics
from services.message_puller.pull import WindowReader
from services.message_puller.puller import MessagePuller
from services.message_puller.settings import SERVICE, STREAM, PullerSettings
from shared import logs
from shared.broker import Publisher, Topology
from shared.checkpoint import Checkpoint
from shared.database import CONNECTION_ERRORS, create_pool
from shared.lease import Lease, LeaseKeeper, lease_name
from shared.probes import ProbeServer
from shared.rate_budget import BudgetPolicy, RateBudget
from shared.schedule import Backfills, Sweeps
from shared.turn_client import TurnClient, user_agent

log = logging.getLogger(__name__)

DB_CHECK_EVERY = 5.0


async def connect_database(url: str, stop: asyncio.Event) -> asyncpg.Pool | None:
    """A pool, retrying while PostgreSQL is away; None when stopped first."""
    delay = 0.2
    while not stop.is_set():
        try:
            return await create_pool(url, min_size=1, max_size=4)
        except CONNECTION_ERRORS as exc:
            log.warning("database not reachable, retrying", extra={"error": repr(exc)})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(delay * 2, 5.0)
    return None


class Health:
    def __init__(self, publisher: Publisher) -> None:
        self.publisher = publisher
        self.database = False

    def ready(self) -> dict[str, bool]:
        return {"database": self.database, "broker": self.publisher.connected}

    async def watch_database(self, pool: asyncpg.Pool) -> None:
        while True:
            try:
                await pool.fetchval("SELECT 1", timeout=DB_CHECK_EVERY)
                self.database = True
            except CONNECTION_ERRORS:
                self.database = False
            await asyncio.sleep(DB_CHECK_EVERY)


async def run(settings: PullerSettings, stop: asyncio.Event | None = None) -> None:
    """Run until SIGTERM/SIGINT, or until `stop` is set when one is given (tests embed it)."""
    if stop is None:
        logs.setup(settings.log_level, secrets=settings.secrets())
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    log.info("starting", extra={"settings": repr(settings)})

    number = settings.common.business_number_id
    publisher = Publisher(
        settings.common.amqp_url,
        Topology(settings.common.queue_prefix),
        confirm_timeout=settings.publish_confirm_timeout,
        name=f"{SERVICE} {settings.instance}",
    )
    health = Health(publisher)
    probes = ProbeServer(health.ready, settings.host, settings.port)
    await publisher.start()
    await probes.start()
    pool = await connect_database(settings.common.database_url, stop)
    if pool is None:
        await probes.stop()
        await publisher.close()
        return
    watcher = asyncio.create_task(health.watch_database(pool), name="db-watch")
    budget = RateBudget(
        pool,
        number,
        STREAM,
        BudgetPolicy(settings.rate_limit, settings.rate_window, settings.rate_margin),
        on_wait=metrics.BUDGET_WAIT.inc,
    )
    client = TurnClient(
        settings.turnio_base_url,
        settings.turnio_bearer_token,
        budget,
        agent=user_agent(SERVICE, settings.instance),
        timeout=settings.request_timeout,
        on_response=lambda status: metrics.API_REQUESTS.labels(status).inc(),
        on_throttled=lambda _: metrics.RATE_LIMITED.inc(),
    )
    lease = Lease(pool, lease_name(number, STREAM), settings.instance, settings.lease_ttl)
    keeper = LeaseKeeper(lease, on_change=lambda held: metrics.LEASE_HELD.set(int(held)))
    reader = WindowReader(
        client,
        publisher,
        business_number_id=number,
        page_size=settings.page_size,
        concurrency=settings.publish_concurrency,
    )
    puller = MessagePuller(
        settings,
        reader,
        Checkpoint(pool, number, STREAM),
        Sweeps(pool, number, STREAM),
        Backfills(pool, number, STREAM),
        lease=(lease.name, lease.holder),
    )

    async def work() -> None:
        await budget_setup(budget, stop)
        await puller.run(stop)

    keeping = asyncio.create_task(keeper.run(work, stop), name="lease-keeper")
    stopping = asyncio.create_task(stop.wait(), name="stop")
    try:
        await asyncio.wait({keeping, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if keeping.done():
            keeping.result()  # a bug surfaced: exit non-zero, the orchestrator restarts us
        # The loop notices `stop` between pages; past the grace period it is cancelled.
        try:
            await asyncio.wait_for(keeping, settings.graceful_shutdown_seconds)
        except TimeoutError:
            log.error("pull did not stop in time; cancelled")
    finally:
        stopping.cancel()
        watcher.cancel()
        await probes.stop()
        await client.close()
        await publisher.close()
        await pool.close()
        log.info("stopped")


async def budget_setup(budget: RateBudget, stop: asyncio.Event) -> None:
    delay = 0.2
    while not stop.is_set():
        try:
            await budget.setup()
            return
        except CONNECTION_ERRORS as exc:
            log.warning("rate budget setup failed, retrying", extra={"error": repr(exc)})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(delay * 2, 5.0)

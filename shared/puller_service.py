"""A lease-guarded Data Export puller as a service: database, broker, rate budget, Turn client
and lease wired around the puller's own loop; probes; SIGTERM.

Every replica connects, serves its probes and competes for the lease; the holder pulls, the
others stand by. /ready answers 200 for a standby too: readiness gates rollouts and traffic,
and a healthy standby is exactly what a rollout should count as available (no Service sends
it anything). Which replica pulls is visible in the service's `..._lease_held` gauge and in
the `leases` table.

SIGTERM (or SIGINT): the loop stops between pages, the page in flight is published and
confirmed, the lease is released so a standby takes over at once, then everything closes.
Past GRACEFUL_SHUTDOWN_TIMEOUT the loop is cancelled.

Each service keeps its own metric names: it passes its gauges and counters in.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg
from prometheus_client import Counter, Gauge

from shared import logs
from shared.broker import Publisher, Topology
from shared.database import CONNECTION_ERRORS, create_pool, database_answers
from shared.lease import Lease, LeaseKeeper, lease_name
from shared.probes import ProbeServer
from shared.puller_settings import PullerSettingsBase
from shared.rate_budget import RateBudget
from shared.turn_client import TurnClient, user_agent

log = logging.getLogger(__name__)

DB_CHECK_EVERY = 5.0


async def wait_or_stop(stop: asyncio.Event, seconds: float) -> None:
    """Sleep `seconds`, or less when `stop` is set meanwhile."""
    if seconds <= 0:
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def connect_database(
    url: str, stop: asyncio.Event, *, max_size: int = 4
) -> asyncpg.Pool | None:
    """A pool, retrying while PostgreSQL is away; None when stopped first."""
    delay = 0.2
    while not stop.is_set():
        try:
            return await create_pool(url, min_size=1, max_size=max_size)
        except CONNECTION_ERRORS as exc:
            log.warning("database not reachable, retrying", extra={"error": repr(exc)})
            await wait_or_stop(stop, delay)
            delay = min(delay * 2, 5.0)
    return None


async def budget_setup(budget: RateBudget, stop: asyncio.Event) -> None:
    """The budget's rows created, retrying while PostgreSQL is away (or until stopped)."""
    delay = 0.2
    while not stop.is_set():
        try:
            await budget.setup()
            return
        except CONNECTION_ERRORS as exc:
            log.warning("rate budget setup failed, retrying", extra={"error": repr(exc)})
            await wait_or_stop(stop, delay)
            delay = min(delay * 2, 5.0)


class Health:
    def __init__(self, publisher: Publisher) -> None:
        self.publisher = publisher
        self.database = False

    def ready(self) -> dict[str, bool]:
        return {"database": self.database, "broker": self.publisher.connected}

    async def watch_database(self, url: str) -> None:
        while True:
            self.database = await database_answers(url, within=DB_CHECK_EVERY)
            await asyncio.sleep(DB_CHECK_EVERY)


@dataclass(frozen=True)
class ServiceMetrics:
    """The service's own: `api_requests` labelled by answer status."""

    lease_held: Gauge
    api_requests: Counter
    rate_limited: Counter
    budget_wait: Counter


@dataclass(frozen=True)
class Parts:
    """What the wiring hands the service to build its puller from."""

    pool: asyncpg.Pool
    publisher: Publisher
    client: TurnClient
    lease: Lease

    @property
    def fence(self) -> tuple[str, str]:
        """(lease name, holder): what a checkpoint advance is fenced by."""
        return self.lease.name, self.lease.holder


Loop = Callable[[asyncio.Event], Awaitable[None]]


async def run_puller(
    settings: PullerSettingsBase,
    stop: asyncio.Event | None,
    *,
    service: str,
    stream: str,
    metrics: ServiceMetrics,
    build: Callable[[Parts], Loop],
) -> None:
    """Run until SIGTERM/SIGINT, or until `stop` is set when one is given (tests embed it).
    `build` returns the puller's loop, run while this replica holds the lease."""
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
        name=f"{service} {settings.instance}",
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
    watcher = asyncio.create_task(
        health.watch_database(settings.common.database_url), name="db-watch"
    )
    budget = RateBudget(
        pool, number, stream, settings.budget_policy(), on_wait=metrics.budget_wait.inc
    )
    client = TurnClient(
        settings.turnio_base_url,
        settings.turnio_bearer_token,
        budget,
        agent=user_agent(service, settings.instance),
        timeout=settings.request_timeout,
        on_response=lambda status: metrics.api_requests.labels(status).inc(),
        on_throttled=lambda _: metrics.rate_limited.inc(),
    )
    lease = Lease(pool, lease_name(number, stream), settings.instance, settings.lease_ttl)
    keeper = LeaseKeeper(lease, on_change=lambda held: metrics.lease_held.set(int(held)))
    pull = build(Parts(pool, publisher, client, lease))

    async def work() -> None:
        await budget_setup(budget, stop)
        await pull(stop)

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

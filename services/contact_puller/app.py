"""Wiring: database, broker, rate budget (a capped share), Turn client, lease -> the run loop;
probes; SIGTERM.

As with the message puller, every replica connects, serves its probes and competes for the
lease; the holder pulls, the others stand by (and are ready: a healthy standby is what a
rollout should count). The budget is the one the message puller draws from, in PostgreSQL;
this client is capped at CONTACTS_BUDGET_SHARE of it while the message puller has demand.

SIGTERM (or SIGINT): every window stops after its page in flight is published and confirmed,
the run is abandoned (its checkpoint not moved), the lease is released, everything closes.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from services.contact_puller import metrics
from services.contact_puller.puller import ContactPuller
from services.contact_puller.reader import ContactReader, CursorGate
from services.contact_puller.settings import SERVICE, STREAM, ContactSettings

# General wiring that lives in the message puller for now (see the report: shared/ material).
from services.message_puller.app import Health, budget_setup, connect_database
from shared import logs
from shared.broker import Publisher, Topology
from shared.checkpoint import Checkpoint
from shared.lease import Lease, LeaseKeeper, lease_name
from shared.probes import ProbeServer
from shared.rate_budget import BudgetPolicy, RateBudget
from shared.schedule import Backfills
from shared.turn_client import TurnClient, user_agent

log = logging.getLogger(__name__)


async def run(settings: ContactSettings, stop: asyncio.Event | None = None) -> None:
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
        BudgetPolicy(
            settings.rate_limit,
            settings.rate_window,
            settings.rate_margin,
            share=settings.budget_share,
        ),
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
    reader = ContactReader(
        client,
        publisher,
        CursorGate(settings.cursor_stagger),
        business_number_id=number,
        page_size=settings.page_size,
        concurrency=settings.concurrency,
        publish_concurrency=settings.publish_concurrency,
        forbidden_retries=settings.forbidden_retries,
        forbidden_backoff=settings.forbidden_backoff,
    )
    puller = ContactPuller(
        settings,
        reader,
        Checkpoint(pool, number, STREAM),
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

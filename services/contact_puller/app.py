"""Wiring the contact puller into a lease-guarded service (shared/puller_service.py: database,
broker, rate budget, Turn client, lease, probes, SIGTERM): the contact export read in parallel
windows (reader.py), each contact published as its own event, and the puller's loop
(puller.py) run while this replica holds the lease.

The budget is the one the message puller draws from, in PostgreSQL; this client is capped at
CONTACTS_BUDGET_SHARE of it while the message puller has demand (settings.budget_policy).
SIGTERM: every window stops after its page in flight is published and confirmed, the run is
abandoned (its checkpoint not moved), the lease is released, everything closes.
"""

from __future__ import annotations

import asyncio

from services.contact_puller import metrics
from services.contact_puller.puller import ContactPuller
from services.contact_puller.reader import ContactReader, CursorGate
from services.contact_puller.settings import SERVICE, STREAM, ContactSettings
from shared.checkpoint import Checkpoint
from shared.puller_service import Loop, Parts, ServiceMetrics, run_puller
from shared.schedule import Backfills

SERVICE_METRICS = ServiceMetrics(
    lease_held=metrics.LEASE_HELD,
    api_requests=metrics.API_REQUESTS,
    rate_limited=metrics.RATE_LIMITED,
    budget_wait=metrics.BUDGET_WAIT,
)


def build(settings: ContactSettings, parts: Parts) -> Loop:
    number = settings.common.business_number_id
    reader = ContactReader(
        parts.client,
        parts.publisher,
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
        Checkpoint(parts.pool, number, STREAM),
        Backfills(parts.pool, number, STREAM),
        lease=parts.fence,
    )
    return puller.pull


async def run(settings: ContactSettings, stop: asyncio.Event | None = None) -> None:
    """Run until SIGTERM/SIGINT, or until `stop` is set when one is given (tests embed it)."""
    await run_puller(
        settings,
        stop,
        service=SERVICE,
        stream=STREAM,
        metrics=SERVICE_METRICS,
        build=lambda parts: build(settings, parts),
    )

"""Wiring the message puller into a lease-guarded service (shared/puller_service.py: database,
broker, rate budget, Turn client, lease, probes, SIGTERM): the message export read window by
window (shared/export_reader.py), each item published as its own event, and the puller's
loop (puller.py) run while this replica holds the lease.

Which replica pulls is visible in `turnio_message_puller_lease_held` and in the `leases` table.
"""

from __future__ import annotations

import asyncio

from services.message_puller import metrics
from services.message_puller.items import message_id, message_time
from services.message_puller.puller import MessagePuller
from services.message_puller.settings import SERVICE, STREAM, PullerSettings
from shared.broker import ROUTE_EXPORT_MESSAGE
from shared.checkpoint import Checkpoint
from shared.export_publisher import ExportPublisher
from shared.export_reader import ExportReader, ReaderMetrics
from shared.puller_service import Loop, Parts, ServiceMetrics, run_puller
from shared.schedule import Backfills, Sweeps

SERVICE_METRICS = ServiceMetrics(
    lease_held=metrics.LEASE_HELD,
    api_requests=metrics.API_REQUESTS,
    rate_limited=metrics.RATE_LIMITED,
    budget_wait=metrics.BUDGET_WAIT,
)
READER_METRICS = ReaderMetrics(
    scanned=metrics.ITEMS_SCANNED,
    published=metrics.ITEMS_PUBLISHED,
    recreations=metrics.CURSOR_RECREATIONS,
    splits=metrics.WINDOW_SPLITS,
)


def build(settings: PullerSettings, parts: Parts) -> Loop:
    number = settings.common.business_number_id
    items = ExportPublisher(
        parts.publisher,
        kind="message",
        route=ROUTE_EXPORT_MESSAGE,
        identity=message_id,
        business_number_id=number,
        concurrency=settings.publish_concurrency,
    )
    reader = ExportReader(
        parts.client,
        items,
        READER_METRICS,
        stream=STREAM,
        item_time=message_time,
        page_size=settings.page_size,
    )
    puller = MessagePuller(
        settings,
        reader,
        Checkpoint(parts.pool, number, STREAM),
        Sweeps(parts.pool, number, STREAM),
        Backfills(parts.pool, number, STREAM),
        lease=parts.fence,
    )
    return puller.pull


async def run(settings: PullerSettings, stop: asyncio.Event | None = None) -> None:
    """Run until SIGTERM/SIGINT, or until `stop` is set when one is given (tests embed it)."""
    await run_puller(
        settings,
        stop,
        service=SERVICE,
        stream=STREAM,
        metrics=SERVICE_METRICS,
        build=lambda parts: build(settings, parts),
    )

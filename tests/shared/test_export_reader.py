"""The window reader against the simulator and a real broker."""

import asyncio
from datetime import timedelta

import pytest
from prometheus_client import CollectorRegistry, Counter

from services.message_puller.items import message_id, message_time
from shared.broker import ROUTE_EXPORT_MESSAGE
from shared.export_publisher import ExportPublisher
from shared.export_reader import ExportReader, Interrupted, Progress, ReaderMetrics
from shared.turn_client import TurnClient
from shared.window import Window
from tests.shared.simulated_export import budget_and_publisher, drain_ids, spec_before_now, turn


def counters() -> ReaderMetrics:
    registry = CollectorRegistry()
    return ReaderMetrics(
        scanned=Counter("scanned", "-", ["run"], registry=registry),
        published=Counter("published", "-", ["run"], registry=registry),
        recreations=Counter("recreations", "-", ["reason"], registry=registry),
        splits=Counter("splits", "-", registry=registry),
    )


@pytest.fixture
async def parts(database_url, amqp_url):
    async with budget_and_publisher(database_url, amqp_url, "messages") as both:
        yield both


def reader_for(t, budget, publisher, metrics, *, page_size=50):
    client = TurnClient(t.url, t.sim.config.token, budget, agent="test", backoff=0.01)
    items = ExportPublisher(
        publisher,
        kind="message",
        route=ROUTE_EXPORT_MESSAGE,
        identity=message_id,
        business_number_id="27600000000",
        concurrency=50,
    )
    reader = ExportReader(
        client, items, metrics, stream="messages", item_time=message_time, page_size=page_size
    )
    return reader, client


async def test_expired_cursors_and_failures_are_recreated_and_every_item_published(parts, amqp_url):
    budget, publisher = parts
    spec = spec_before_now(messages=600, contacts=10, days=1, seed=7)
    metrics = counters()
    with turn(spec, rate_limit=1000, rate_window=1.0, cursor_ttl=0.2, latency=0.02) as t:
        reader, client = reader_for(t, budget, publisher, metrics)
        try:
            progress = await reader.read(
                Window(spec.start, spec.end + timedelta(seconds=1)), "incremental", asyncio.Event()
            )
        finally:
            await client.close()
        stats = t.sim.stats()
    assert stats.cursors_expired > 0 and progress.recreations > 0
    assert set(await drain_ids(amqp_url)) == t.sim.dataset.message_ids()
    assert progress.published >= 600 and progress.newest is not None
    assert progress.newest <= spec.end
    assert metrics.published.labels("incremental")._value.get() == progress.published


async def test_a_stop_leaves_the_window_unfinished(parts):
    budget, publisher = parts
    spec = spec_before_now(messages=300, contacts=10, days=1, seed=8)
    stop = asyncio.Event()
    stop.set()
    with turn(spec, rate_limit=1000, rate_window=1.0) as t:
        reader, client = reader_for(t, budget, publisher, counters())
        try:
            with pytest.raises(Interrupted):
                await reader.read(Window(spec.start, spec.end), "incremental", stop)
        finally:
            await client.close()


def test_progress_adds_up_and_keeps_the_newest():
    a, b = Progress(scanned=2, published=2), Progress(scanned=3, published=1, splits=1)
    t0 = spec_before_now(messages=1, contacts=1, days=1, seed=1).start
    a.saw(t0 + timedelta(seconds=5))
    a.saw(t0)
    b.saw(t0 + timedelta(seconds=9))
    a.add(b)
    assert (a.scanned, a.published, a.splits) == (5, 3, 1)
    assert a.newest == t0 + timedelta(seconds=9)

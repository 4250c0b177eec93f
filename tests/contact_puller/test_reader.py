"""The reader against the simulator and a real broker: staggered cursors and 403s."""

import asyncio
import itertools
import time
from datetime import timedelta

import pytest

from services.contact_puller.reader import ContactReader, CursorGate, MissingPermission
from shared.turn_client import TurnClient
from shared.window import Window
from tests.contact_puller.conftest import contact_spec
from tests.shared.simulated_export import budget_and_publisher, turn


async def test_the_gate_spaces_turns_apart():
    gate = CursorGate(0.05)
    times = []

    async def one():
        await gate.turn()
        times.append(time.monotonic())

    await asyncio.gather(*(one() for _ in range(4)))
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(gap >= 0.045 for gap in gaps), gaps


@pytest.fixture
async def parts(database_url, amqp_url):
    async with budget_and_publisher(database_url, amqp_url, "contacts") as both:
        yield both


def reader_for(t, budget, publisher, *, stagger, retries=6, backoff=0.2):
    client = TurnClient(t.url, t.sim.config.token, budget, agent="test")
    reader = ContactReader(
        client,
        publisher,
        CursorGate(stagger),
        business_number_id="27600000000",
        page_size=100,
        concurrency=8,
        publish_concurrency=100,
        forbidden_retries=retries,
        forbidden_backoff=backoff,
    )
    return reader, client


def windows_of(spec, n):
    step = (spec.end - spec.start) / n
    return [
        Window(spec.start + step * i, spec.end if i == n - 1 else spec.start + step * (i + 1))
        for i in range(n)
    ]


async def test_a_burst_of_403s_is_retried_until_every_window_is_read(parts):
    budget, publisher = parts
    spec = contact_spec(800)
    with turn(spec, rate_limit=1000, rate_window=1.0, contact_cursor_403_burst=2) as t:
        reader, client = reader_for(t, budget, publisher, stagger=0)
        try:
            progress = await reader.read_all(windows_of(spec, 8), "incremental", asyncio.Event())
        finally:
            await client.close()
        stats = t.sim.stats()
    assert stats.forbidden_403 > 0
    assert progress.published == 800
    assert stats.cursors_created["contacts"] == 8


async def test_staggered_creation_meets_no_403(parts):
    budget, publisher = parts
    spec = contact_spec(300)
    with turn(spec, rate_limit=1000, rate_window=1.0, contact_cursor_403_burst=1) as t:
        reader, client = reader_for(t, budget, publisher, stagger=1.05)
        try:
            progress = await reader.read_all(windows_of(spec, 3), "incremental", asyncio.Event())
        finally:
            await client.close()
        stats = t.sim.stats()
    assert stats.forbidden_403 == 0
    assert progress.published == 300


async def test_a_persistent_403_is_a_clear_error_after_bounded_retries(parts):
    budget, publisher = parts
    spec = contact_spec(50)
    # A burst of 0 refuses every contact cursor: what a token without the permission sees.
    with turn(spec, rate_limit=1000, rate_window=1.0, contact_cursor_403_burst=0) as t:
        reader, client = reader_for(t, budget, publisher, stagger=0, retries=3, backoff=0.01)
        try:
            with pytest.raises(MissingPermission, match="lacks permission"):
                await reader.read_all(windows_of(spec, 1), "incremental", asyncio.Event())
        finally:
            await client.close()
        stats = t.sim.stats()
    assert stats.forbidden_403 == 4


async def test_a_failing_window_cancels_the_run(parts):
    budget, publisher = parts
    spec = contact_spec(200)
    with turn(spec, rate_limit=1000, rate_window=1.0) as t:
        reader, client = reader_for(t, budget, publisher, stagger=0)
        future = spec.end + timedelta(days=365)  # Turn refuses an `until` in the future
        windows = [*windows_of(spec, 2), Window(spec.end, future)]
        try:
            with pytest.raises(Exception, match="future"):
                await reader.read_all(windows, "incremental", asyncio.Event())
        finally:
            await client.close()

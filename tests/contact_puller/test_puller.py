"""The contact puller in-process against the simulator, real PostgreSQL and RabbitMQ."""

from __future__ import annotations

import httpx
from prometheus_client import REGISTRY

from services.contact_puller.settings import STREAM
from shared.puller_command import request_backfill
from tests.conftest import BUSINESS_NUMBER
from tests.contact_puller.conftest import (
    contact_checkpoint,
    contact_env,
    contact_puller_running,
    contact_spec,
    drain_contacts,
    newest_version,
)
from tests.shared.simulated_export import turn
from tests.waiting import eventually


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def caught_up(database_url, t):
    newest = newest_version(t)
    return await eventually(
        lambda: contact_checkpoint(database_url),
        until=lambda c: c is not None and c >= newest,
        timeout=60,
        interval=0.1,
        what="contact checkpoint at the newest updated_at",
    )


async def test_first_run_publishes_every_contact_and_checkpoints_the_newest_updated_at(
    database_url, amqp_url
):
    spec = contact_spec(3000)
    published = sample("turnio_contact_puller_contacts_published_total", run="incremental")
    with turn(spec, rate_limit=200, rate_window=1.0) as t:
        env = contact_env(database_url, amqp_url, t, CONTACTS_PAGE_SIZE="250")
        async with contact_puller_running(env):
            value = await caught_up(database_url, t)
            async with httpx.AsyncClient() as client:
                metrics = (await client.get(f"http://127.0.0.1:{env['PORT']}/metrics")).text
                ready = await client.get(f"http://127.0.0.1:{env['PORT']}/ready")
        ids = await drain_contacts(amqp_url)
        stats = t.sim.stats()
        clients = {entry.client for entry in t.sim.request_log()}
    # Exactly the newest updated_at: Turn's clock, not ours.
    assert value == newest_version(t)
    assert set(ids) == t.sim.dataset.contact_ids()
    assert ids.total() < len(ids) * 1.05  # only the overlap is read twice
    assert stats.rate_limited == 0
    assert stats.cursors_created["contacts"] >= 4  # one per window, per run
    assert len(clients) == 1 and next(iter(clients)).startswith("turnio-ingest/contact_puller (")
    assert ready.status_code == 200
    assert "turnio_contact_puller_lag_seconds" in metrics
    assert 'turnio_contact_puller_api_requests_total{status="200"}' in metrics
    after = sample("turnio_contact_puller_contacts_published_total", run="incremental")
    assert after - published >= 3000


async def test_403_bursts_on_cursor_creation_are_retried(database_url, amqp_url):
    spec = contact_spec(1000)
    retries = sample("turnio_contact_puller_cursor_forbidden_retries_total")
    with turn(spec, rate_limit=500, rate_window=1.0, contact_cursor_403_burst=2) as t:
        env = contact_env(
            database_url,
            amqp_url,
            t,
            CONTACTS_WINDOWS="6",
            CONTACTS_CONCURRENCY="6",
            CONTACTS_FORBIDDEN_BACKOFF="0.2",
            CONTACTS_FORBIDDEN_RETRIES="8",
        )
        async with contact_puller_running(env):
            await caught_up(database_url, t)
        ids = await drain_contacts(amqp_url)
        stats = t.sim.stats()
    assert set(ids) == t.sim.dataset.contact_ids()
    assert stats.forbidden_403 > 0
    assert sample("turnio_contact_puller_cursor_forbidden_retries_total") - retries > 0


async def test_a_persistent_403_fails_the_run_clearly_and_moves_nothing(database_url, amqp_url):
    spec = contact_spec(200)
    errors = sample("turnio_contact_puller_errors_total", category="forbidden")
    with turn(spec, rate_limit=500, rate_window=1.0, contact_cursor_403_burst=0) as t:
        env = contact_env(database_url, amqp_url, t, CONTACTS_FORBIDDEN_RETRIES="2")
        async with contact_puller_running(env):

            async def forbidden() -> float:
                return sample("turnio_contact_puller_errors_total", category="forbidden")

            await eventually(
                forbidden,
                until=lambda n: n > errors,
                timeout=20,
                what="the run failed as forbidden",
            )
        stats = t.sim.stats()
    assert await contact_checkpoint(database_url) == spec.start  # created, never advanced
    assert stats.forbidden_403 >= 3  # the first try and two retries, then it waits
    assert stats.by_status.get(200, 0) == 0


async def test_a_backfill_request_is_executed_and_leaves_the_checkpoint_alone(
    database_url, amqp_url, db
):
    spec = contact_spec(1500)
    with turn(spec, rate_limit=300, rate_window=1.0) as t:
        env = contact_env(database_url, amqp_url, t, CONTACTS_PAGE_SIZE="200")
        async with contact_puller_running(env):
            checkpoint = await caught_up(database_url, t)
            await drain_contacts(amqp_url)
            middle = spec.start + (spec.end - spec.start) / 2
            request = await request_backfill(
                database_url, BUSINESS_NUMBER, STREAM, spec.start.isoformat(), middle.isoformat()
            )
            await eventually(
                lambda: db.fetchval(
                    "SELECT finished_at IS NOT NULL FROM backfill_requests WHERE id = $1", request
                ),
                timeout=30,
                what="the back-fill finished",
            )
            row = await db.fetchrow("SELECT stream, error FROM backfill_requests")
            assert await contact_checkpoint(database_url) == checkpoint
        ids = await drain_contacts(amqp_url)
    wanted = {str(c["id"]) for c in t.sim.dataset.contacts_between(spec.start, middle)}
    assert tuple(row) == ("contacts", None)
    assert wanted and wanted <= set(ids)

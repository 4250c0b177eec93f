"""The puller as a real process (SIGKILL, two replicas) and the writer storing what it pulls:
exactly once in PostgreSQL, whatever happens to the puller."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from datetime import datetime

import asyncpg
import pytest

from shared.broker import (
    H_BUSINESS_NUMBER,
    H_DELIVERY_ID,
    H_RECEIVED_AT,
    H_SOURCE,
    H_SUBSCRIPTION,
    H_WHATSAPP_ID,
    Publisher,
    Topology,
    new_delivery_id,
    utc_now_iso,
    webhook_route,
)
from tests.conftest import BUSINESS_NUMBER
from tests.message_puller.conftest import checkpoint, puller_env, recent_spec
from tests.processes import ROOT, ServiceProcess
from tests.shared.simulated_export import Turn, drain_ids, sampled, turn, writer_env
from tests.waiting import eventually

pytestmark = pytest.mark.slow


async def stored_messages(database_url: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM messages"))
    finally:
        await conn.close()


def watch_checkpoint(database_url: str) -> contextlib.AbstractAsyncContextManager[list[datetime]]:
    """Every checkpoint value seen while the block runs, sampled often."""
    return sampled(lambda: checkpoint(database_url))


async def assert_stored_exactly_once(db, t: Turn) -> None:
    truth = t.sim.dataset.message_ids()
    rows = await db.fetch("SELECT external_id FROM messages")
    ids = [r["external_id"] for r in rows]
    assert len(ids) == len(set(ids))
    assert set(ids) == truth
    events = await db.fetchval("SELECT count(*) FROM webhook_events WHERE event_type = 'message'")
    assert events == len(truth)


async def wait_all_stored(database_url: str, total: int, timeout: float = 120) -> None:
    await eventually(
        lambda: stored_messages(database_url),
        until=lambda n: n >= total,
        timeout=timeout,
        interval=0.25,
        what=f"{total} messages stored",
    )


async def test_20k_backfill_from_empty_is_stored_exactly_once(database_url, amqp_url, db):
    spec = recent_spec(20_000, seed=21)
    with turn(spec, rate_limit=100, rate_window=1.0) as t:
        env = puller_env(database_url, amqp_url, t)
        with (
            ServiceProcess("services.db_writer", writer_env(env)) as writer,
            ServiceProcess("services.message_puller", env) as puller,
        ):
            await puller.ready()
            await writer.ready()
            await wait_all_stored(database_url, len(t.sim.dataset.message_ids()))
            assert puller.terminate() == 0
            # A graceful stop hands the lease back: a standby need not wait for the expiry.
            assert await db.fetchval("SELECT count(*) FROM leases") == 0
        stats = t.sim.stats()
    await assert_stored_exactly_once(db, t)
    assert stats.rate_limited == 0


async def test_sigkill_mid_window_with_faults_still_stores_exactly_once(database_url, amqp_url, db):
    """5 % 5xx, cursors living 0.5 s, 2 % late arrivals; the puller is SIGKILLed part-way
    through a window and restarted."""
    spec = recent_spec(20_000, seed=22)
    with turn(
        spec,
        rate_limit=100,
        rate_window=1.0,
        error_rate=0.05,
        cursor_ttl=0.5,
        late_share=0.02,
        late_delay=1.0,
        seed=9,
    ) as t:
        env = puller_env(
            database_url,
            amqp_url,
            t,
            PULL_PAGE_SIZE="250",
            RECOVERY_SWEEP_EVERY="2",
            RECOVERY_SWEEP_SPAN=str(3 * 86400),
        )
        total = len(t.sim.dataset.message_ids())
        async with watch_checkpoint(database_url) as seen:
            with ServiceProcess("services.db_writer", writer_env(env)) as writer:
                await writer.ready()
                with ServiceProcess("services.message_puller", env) as first:
                    await first.ready()
                    await eventually(
                        lambda: stored_messages(database_url),
                        until=lambda n: n >= 3000,
                        timeout=60,
                        what="some messages stored",
                    )
                    first.kill()
                at_kill = await checkpoint(database_url)
                assert at_kill is None or at_kill < spec.end, "finished before the kill"
                with ServiceProcess("services.message_puller", env) as second:
                    await second.ready()
                    await wait_all_stored(database_url, total)
                    assert second.terminate() == 0
        stats = t.sim.stats()
    await assert_stored_exactly_once(db, t)
    assert seen == sorted(seen), "the checkpoint moved backwards"
    assert stats.injected_5xx > 0 and stats.cursors_expired > 0
    assert stats.rate_limited == 0


async def test_two_replicas_pull_one_at_a_time_and_fail_over_after_sigkill(
    database_url, amqp_url, db
):
    spec = recent_spec(4000, seed=23)
    ttl = 2.0
    with turn(spec, rate_limit=20, rate_window=1.0) as t:
        base = puller_env(database_url, amqp_url, t, PULL_PAGE_SIZE="25", LEASE_TTL=str(ttl))
        with (
            ServiceProcess("services.message_puller", {**base, "POD_NAME": "replica-a"}) as a,
            ServiceProcess("services.message_puller", {**base, "POD_NAME": "replica-b"}) as b,
        ):
            await a.ready()
            await b.ready()  # a standby is ready too
            holder = await eventually(
                lambda: db.fetchval("SELECT holder FROM leases"), timeout=10, what="a holder"
            )
            first, second = (a, b) if holder.startswith("replica-a") else (b, a)
            await eventually(
                lambda: _requests(t), until=lambda n: n >= 30, timeout=30, what="pulling"
            )
            first.kill()
            killed = time.monotonic()
            await eventually(
                lambda: checkpoint(database_url),
                until=lambda c: c is not None and c >= spec.end,
                timeout=120,
                what="the other replica finishes the pull",
            )
            assert second.proc is not None and second.proc.poll() is None
        log = sorted(t.sim.request_log(), key=lambda e: e.monotonic)
    agents = [entry.client for entry in log]
    # One client, then the other: never interleaved.
    switches = [i for i in range(1, len(agents)) if agents[i] != agents[i - 1]]
    assert len(switches) == 1, f"clients interleaved at {switches}"
    takeover = log[switches[0]].monotonic
    assert takeover > killed - 0.5  # (the log's clock is this process's monotonic clock)
    assert takeover - killed < ttl + 1.5
    assert set(await drain_ids(amqp_url)) == t.sim.dataset.message_ids()


async def test_messages_seen_by_webhook_first_and_export_later_are_one_row(
    database_url, amqp_url, db
):
    spec = recent_spec(2000, seed=24)
    with turn(spec, rate_limit=100, rate_window=1.0) as t:
        # The webhook saw 60 % of the messages (inbound and `turn` copies of outbound).
        deliveries = t.sim.dataset.webhook_deliveries(kinds=("inbound", "outbound"), share=0.6)
        publisher = Publisher(amqp_url, Topology())
        await publisher.start(wait=True)
        try:
            for delivery in deliveries:
                await publisher.publish(delivery.body, *gateway_headers(delivery.headers))
        finally:
            await publisher.close()
        env = puller_env(database_url, amqp_url, t)
        with ServiceProcess("services.db_writer", writer_env(env)) as writer:
            await writer.ready()
            await wait_all_stored(database_url, len(deliveries))
            with ServiceProcess("services.message_puller", env) as puller:
                await puller.ready()
                await wait_all_stored(database_url, len(t.sim.dataset.message_ids()))
    await assert_stored_exactly_once(db, t)
    sources = await db.fetch("SELECT source, count(*) AS n FROM webhook_events GROUP BY source")
    assert {r["source"] for r in sources} >= {"webhook"}


def gateway_headers(turn_headers: Mapping[str, str]) -> tuple[str, dict[str, str]]:
    """Routing key and headers as the gateway publishes a webhook body."""
    subscription = turn_headers["X-Turn-Hook-Subscription"]
    headers = {
        H_SOURCE: "webhook",
        H_SUBSCRIPTION: subscription,
        H_RECEIVED_AT: utc_now_iso(),
        H_DELIVERY_ID: new_delivery_id(),
        H_BUSINESS_NUMBER: BUSINESS_NUMBER,
    }
    if "X-WhatsApp-Id" in turn_headers:
        headers[H_WHATSAPP_ID] = turn_headers["X-WhatsApp-Id"]
    return webhook_route(subscription), headers


def test_backfill_command_records_a_request_and_exits(database_url):
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "BUSINESS_NUMBER_ID": BUSINESS_NUMBER,
    }
    command = [sys.executable, "-m", "services.message_puller", "backfill"]
    done = subprocess.run(
        [*command, "--from", "2025-01-01T00:00:00Z", "--until", "2025-01-02T00:00:00Z"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "recorded" in done.stdout
    refused = subprocess.run(
        [*command, "--from", "2025-01-02T00:00:00Z", "--until", "2025-01-01T00:00:00Z"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode != 0 and "until" in refused.stderr

    async def rows():
        conn = await asyncpg.connect(database_url)
        try:
            return await conn.fetch("SELECT stream, from_ts, until_ts FROM backfill_requests")
        finally:
            await conn.close()

    recorded = asyncio.run(rows())
    assert [(r["stream"], r["from_ts"].isoformat()) for r in recorded] == [
        ("messages", "2025-01-01T00:00:00+00:00")
    ]


async def _requests(t: Turn) -> int:
    return len(t.sim.request_log())

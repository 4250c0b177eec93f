"""The puller in-process against the simulator, real PostgreSQL and RabbitMQ."""

from __future__ import annotations

from datetime import timedelta

from tests.message_puller.conftest import checkpoint, puller_env, puller_running, recent_spec
from tests.shared.simulated_export import drain_ids, turn
from tests.waiting import eventually


async def caught_up(database_url, spec):
    async def probe():
        value = await checkpoint(database_url)
        return value is not None and value >= spec.end

    await eventually(probe, timeout=60, interval=0.1, what="checkpoint past the data set")


async def test_backfill_from_empty_publishes_every_message(database_url, amqp_url):
    spec = recent_spec(3000)
    with turn(spec, rate_limit=100, rate_window=1.0) as t:
        async with puller_running(puller_env(database_url, amqp_url, t)):
            await caught_up(database_url, spec)
        ids = await drain_ids(amqp_url)
        stats = t.sim.stats()
        clients = {entry.client for entry in t.sim.request_log()}
    assert set(ids) == t.sim.dataset.message_ids()
    assert stats.rate_limited == 0
    assert len(clients) == 1 and next(iter(clients)).startswith("turnio-ingest/message_puller (")
    # Overlapping windows may repeat a few items; most are published once.
    assert ids.total() < len(ids) * 1.1


async def test_faults_late_arrivals_and_short_cursors_still_deliver_everything(
    database_url, amqp_url, db
):
    spec = recent_spec(4000, seed=5)
    with turn(
        spec,
        rate_limit=200,
        rate_window=1.0,
        error_rate=0.05,
        cursor_ttl=0.3,
        late_share=0.02,
        late_delay=1.0,
        latency=0.01,
        seed=3,
    ) as t:
        env = puller_env(
            database_url,
            amqp_url,
            t,
            PULL_PAGE_SIZE="200",
            RECOVERY_SWEEP_EVERY="1",
            RECOVERY_SWEEP_SPAN=str(3 * 86400),
        )
        async with puller_running(env):
            await caught_up(database_url, spec)
            seen: set[str] = set()

            async def all_there() -> int:
                seen.update(await drain_ids(amqp_url))
                return len(t.sim.dataset.message_ids() - seen)

            await eventually(
                all_there,
                until=lambda missing: missing == 0,
                timeout=60,
                interval=0.5,
                what="late arrivals caught by a sweep",
            )
        stats = t.sim.stats()
    assert stats.injected_5xx > 0
    assert stats.cursors_expired > 0
    assert stats.rate_limited == 0
    assert seen == t.sim.dataset.message_ids()
    # The late ones were found by a recovery sweep, which left the checkpoint alone.
    swept = await db.fetchval(
        "SELECT last_finished_at FROM ingestion_schedule WHERE sweep = 'recovery'"
    )
    assert swept is not None and swept > spec.end


async def test_a_lower_limit_announced_by_turn_is_adopted(database_url, amqp_url, db):
    spec = recent_spec(600)
    with turn(spec, rate_limit=5, rate_window=1.0) as t:
        # Configured 100/s, Turn says 5/s.
        env = puller_env(database_url, amqp_url, t, TURNIO_RATE_LIMIT="100", PULL_PAGE_SIZE="50")
        async with puller_running(env):
            await caught_up(database_url, spec)
        stats = t.sim.stats()
    assert await db.fetchval("SELECT announced_limit FROM rate_budget") == 5
    # Only the burst before the first answer can have overrun the real limit.
    assert stats.rate_limited <= 1
    assert set(await drain_ids(amqp_url)) == t.sim.dataset.message_ids()


async def test_a_requested_backfill_is_run_and_never_moves_the_checkpoint(
    database_url, amqp_url, db
):
    spec = recent_spec(500)
    with turn(spec, rate_limit=100, rate_window=1.0) as t:
        env = puller_env(database_url, amqp_url, t)
        async with puller_running(env):
            await caught_up(database_url, spec)
            before = await checkpoint(database_url)
            await drain_ids(amqp_url)
            await db.execute(
                "INSERT INTO backfill_requests (business_number_id, stream, from_ts, until_ts)"
                " VALUES ($1, 'messages', $2, $3)",
                spec.business_number,
                spec.start,
                spec.start + timedelta(hours=12),
            )
            await eventually(
                lambda: db.fetchval("SELECT finished_at FROM backfill_requests"),
                timeout=30,
                what="back-fill finished",
            )
            after = await checkpoint(database_url)
        again = await drain_ids(amqp_url)
    expected = {
        m["messages"][0]["id"] if "messages" in m else m["id"]
        for m in t.sim.dataset.messages_between(spec.start, spec.start + timedelta(hours=12))
    }
    assert expected <= set(again)
    assert before is not None and after is not None and after >= before
    assert await db.fetchval("SELECT error FROM backfill_requests") is None


async def test_a_finished_sweep_is_not_repeated_after_a_restart(database_url, amqp_url, db):
    spec = recent_spec(300)
    with turn(spec, rate_limit=100, rate_window=1.0) as t:
        env = puller_env(database_url, amqp_url, t, RECOVERY_SWEEP_EVERY="3600")
        # The last recovery sweep ran two days ago: it is due at the first start.
        await db.execute(
            "INSERT INTO ingestion_schedule (business_number_id, stream, sweep,"
            " last_started_at, last_finished_at)"
            " VALUES ($1, 'messages', 'recovery', now() - interval '2 days',"
            " now() - interval '2 days')",
            spec.business_number,
        )

        async def recovery():
            return await db.fetchrow(
                "SELECT last_started_at, last_finished_at FROM ingestion_schedule"
                " WHERE sweep = 'recovery'"
            )

        async with puller_running(env):
            await caught_up(database_url, spec)
            first = await eventually(
                recovery,
                until=lambda r: (
                    r["last_finished_at"] >= r["last_started_at"]
                    and r["last_started_at"] > spec.end
                ),
                timeout=30,
                what="recovery sweep ran",
            )
        requests_before = len(t.sim.request_log())
        # Restart the same day: the sweep is not run again.
        async with puller_running({**env, "PORT": str(int(env["PORT"]) + 0)}):
            await caught_up(database_url, spec)
            await eventually(
                lambda: _count(t.sim.request_log()),
                until=lambda n: n >= requests_before + 4,
                timeout=30,
                what="a few incremental passes after the restart",
            )
        second = await recovery()
    assert second == first


async def _count(log) -> int:
    return len(log)

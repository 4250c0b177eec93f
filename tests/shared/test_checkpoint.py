from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from shared.checkpoint import Checkpoint, LeaseNotHeld
from shared.lease import Lease

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
async def pool(database_url):
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    yield pool
    await pool.close()


async def test_start_is_used_only_when_there_is_no_checkpoint(pool):
    checkpoint = Checkpoint(pool, "n1", "messages")
    assert await checkpoint.load() is None
    assert await checkpoint.load_or_start(T0) == T0
    assert await checkpoint.load_or_start(T0 + timedelta(days=3)) == T0


async def test_checkpoint_only_moves_forward(pool):
    checkpoint = Checkpoint(pool, "n1", "messages")
    assert await checkpoint.advance(T0 + timedelta(hours=2)) == T0 + timedelta(hours=2)
    assert await checkpoint.advance(T0 + timedelta(hours=1)) is None
    assert await checkpoint.advance(T0 + timedelta(hours=2)) is None
    assert await checkpoint.load() == T0 + timedelta(hours=2)
    assert await checkpoint.advance(T0 + timedelta(hours=3)) == T0 + timedelta(hours=3)


async def test_checkpoint_never_goes_into_the_future(pool):
    checkpoint = Checkpoint(pool, "n1", "messages")
    stored = await checkpoint.advance(datetime.now(UTC) + timedelta(days=1))
    assert stored is not None
    assert stored <= datetime.now(UTC)


async def test_streams_and_numbers_are_separate(pool):
    await Checkpoint(pool, "n1", "messages").advance(T0)
    await Checkpoint(pool, "n1", "contacts").advance(T0 + timedelta(days=1))
    assert await Checkpoint(pool, "n1", "messages").load() == T0
    assert await Checkpoint(pool, "n2", "messages").load() is None


async def test_a_fenced_advance_needs_the_lease(pool):
    checkpoint = Checkpoint(pool, "n1", "messages")
    lease = Lease(pool, "n1:messages", "a", ttl=30)
    assert await checkpoint.advance(T0, lease=(lease.name, "a")) is None
    assert await lease.try_acquire()
    assert await checkpoint.advance(T0, lease=(lease.name, "b")) is None
    assert await checkpoint.advance(T0, lease=(lease.name, "a")) == T0


async def test_a_fenced_advance_refused_for_want_of_the_lease_is_an_error(pool):
    checkpoint = Checkpoint(pool, "n1", "messages")
    lease = Lease(pool, "n1:messages", "me", 30.0)
    assert await lease.try_acquire()
    assert await checkpoint.advance_fenced(T0, lease=(lease.name, "me")) == T0
    # Not forward: nothing written, and that is no refusal.
    assert await checkpoint.advance_fenced(T0, lease=(lease.name, "me")) == T0
    with pytest.raises(LeaseNotHeld):
        await checkpoint.advance_fenced(T0 + timedelta(hours=1), lease=(lease.name, "other"))
    assert await checkpoint.load() == T0

import pytest

from shared.puller_command import request_backfill


async def test_a_backfill_is_recorded_for_the_given_stream(database_url, db):
    request = await request_backfill(
        database_url, "27600000000", "contacts", "2025-01-01T00:00:00Z", "2025-01-02T00:00:00Z"
    )
    row = await db.fetchrow("SELECT id, stream, from_ts FROM backfill_requests")
    assert (row["id"], row["stream"], row["from_ts"].isoformat()) == (
        request,
        "contacts",
        "2025-01-01T00:00:00+00:00",
    )


async def test_a_reversed_or_zoneless_range_is_refused(database_url, db):
    with pytest.raises(ValueError, match="until"):
        await request_backfill(
            database_url, "n", "messages", "2025-01-02T00:00:00Z", "2025-01-01T00:00:00Z"
        )
    with pytest.raises(ValueError, match="timezone"):
        await request_backfill(database_url, "n", "messages", "2025-01-01", "2025-01-02")
    assert await db.fetchval("SELECT count(*) FROM backfill_requests") == 0

"""`ingestctl backfill` records a request the running puller executes; bad ranges refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg

from tests.conftest import BUSINESS_NUMBER
from tests.ingestctl.conftest import Ctl


async def test_a_valid_range_is_recorded_for_the_puller(ctl: Ctl, db: asyncpg.Connection) -> None:
    result = await ctl(
        "backfill", "messages", "--from", "2026-01-01", "--until", "2026-01-02T12:00Z"
    )
    assert result.code == 0, result.out
    assert result.out.startswith("back-fill #")
    rows = await db.fetch("SELECT * FROM backfill_requests")
    assert len(rows) == 1
    assert rows[0]["business_number_id"] == BUSINESS_NUMBER
    assert rows[0]["stream"] == "messages"
    assert rows[0]["from_ts"] == datetime(2026, 1, 1, tzinfo=UTC)
    assert rows[0]["until_ts"] == datetime(2026, 1, 2, 12, tzinfo=UTC)
    assert rows[0]["finished_at"] is None

    status = await ctl("status")
    assert "2026-01-01T00:00:00+00:00 .. 2026-01-02T12:00:00+00:00  queued" in status.out


async def test_bad_ranges_are_refused_and_nothing_is_recorded(
    ctl: Ctl, db: asyncpg.Connection
) -> None:
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    for args, says in (
        (["--from", "2026-01-02", "--until", "2026-01-01"], "--until must be after --from"),
        (["--from", "2026-01-01", "--until", "2026-01-01"], "--until must be after --from"),
        (["--from", "2026-01-01", "--until", future], "in the future"),
    ):
        result = await ctl("backfill", "contacts", *args)
        assert result.code == 2
        assert says in result.out
    assert (await ctl("backfill", "contacts", "--from", "yesterday", "--until", "now")).code == 2
    assert (
        await ctl("backfill", "statuses", "--from", "2026-01-01", "--until", "2026-01-02")
    ).code == 2
    assert await db.fetchval("SELECT count(*) FROM backfill_requests") == 0

from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest

from shared.rate_budget import BudgetPolicy, RateBudget
from shared.turn_client import (
    CursorExpired,
    TurnClient,
    TurnRejected,
    TurnUnauthorized,
    TurnUnavailable,
    _float_header,
    _int_header,
    iso_z,
    next_cursor,
    retry_after_seconds,
)
from turnsim.config import SimConfig
from turnsim.dataset import Dataset, DatasetSpec
from turnsim.server import running
from turnsim.simulator import Simulator

NUMBER = "27600000000"
END = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
SPEC = DatasetSpec(seed=3, messages=250, contacts=20, start=END - timedelta(days=1), end=END)


def test_timestamps_are_strict_iso_with_z():
    assert iso_z(datetime(2021, 8, 2, 1, 55, 0, 272999, tzinfo=UTC)) == "2021-08-02T01:55:00.272Z"
    with pytest.raises(ValueError):
        iso_z(datetime(2021, 8, 2))


def test_every_falsy_paging_is_the_end():
    assert next_cursor({"data": [], "paging": {"next": "abc"}}) == "abc"
    ends: list[object] = [
        {"data": []},
        {"paging": None},
        {"paging": {}},
        {"paging": {"next": None}},
    ]
    for body in ends:
        assert next_cursor(body) is None
    assert next_cursor({"links": {"next": "x"}}) == "x"


def test_retry_after_falls_back_to_the_reset():
    assert retry_after_seconds(httpx.Headers({"Retry-After": "3"})) == 3.0
    assert retry_after_seconds(httpx.Headers({"X-Ratelimit-Reset": "102.5"}), now=100.0) == 2.5
    assert retry_after_seconds(httpx.Headers()) == 1.0


def test_garbled_rate_headers_count_as_absent():
    for garbled in ["inf", "-inf", "nan", "1e400", "1e30", "soon"]:
        headers = httpx.Headers(
            {"X-Ratelimit-Limit": garbled, "X-Ratelimit-Remaining": garbled, "Retry-After": garbled}
        )
        assert _int_header(headers, "x-ratelimit-limit") is None
        assert _float_header(headers, "retry-after") is None
        assert retry_after_seconds(headers) == 1.0
        reset = httpx.Headers({"X-Ratelimit-Reset": garbled})
        assert _float_header(reset, "x-ratelimit-reset") is None
        assert retry_after_seconds(reset, now=100.0) == 1.0
    # announced_limit is a PostgreSQL integer: a count past it is no count Turn sends.
    assert (
        _int_header(httpx.Headers({"X-Ratelimit-Limit": "3000000000"}), "x-ratelimit-limit") is None
    )
    assert _int_header(httpx.Headers({"X-Ratelimit-Limit": "600"}), "x-ratelimit-limit") == 600
    assert (
        _float_header(httpx.Headers({"X-Ratelimit-Reset": "1700000000.5"}), "x-ratelimit-reset")
        == 1700000000.5
    )


@pytest.fixture
def sim():
    return Simulator(Dataset.generate(SPEC), SimConfig(rate_limit=1000, rate_window=1.0))


@pytest.fixture
def sim_url(sim):
    with running(sim) as url:
        yield url


@pytest.fixture
async def pool(database_url):
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    yield pool
    await pool.close()


async def make_client(pool, url, *, token="sim-token", limit=1000, window=1.0, **kwargs):
    budget = RateBudget(pool, NUMBER, "messages", BudgetPolicy(limit, window, margin=1.0))
    await budget.setup()
    statuses: list[str] = []
    client = TurnClient(
        url,
        token,
        budget,
        agent="turnio-ingest/test (t1)",
        backoff=0.01,
        on_response=statuses.append,
        **kwargs,
    )
    return client, budget, statuses


async def read_all(client, kind, start, until, page_size):
    cursor = await client.create_cursor(kind, start, until, page_size=page_size)
    items = []
    while cursor:
        page = await client.page(kind, cursor)
        items.extend(page.items)
        cursor = page.next_cursor
    return items


def item_id(item):
    return item["messages"][0]["id"] if "messages" in item else item["id"]


async def test_reads_a_window_page_by_page_with_the_vendor_headers(pool, sim, sim_url):
    client, _, statuses = await make_client(pool, sim_url)
    try:
        items = await read_all(client, "messages", SPEC.start, SPEC.end, 40)
    finally:
        await client.close()
    assert sorted(item_id(i) for i in items) == sorted(sim.dataset.message_ids())
    assert set(statuses) == {"200"}
    log = sim.request_log()
    assert {entry.client for entry in log} == {"turnio-ingest/test (t1)"}
    assert len(log) == 1 + 7  # one cursor, ceil(250 / 40) pages
    grants = await pool.fetchval("SELECT count(*) FROM rate_budget_grants")
    assert grants == len(log)  # every request drew from the budget


async def test_an_expired_cursor_is_its_own_error(pool, sim, sim_url):
    sim.configure(cursor_ttl=0.0)
    client, _, _ = await make_client(pool, sim_url)
    try:
        cursor = await client.create_cursor("messages", SPEC.start, SPEC.end, page_size=10)
        with pytest.raises(CursorExpired):
            await client.page("messages", cursor)
    finally:
        await client.close()


async def test_429_is_obeyed_and_the_announced_limit_adopted(pool, sim, sim_url):
    sim.configure(rate_limit=3, rate_window=1.0)
    throttled: list[float] = []
    # Configured far above what Turn allows: the first answers teach it.
    client, budget, statuses = await make_client(
        pool, sim_url, limit=100, on_throttled=throttled.append
    )
    try:
        items = await read_all(client, "messages", SPEC.start, SPEC.end, 25)
    finally:
        await client.close()
    assert len(items) == 250
    assert await budget.limit_in_force() == 3
    # At most the burst before the first answer came back could be refused.
    assert statuses.count("429") == len(throttled) <= 1


async def test_5xx_is_retried_and_persistent_5xx_is_unavailable(pool, sim, sim_url):
    sim.configure(error_rate=0.3, seed=7)
    client, _, statuses = await make_client(pool, sim_url, attempts=8)
    try:
        items = await read_all(client, "messages", SPEC.start, SPEC.end, 50)
        assert len(items) == 250
        assert any(s.startswith("5") for s in statuses)
        sim.configure(error_rate=1.0)
        with pytest.raises(TurnUnavailable):
            await client.create_cursor("messages", SPEC.start, SPEC.end)
    finally:
        await client.close()


async def test_clear_errors_for_a_bad_token_and_a_bad_request(pool, sim_url):
    client, _, _ = await make_client(pool, sim_url, token="wrong")
    try:
        with pytest.raises(TurnUnauthorized):
            await client.create_cursor("messages", SPEC.start, SPEC.end)
    finally:
        await client.close()
    client, _, _ = await make_client(pool, sim_url)
    try:
        with pytest.raises(TurnRejected, match="future"):
            await client.create_cursor(
                "messages", SPEC.start, datetime.now(UTC) + timedelta(hours=1)
            )
    finally:
        await client.close()

import asyncio
import math
import time
from datetime import timedelta

import asyncpg
import pytest

from shared.rate_budget import BudgetPolicy, RateBudget

NUMBER = "27600000000"


@pytest.fixture
async def pools(database_url):
    """Several pools: one per simulated puller process."""
    pools = [await asyncpg.create_pool(database_url, min_size=1, max_size=2) for _ in range(3)]
    yield pools
    for pool in pools:
        await pool.close()


async def grants(pool, client=None):
    rows = await pool.fetch(
        "SELECT granted_at, client FROM rate_budget_grants WHERE business_number_id = $1"
        " AND ($2::text IS NULL OR client = $2) ORDER BY granted_at",
        NUMBER,
        client,
    )
    return [r["granted_at"] for r in rows]


def most_in_any_window(times, window: float) -> int:
    span = timedelta(seconds=window)
    worst = 0
    for i, end in enumerate(times):
        worst = max(worst, sum(1 for t in times[: i + 1] if t > end - span))
    return worst


async def test_concurrent_clients_never_exceed_the_limit_in_any_sliding_window(pools):
    policy = BudgetPolicy(limit=5, window=1.0, margin=1.0)
    budgets = [RateBudget(pool, NUMBER, f"c{i}", policy) for i, pool in enumerate(pools)]
    await budgets[0].setup()
    started = time.monotonic()

    times = []

    async def draw(budget: RateBudget, n: int) -> None:
        for _ in range(n):
            times.append((await budget.acquire()).granted_at)

    # 3 clients x 2 tasks x 3 grants = 18 grants at 5 per second: at least 3 windows.
    # (The table is pruned meanwhile, so the grants' own timestamps are checked.)
    await asyncio.gather(*(draw(b, 3) for b in budgets for _ in range(2)))
    elapsed = time.monotonic() - started
    times.sort()
    assert len(times) == 18
    assert most_in_any_window(times, 1.0) == 5  # used fully, never above
    assert elapsed >= 3.0
    # ...and not much slower than the limit allows (the budget is used, not wasted).
    assert elapsed < 5.0


async def test_the_margin_keeps_a_share_of_the_limit_unused(pools):
    policy = BudgetPolicy(limit=10, window=1.0, margin=0.5)
    budget = RateBudget(pools[0], NUMBER, "messages", policy)
    await budget.setup()
    for _ in range(8):
        await budget.acquire()
    assert most_in_any_window(await grants(pools[0]), 1.0) == 5


async def test_an_announced_lower_limit_is_adopted_by_every_client(pools):
    policy = BudgetPolicy(limit=60, window=1.0, margin=1.0)
    first = RateBudget(pools[0], NUMBER, "messages", policy)
    other = RateBudget(pools[1], NUMBER, "contacts", policy)
    await first.setup()
    await first.observe(limit=3, remaining=2, reset=None)
    assert await other.limit_in_force() == 3
    await asyncio.gather(*(other.acquire() for _ in range(7)))
    assert most_in_any_window(await grants(pools[0]), 1.0) == 3
    # A restart re-applies the configuration, but the announced limit still wins.
    await RateBudget(pools[2], NUMBER, "messages", policy).setup()
    assert await first.limit_in_force() == 3


async def test_retry_after_blocks_every_client(pools):
    policy = BudgetPolicy(limit=100, window=1.0, margin=1.0)
    waited: list[float] = []
    one = RateBudget(pools[0], NUMBER, "messages", policy)
    two = RateBudget(pools[1], NUMBER, "contacts", policy, on_wait=waited.append)
    await one.setup()
    await one.block(0.8)
    started = time.monotonic()
    grant = await two.acquire()
    assert time.monotonic() - started >= 0.7
    assert grant.waited >= 0.7
    assert waited and waited[0] >= 0.7


async def test_remaining_zero_waits_for_the_reset(pools):
    policy = BudgetPolicy(limit=100, window=5.0, margin=1.0)
    budget = RateBudget(pools[0], NUMBER, "messages", policy)
    await budget.setup()
    await budget.observe(limit=None, remaining=0, reset=time.time() + 0.6)
    started = time.monotonic()
    await budget.acquire()
    assert 0.45 <= time.monotonic() - started < 3


async def test_a_garbled_reset_is_ignored(pools):
    policy = BudgetPolicy(limit=100, window=5.0, margin=1.0)
    budget = RateBudget(pools[0], NUMBER, "messages", policy)
    await budget.setup()
    # Past datetime's range (OverflowError / OSError / ValueError): as if Turn sent no reset.
    for reset in [1e20, -1e20, math.inf, math.nan]:
        await budget.observe(limit=None, remaining=0, reset=reset)
    blocked = await pools[0].fetchval(
        "SELECT coalesce(blocked_until > clock_timestamp(), false) FROM rate_budget"
        " WHERE business_number_id = $1",
        NUMBER,
    )
    assert blocked is False


async def test_capped_client_gets_its_share_while_the_other_has_demand(pools):
    policy = BudgetPolicy(limit=9, window=1.0, margin=1.0)
    messages = RateBudget(pools[0], NUMBER, "messages", policy)
    # Demand counts as recent for 30 s: the single request below keeps messages "busy".
    capped = BudgetPolicy(limit=9, window=1.0, margin=1.0, share=1 / 3, demand_horizon=30)
    contacts = RateBudget(pools[1], NUMBER, "contacts", capped)
    await messages.setup()
    # The message puller has demand (it just asked)...
    await messages.acquire()
    # ...so a contact back-fill gets 3 of every 9 per window; messages keep the rest.
    await asyncio.gather(*(contacts.acquire() for _ in range(6)))
    times = await grants(pools[0], "contacts")
    assert most_in_any_window(times, 1.0) == 3
    assert times[-1] - times[0] >= timedelta(seconds=0.9)


async def test_capped_client_takes_everything_when_the_others_are_idle(pools):
    policy = BudgetPolicy(limit=6, window=1.0, margin=1.0, share=1 / 3, demand_horizon=0.2)
    contacts = RateBudget(pools[1], NUMBER, "contacts", policy)
    await contacts.setup()
    started = time.monotonic()
    await asyncio.gather(*(contacts.acquire() for _ in range(6)))
    assert time.monotonic() - started < 0.9
    assert most_in_any_window(await grants(pools[0]), 1.0) == 6


async def test_old_grants_are_pruned(pools):
    policy = BudgetPolicy(limit=100, window=0.2, margin=1.0)
    budget = RateBudget(pools[0], NUMBER, "messages", policy)
    await budget.setup()
    for _ in range(3):
        await budget.acquire()
    await pools[0].execute(
        "UPDATE rate_budget_grants SET granted_at = granted_at - interval '1 minute'"
    )
    budget._last_prune = 0.0  # the next grant prunes, as one would a window later
    await budget.acquire()
    assert len(await grants(pools[0])) == 1

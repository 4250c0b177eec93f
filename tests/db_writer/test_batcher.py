import asyncio
import time

from services.db_writer.batcher import Batcher


async def test_a_full_batch_is_handed_out_at_once():
    batcher: Batcher[int] = Batcher(max_size=3, max_age=60)
    for i in range(7):
        batcher.add(i)
    started = time.monotonic()
    assert await batcher.next_batch() == [0, 1, 2]
    assert await batcher.next_batch() == [3, 4, 5]
    assert time.monotonic() - started < 1
    assert len(batcher) == 1


async def test_a_partial_batch_waits_for_its_oldest_item_to_age():
    batcher: Batcher[str] = Batcher(max_size=100, max_age=0.2)
    batcher.add("a")
    started = time.monotonic()
    batch = await batcher.next_batch()
    waited = time.monotonic() - started
    assert batch == ["a"]
    assert 0.15 <= waited < 2


async def test_items_arriving_while_waiting_join_the_batch_and_filling_it_ends_the_wait():
    batcher: Batcher[int] = Batcher(max_size=3, max_age=30)
    waiter = asyncio.create_task(batcher.next_batch())
    for i in range(3):
        await asyncio.sleep(0)
        batcher.add(i)
    assert await asyncio.wait_for(waiter, timeout=5) == [0, 1, 2]


async def test_close_hands_out_the_rest_then_empty_batches():
    batcher: Batcher[int] = Batcher(max_size=10, max_age=30)
    batcher.add(1)
    batcher.close()
    assert await asyncio.wait_for(batcher.next_batch(), timeout=5) == [1]
    assert await asyncio.wait_for(batcher.next_batch(), timeout=5) == []


async def test_close_wakes_an_idle_waiter():
    batcher: Batcher[int] = Batcher(max_size=10, max_age=30)
    waiter = asyncio.create_task(batcher.next_batch())
    await asyncio.sleep(0)
    batcher.close()
    assert await asyncio.wait_for(waiter, timeout=5) == []


def test_drain_returns_what_was_not_handed_out():
    batcher: Batcher[int] = Batcher(max_size=10, max_age=30)
    batcher.add(1)
    batcher.add(2)
    assert batcher.drain() == [1, 2]
    assert len(batcher) == 0

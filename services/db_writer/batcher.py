"""Deliveries -> batches: a batch is ready when it is full or its oldest item is old enough.

No I/O: the consumer callbacks `add()` deliveries, the flush loop awaits `next_batch()`.
Items are taken oldest first, so a batch never waits behind a newer one.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class Batcher(Generic[T]):
    def __init__(self, max_size: int, max_age: float) -> None:
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        self.max_size = max_size
        self.max_age = max_age
        self._items: deque[tuple[float, T]] = deque()
        self._changed = asyncio.Event()
        self._closed = False

    def __len__(self) -> int:
        return len(self._items)

    def add(self, item: T) -> None:
        self._items.append((time.monotonic(), item))
        if len(self._items) == 1 or len(self._items) >= self.max_size:
            self._changed.set()

    def close(self) -> None:
        """No more items will come: hand out what is left at once, then empty batches."""
        self._closed = True
        self._changed.set()

    def drain(self) -> list[T]:
        """Everything not yet handed out (e.g. to leave it unacknowledged at shutdown)."""
        items = [item for _, item in self._items]
        self._items.clear()
        return items

    async def next_batch(self) -> list[T]:
        """Wait for a full batch, or for the oldest item to reach max_age; [] once closed."""
        while not self._items:
            if self._closed:
                return []
            self._changed.clear()
            await self._changed.wait()
        while len(self._items) < self.max_size and not self._closed:
            wait = self._items[0][0] + self.max_age - time.monotonic()
            if wait <= 0:
                break
            self._changed.clear()
            try:
                async with asyncio.timeout(wait):
                    await self._changed.wait()
            except TimeoutError:
                break
        count = min(self.max_size, len(self._items))
        return [self._items.popleft()[1] for _ in range(count)]

"""A singleton lease in PostgreSQL: one holder per name until its expiry.

A row in `leases` (name, holder, expires_at) rather than an advisory lock: a lock lives and
dies with one connection, so a network blip drops it silently and a pooled connection can keep
it alive for a dead process; a row with an expiry survives reconnects, is read by operators
with one SELECT, and expires on the database's own clock whatever happened to the holder.

`LeaseKeeper.run(work)` is the whole life of a replica: wait for the lease, run `work` while
renewing, and cancel `work` at once when the lease cannot be renewed before it would expire
(database away, or another holder took it). The local deadline is counted from *before* each
renew was sent, so it always falls before the expiry the database recorded: a holder stops
before anybody else can take over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import asyncpg

from shared.database import CONNECTION_ERRORS

log = logging.getLogger(__name__)


def lease_name(business_number_id: str, stream: str) -> str:
    return f"{business_number_id}:{stream}"


def instance_id() -> str:
    """Names this process in leases, logs and the User-Agent: host, pid and a random tail."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class LeaseLost(Exception):
    """The lease could not be renewed in time; the work under it was cancelled."""


@dataclass(frozen=True)
class Lease:
    """SQL for one lease name and one holder. Every method is one statement."""

    pool: asyncpg.Pool
    name: str
    holder: str
    ttl: float

    async def try_acquire(self) -> bool:
        """Take the lease if it is free, expired, or already ours."""
        row = await self.pool.fetchrow(
            """
            INSERT INTO leases AS l (name, holder, acquired_at, expires_at)
            VALUES ($1, $2, now(), now() + make_interval(secs => $3))
            ON CONFLICT (name) DO UPDATE
                SET holder = EXCLUDED.holder,
                    acquired_at = CASE WHEN l.holder = EXCLUDED.holder
                                       THEN l.acquired_at ELSE now() END,
                    expires_at = EXCLUDED.expires_at
                WHERE l.expires_at < now() OR l.holder = EXCLUDED.holder
            RETURNING holder
            """,
            self.name,
            self.holder,
            self.ttl,
        )
        return row is not None

    async def renew(self) -> bool:
        """Extend our unexpired lease; False when it is not ours any more."""
        row = await self.pool.fetchrow(
            """
            UPDATE leases SET expires_at = now() + make_interval(secs => $3)
            WHERE name = $1 AND holder = $2 AND expires_at > now()
            RETURNING expires_at
            """,
            self.name,
            self.holder,
            self.ttl,
        )
        return row is not None

    async def release(self) -> None:
        """Hand the lease back so a standby takes over without waiting for the expiry."""
        await self.pool.execute(
            "DELETE FROM leases WHERE name = $1 AND holder = $2", self.name, self.holder
        )

    async def holder_now(self) -> str | None:
        value: str | None = await self.pool.fetchval(
            "SELECT holder FROM leases WHERE name = $1 AND expires_at > now()", self.name
        )
        return value


class LeaseKeeper:
    """Waits for a lease, runs work under it, and stops the work the moment it is lost."""

    def __init__(
        self,
        lease: Lease,
        *,
        renew_every: float | None = None,
        poll_every: float | None = None,
        on_change: Callable[[bool], None] = lambda held: None,
    ) -> None:
        self.lease = lease
        self._renew_every = renew_every or lease.ttl / 3
        # A standby looks often, so takeover happens soon after the expiry.
        self._poll_every = poll_every or min(lease.ttl / 4, 1.0)
        self._on_change = on_change
        # Stop this long before the recorded expiry: cancelling work and its in-flight
        # publishes takes a moment, and that moment must not overlap a successor's.
        self._guard = lease.ttl * 0.2
        self._deadline = 0.0
        self.held = False

    def _set_held(self, held: bool) -> None:
        self.held = held
        self._on_change(held)

    async def _try(self, call: Callable[[], Awaitable[bool]]) -> bool | None:
        """Run an acquire/renew; None when the database did not answer."""
        try:
            return await call()
        except CONNECTION_ERRORS as exc:
            log.warning("lease database call failed", extra={"error": repr(exc)})
            return None

    async def acquire(self, stop: asyncio.Event) -> bool:
        """Wait until the lease is ours (True) or `stop` is set (False)."""
        while not stop.is_set():
            started = time.monotonic()
            if await self._try(self.lease.try_acquire):
                self._deadline = started + self.lease.ttl - self._guard
                self._set_held(True)
                log.info("lease acquired", extra={"lease": self.lease.name})
                return True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._poll_every)
        return False

    async def _keep(self) -> None:
        """Renew until a renew is refused or the local deadline passes; then return."""
        while True:
            remaining = self._deadline - time.monotonic()
            if remaining <= 0:
                log.error(
                    "lease expired before it could be renewed", extra={"lease": self.lease.name}
                )
                return
            await asyncio.sleep(min(self._renew_every, remaining))
            if self._deadline - time.monotonic() <= 0:
                continue
            started = time.monotonic()
            try:
                renewed = await asyncio.wait_for(
                    self._try(self.lease.renew), self._deadline - started
                )
            except TimeoutError:
                renewed = None
            if renewed is False:
                log.error("lease taken by another holder", extra={"lease": self.lease.name})
                return
            if renewed:
                self._deadline = started + self.lease.ttl - self._guard

    async def run(self, work: Callable[[], Coroutine[Any, Any, None]], stop: asyncio.Event) -> None:
        """Until `stop`: acquire, run `work` while the lease is held, start over when lost.

        `work` should return when `stop` is set (graceful hand-over); when the lease is lost
        it is cancelled instead.
        """
        while await self.acquire(stop):
            worker = asyncio.create_task(work(), name=f"work:{self.lease.name}")
            keeper = asyncio.create_task(self._keep(), name=f"lease:{self.lease.name}")
            try:
                await asyncio.wait({worker, keeper}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                lost = keeper.done() and not worker.done()
                for task in (worker, keeper):
                    task.cancel()
                results = await asyncio.gather(worker, keeper, return_exceptions=True)
                self._set_held(False)
            if lost:
                continue
            # Work ended on its own (stop was set, or it failed): hand the lease over at once.
            with contextlib.suppress(*CONNECTION_ERRORS):
                await self.lease.release()
            log.info("lease released", extra={"lease": self.lease.name})
            failure = results[0]
            if isinstance(failure, Exception):
                raise failure
            if stop.is_set():
                return

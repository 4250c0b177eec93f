"""Posting the data set's webhooks to a gateway the way Turn does: signed, some twice, retried.

Turn's behaviour modelled (turn-api.md §2): `X-Turn-Hook-Signature` is the standard base64 of
HMAC-SHA256 over the exact body bytes; duplicates happen (the same body again, later, possibly
while the first is still in flight); a 5xx, a timeout (Turn wants an answer within 5 s) or a
refused connection is retried with backoff a bounded number of times; a 4xx is final (as Open
Chat Studio reports of Turn [OBS S15]).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import httpx

from turnsim.dataset import Delivery

PATH = "/webhooks/turn"


def sign(body: bytes, secret: str) -> str:
    """The `X-Turn-Hook-Signature` value for `body`."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


@dataclass
class DeliveryResult:
    delivery: Delivery
    status: int | None = None  # final answer to the first sending; None: never connected
    attempts: int = 0
    duplicate_statuses: list[int | None] = field(default_factory=list)

    @property
    def accepted(self) -> bool:
        """The gateway took it (2xx) at least once, first sending or duplicate."""
        return any(
            status is not None and 200 <= status < 300
            for status in (self.status, *self.duplicate_statuses)
        )


@dataclass(frozen=True)
class SendReport:
    results: list[DeliveryResult]
    requests: int  # HTTP requests made, retries and duplicates included
    retries: int
    duplicates: int
    seconds: float

    def accepted_ids(self) -> set[str]:
        """Event ids (shared/events.py keys) the gateway answered 2xx for."""
        return {result.delivery.event_id for result in self.results if result.accepted}

    def failed(self) -> list[DeliveryResult]:
        return [result for result in self.results if not result.accepted]


@dataclass
class _Job:
    result: DeliveryResult
    duplicate: bool


class WebhookSender:
    def __init__(
        self,
        gateway_url: str,
        secret: str,
        *,
        max_attempts: int = 5,
        backoff: float = 0.05,
        max_backoff: float = 2.0,
        timeout: float = 5.0,
    ) -> None:
        self.url = gateway_url.rstrip("/") + PATH
        self.secret = secret
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.timeout = timeout

    async def send(
        self,
        deliveries: Iterable[Delivery],
        *,
        duplicate_share: float = 0.1,
        concurrency: int = 10,
        seed: int = 1,
    ) -> SendReport:
        """Post every delivery (in order, `concurrency` at a time) plus seeded duplicates.

        A duplicate is queued a little later than its original (within the next ~5 % of the
        stream), so it may overlap the original in flight, as real double deliveries can.
        """
        rng = random.Random(seed)
        results = [DeliveryResult(delivery) for delivery in deliveries]
        keyed: list[tuple[float, _Job]] = [
            (float(n), _Job(result, False)) for n, result in enumerate(results)
        ]
        spread = max(2.0, len(results) * 0.05)
        for n, result in enumerate(results):
            if rng.random() < duplicate_share:
                keyed.append((n + rng.uniform(0.5, spread), _Job(result, True)))
        keyed.sort(key=lambda pair: pair[0])
        queue: asyncio.Queue[_Job] = asyncio.Queue()
        for _, job in keyed:
            queue.put_nowait(job)
        counts = {"requests": 0, "retries": 0}
        jitter = random.Random(seed + 1)
        started = time.monotonic()
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(timeout=self.timeout, limits=limits) as client:

            async def worker() -> None:
                while not queue.empty():
                    job = queue.get_nowait()
                    status, attempts = await self._post(client, job.result.delivery, jitter)
                    counts["requests"] += attempts
                    counts["retries"] += attempts - 1
                    if job.duplicate:
                        job.result.duplicate_statuses.append(status)
                    else:
                        job.result.status, job.result.attempts = status, attempts

            await asyncio.gather(*(worker() for _ in range(max(1, concurrency))))
        return SendReport(
            results,
            requests=counts["requests"],
            retries=counts["retries"],
            duplicates=len(keyed) - len(results),
            seconds=time.monotonic() - started,
        )

    async def _post(
        self, client: httpx.AsyncClient, delivery: Delivery, jitter: random.Random
    ) -> tuple[int | None, int]:
        headers = {**delivery.headers, "X-Turn-Hook-Signature": sign(delivery.body, self.secret)}
        status: int | None = None
        for attempt in range(1, self.max_attempts + 1):
            try:
                response = await client.post(self.url, content=delivery.body, headers=headers)
                status = response.status_code
                if status < 500:
                    return status, attempt
            except httpx.TransportError:  # refused, reset, timed out
                status = None
            if attempt < self.max_attempts:
                delay = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
                await asyncio.sleep(delay * (0.5 + jitter.random()))
        return status, self.max_attempts

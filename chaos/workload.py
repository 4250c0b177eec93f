"""The seeded workload: webhooks at a steady pace, new messages and contact edits in Turn.

- Webhooks: a share of the data set's webhook feed (inbound, outbound copies, statuses), cut
  into chunks posted every `TICK` seconds, each by turnsim's WebhookSender (signed, seeded
  duplicates within the chunk, Turn-like retries on 5xx/timeouts/refusals, 4xx final). Some
  deliveries are also posted again several chunks later, as Turn's late double deliveries are.
  Chunks do not wait for each other: a slow gateway does not slow the pace down.
- Turn keeps changing while it runs: messages arrive (simulator `arrival_rate`, found only by
  the message puller) and contacts are edited (found again by the contact puller, newest wins).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from dataclasses import dataclass

from turnsim.dataset import Delivery
from turnsim.simulator import Simulator
from turnsim.webhooks import DeliveryResult, WebhookSender

TICK = 0.5


@dataclass(frozen=True)
class WorkloadSpec:
    seed: int
    duration: float
    webhook_share: float = 0.8
    duplicate_share: float = 0.1
    late_duplicate_share: float = 0.03
    arrival_rate: float = 2.0  # new messages per second in Turn
    contact_edits_per_second: float = 1.0
    concurrency: int = 4  # connections per chunk


@dataclass
class Sent:
    results: list[DeliveryResult]
    requests: int = 0
    retries: int = 0
    seconds: float = 0.0

    def accepted(self, kind: str) -> frozenset[str]:
        return frozenset(
            r.delivery.event_id for r in self.results if r.accepted and _kind(r) == kind
        )

    def attempted(self, kind: str) -> frozenset[str]:
        return frozenset(r.delivery.event_id for r in self.results if _kind(r) == kind)

    @property
    def refused(self) -> int:
        """Deliveries never answered 2xx, over all their sendings."""
        accepted = {r.delivery.event_id for r in self.results if r.accepted}
        return len({r.delivery.event_id for r in self.results} - accepted)


def _kind(result: DeliveryResult) -> str:
    return "status" if result.delivery.kind == "status" else "message"


async def send_webhooks(
    gateway_url: str, secret: str, deliveries: list[Delivery], spec: WorkloadSpec
) -> Sent:
    rng = random.Random(spec.seed)
    sender = WebhookSender(gateway_url, secret, max_attempts=8, backoff=0.1, max_backoff=2.0)
    ticks = max(1, int(spec.duration / TICK))
    size = math.ceil(len(deliveries) / ticks)
    started = time.monotonic()
    tasks = []
    for n in range(ticks):
        chunk = deliveries[n * size : (n + 1) * size]
        if n > 2:
            earlier = deliveries[: max(0, (n - 2) * size)]
            chunk += [d for d in earlier if rng.random() < spec.late_duplicate_share / n]
        if chunk:
            tasks.append(
                asyncio.create_task(
                    sender.send(
                        chunk,
                        duplicate_share=spec.duplicate_share,
                        concurrency=spec.concurrency,
                        seed=spec.seed * 100_003 + n,
                    )
                )
            )
        await asyncio.sleep(max(0.0, started + (n + 1) * TICK - time.monotonic()))
    reports = await asyncio.gather(*tasks)
    sent = Sent([result for report in reports for result in report.results])
    sent.requests = sum(report.requests for report in reports)
    sent.retries = sum(report.retries for report in reports)
    sent.seconds = time.monotonic() - started
    return sent


async def change_turn(sim: Simulator, spec: WorkloadSpec, stop: asyncio.Event) -> int:
    """New messages arrive and contacts are edited until `stop`; returns the edits made."""
    rng = random.Random(spec.seed + 1)
    contact_ids = sorted(sim.dataset.contact_ids(), key=int)
    sim.configure(arrival_rate=spec.arrival_rate)
    edits = 0
    try:
        while not stop.is_set():
            if contact_ids and spec.contact_edits_per_second > 0:
                sim.dataset.touch_contact(rng.choice(contact_ids))
                edits += 1
            interval = 1.0 / spec.contact_edits_per_second if spec.contact_edits_per_second else 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
    finally:
        sim.configure(arrival_rate=0.0)
    return edits

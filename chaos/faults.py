"""Faults and when they strike: a schedule drawn from a seed, then carried out on a System.

The run is cut in two: first every fault alone, each in its own slot (so a failure points at
one fault), then a mixed stretch where faults are drawn again at random times and may overlap
(a broker restart while a writer is dead, a 429 storm during a PostgreSQL outage). Every time
and length comes from `random.Random(seed)`; the seed is printed, so a failing run is replayed
with `--seed`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass

from chaos.system import System

log = logging.getLogger("chaos")

KILLS = ("gateway", "writer-1", "message_puller", "contact_puller")
SERVERS = ("rabbitmq", "postgres")
TURN = ("429-storm", "5xx-burst", "cursor-expiry")
ALL = tuple(f"kill:{name}" for name in KILLS) + SERVERS + TURN


@dataclass(frozen=True)
class Fault:
    kind: str
    at: float  # seconds after the workload starts
    length: float  # how long the server stays down / the storm lasts

    def describe(self) -> str:
        return f"{self.at:6.1f}s  {self.kind:<22} for {self.length:.1f}s"


def schedule(
    seed: int, duration: float, kinds: Sequence[str] = ALL, *, mixed: int | None = None
) -> list[Fault]:
    """Each kind alone in the first 60 % of `duration`, then `mixed` (default: as many as kinds)
    drawn again over the rest, overlapping as they fall."""
    rng = random.Random(seed)
    solo_span = duration * (0.6 if mixed != 0 else 0.9)
    slot = solo_span / max(1, len(kinds))
    order = list(kinds)
    rng.shuffle(order)
    faults = [
        Fault(kind, n * slot + rng.uniform(0.05, 0.3) * slot, _length(rng, kind, slot * 0.6))
        for n, kind in enumerate(order)
    ]
    mixed_span = duration - solo_span
    for _ in range(len(kinds) if mixed is None else mixed):
        kind = rng.choice(list(kinds))
        at = solo_span + rng.uniform(0, mixed_span * 0.7)
        faults.append(Fault(kind, at, _length(rng, kind, mixed_span * 0.3)))
    return sorted(faults, key=lambda fault: fault.at)


def _length(rng: random.Random, kind: str, room: float) -> float:
    if kind.startswith("kill:"):
        return 0.0  # the supervisor restarts it after its own delay
    return round(max(1.0, min(room, rng.uniform(2.0, 6.0))), 1)


class Injector:
    """Carries a schedule out against a running System; keeps a log of what it did."""

    def __init__(self, system: System, faults: Sequence[Fault]) -> None:
        self.system = system
        self.faults = list(faults)
        self.done: list[str] = []
        self._baseline = system.sim.config
        self._rabbit_lock = asyncio.Lock()
        self._postgres_lock = asyncio.Lock()

    async def run(self, started: float) -> None:
        await asyncio.gather(*(self._one(fault, started) for fault in self.faults))

    async def _one(self, fault: Fault, started: float) -> None:
        await asyncio.sleep(max(0.0, started + fault.at - time.monotonic()))
        t = time.monotonic() - started
        if fault.kind.startswith("kill:"):
            self.system.kill(fault.kind.split(":", 1)[1])
        elif fault.kind == "rabbitmq":
            async with self._rabbit_lock:
                await asyncio.to_thread(self.system.rabbit.stop)
                await asyncio.sleep(fault.length)
                await asyncio.to_thread(self.system.rabbit.start)
        elif fault.kind == "postgres":
            async with self._postgres_lock:
                await asyncio.to_thread(self.system.postgres.stop, "immediate")
                await asyncio.sleep(fault.length)
                await asyncio.to_thread(self.system.postgres.start)
        else:
            await self._turn_fault(fault)
        self.done.append(f"{t:6.1f}s  {fault.kind} ({time.monotonic() - started - t:.1f}s)")
        log.info("fault done: %s", self.done[-1])

    async def _turn_fault(self, fault: Fault) -> None:
        sim = self.system.sim
        base = self._baseline
        changes: dict[str, dict[str, object]] = {
            # A tenth of the allowance: the pullers must follow the headers, not their config.
            "429-storm": {"rate_limit": max(1, base.rate_limit // 10)},
            "5xx-burst": {"error_rate": 0.5},
            "cursor-expiry": {"cursor_ttl": 0.05},
        }
        change = changes[fault.kind]
        sim.configure(**change)
        try:
            await asyncio.sleep(fault.length)
        finally:
            # Back to the start's values, not to what was set before: storms may overlap.
            sim.configure(**{name: getattr(base, name) for name in change})

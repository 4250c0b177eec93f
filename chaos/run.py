"""One chaos run: start everything, play the workload while the faults strike, wait for the
system to drain, then read the ledger."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg

from chaos import faults as chaos_faults
from chaos.faults import Injector, schedule
from chaos.ledger import Ledger, Truth, measure
from chaos.system import NUMBER, SECRET, System
from chaos.workload import Sent, WorkloadSpec, change_turn, send_webhooks
from shared.database import CONNECTION_ERRORS
from turnsim.config import SimConfig
from turnsim.dataset import Dataset, DatasetSpec
from turnsim.simulator import Simulator


@dataclass(frozen=True)
class Options:
    seed: int
    duration: float = 180.0
    messages: int = 6000
    contacts: int = 600
    faults: tuple[str, ...] = chaos_faults.ALL
    mixed: int | None = None  # faults in the mixed stretch; None: as many as kinds, 0: none
    drain_timeout: float = 180.0
    rate_limit: int = 200  # the simulator's allowance per rate_window, told to the pullers
    rate_window: float = 10.0
    webhook_share: float = 0.8
    arrival_rate: float = 2.0
    contact_edits_per_second: float = 1.0


SHORT = {
    "duration": 24.0,
    "messages": 1200,
    "contacts": 150,
    "faults": (
        "kill:gateway",
        "kill:writer-1",
        "postgres",
        "rabbitmq",
        "kill:message_puller",
        "5xx-burst",
        "kill:contact_puller",
    ),
    "mixed": 0,
    "drain_timeout": 45.0,
}


@dataclass
class Outcome:
    ledger: Ledger
    sent: Sent
    faults_done: list[str]
    crashes: dict[str, list[int]]
    exit_codes: dict[str, int]
    sim_stats: dict[str, object]
    drained_in: float | None  # seconds, None when the deadline passed first
    logs: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.ledger.clean


def say(text: str) -> None:
    print(text, flush=True)


async def run(options: Options) -> Outcome:
    say(f"chaos seed {options.seed} (replay with --seed {options.seed})")
    end = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    spec = DatasetSpec(
        seed=options.seed,
        messages=options.messages,
        contacts=options.contacts,
        start=end - timedelta(days=2),
        end=end,
        business_number=NUMBER,
    )
    dataset = Dataset.generate(spec)
    deliveries = dataset.webhook_deliveries(share=options.webhook_share, seed=options.seed)
    config = SimConfig(
        rate_limit=options.rate_limit, rate_window=options.rate_window, seed=options.seed
    )
    sim = Simulator(dataset, config)
    workload = WorkloadSpec(
        seed=options.seed,
        duration=options.duration,
        webhook_share=options.webhook_share,
        arrival_rate=options.arrival_rate,
        contact_edits_per_second=options.contact_edits_per_second,
    )
    plan = schedule(options.seed, options.duration, options.faults, mixed=options.mixed)
    say(
        f"data set: {options.messages} messages, {options.contacts} contacts; "
        f"{len(deliveries)} webhook deliveries over {options.duration:.0f} s; faults:"
    )
    for fault in plan:
        say("  " + fault.describe())

    say("starting private PostgreSQL and RabbitMQ, the simulator and the services ...")
    with System(sim, spec.start) as system:
        await system.start_services()
        say(f"  up; logs: {system.logs()}")
        injector = Injector(system, plan)
        stop = asyncio.Event()
        changer = asyncio.create_task(change_turn(sim, workload, stop))
        started = time.monotonic()
        injecting = asyncio.create_task(injector.run(started))
        sent = await send_webhooks(system.gateway_url, SECRET, deliveries, workload)
        say(
            f"webhooks: {sent.requests} requests ({sent.retries} retries) in "
            f"{sent.seconds:.1f} s; {sent.refused} deliveries never answered 2xx"
        )
        await injecting
        stop.set()
        edits = await changer
        say(f"faults done: {len(injector.done)}; Turn changed: {edits} contact edits")

        truth = Truth(
            webhook_messages=sent.accepted("message"),
            webhook_statuses=sent.accepted("status"),
            sent_messages=sent.attempted("message"),
            sent_statuses=sent.attempted("status"),
            export_messages=frozenset(dataset.message_ids()),
            contacts={
                k: datetime.fromisoformat(v.replace("Z", "+00:00"))
                for k, v in dataset.contact_versions().items()
            },
        )
        drained_in = await drain(system, truth, options.drain_timeout)
        # Producers first, so what they published last is written before the writers stop.
        producers = [name for name in system.services if not name.startswith("writer")]
        exit_codes = await system.stop_services(producers)
        await _until_queues_empty(system, truth)
        exit_codes |= await system.stop_services()
        ledger = await _measure(system, truth, drain_dead=True)
        outcome = Outcome(
            ledger=ledger,
            sent=sent,
            faults_done=injector.done,
            crashes=system.crashes(),
            exit_codes=exit_codes,
            sim_stats=sim.stats().as_dict(),
            drained_in=drained_in,
            logs=system.logs(),
        )
    report(outcome)
    return outcome


async def _measure(system: System, truth: Truth, *, drain_dead: bool) -> Ledger:
    """The ledger, retried while a server the faults restarted is still coming back."""
    deadline = time.monotonic() + 60
    while True:
        try:
            return await measure(system.database_url, system.amqp_url, truth, drain_dead=drain_dead)
        except (*CONNECTION_ERRORS, asyncpg.PostgresError, OSError, ConnectionError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def _until_queues_empty(system: System, truth: Truth, patience: float = 30) -> None:
    deadline = time.monotonic() + patience
    queued = -1
    while time.monotonic() < deadline:
        queued = (await _measure(system, truth, drain_dead=False)).queued
        if queued == 0:
            return
        await asyncio.sleep(0.5)
    # The ledger that follows counts what did not get stored as lost; say why here.
    print(f"queues not empty after {patience:.0f} s ({queued} waiting) when the writers stopped")


async def drain(system: System, truth: Truth, patience: float) -> float | None:
    """Until nothing is lost and the queues are empty, twice in a row; seconds it took."""
    started = time.monotonic()
    settled = 0
    while time.monotonic() - started < patience:
        ledger = await _measure(system, truth, drain_dead=False)
        lines = ledger.lines
        say(
            f"  draining: queued {ledger.queued:>5} | lost "
            + ", ".join(f"{name} {line.lost}" for name, line in lines.items())
        )
        settled = settled + 1 if ledger.lost == 0 and ledger.queued == 0 else 0
        if settled >= 2:
            return time.monotonic() - started
        await asyncio.sleep(1.0)
    return None


def report(outcome: Outcome) -> None:
    say("\nfaults carried out:")
    for line in outcome.faults_done:
        say("  " + line)
    stats = outcome.sim_stats
    say(
        f"simulator: {stats['requests']} requests, {stats['rate_limited']} answered 429, "
        f"{stats['injected_5xx']} injected 5xx, {stats['cursors_expired']} expired cursors, "
        f"{stats['arrivals']} messages arrived during the run"
    )
    if outcome.crashes:
        say(f"services that exited on their own (restarted): {outcome.crashes}")
    say(f"exit codes after SIGTERM: {outcome.exit_codes}")
    say(
        "drained in "
        + (f"{outcome.drained_in:.1f} s" if outcome.drained_in is not None else "NOT in time")
    )
    say("\nledger")
    say(outcome.ledger.format())
    if not outcome.ok:
        say(f"service logs: {outcome.logs}")

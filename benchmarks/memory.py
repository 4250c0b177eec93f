"""Peak memory (RSS) of each service with a large backlog waiting in RabbitMQ.

A private RabbitMQ (tests/servers.py LocalRabbit) holds the backlog, so the shared broker is
never filled. The webhook queue is topped up in three steps (a quarter, a half, all of
BENCH_BACKLOG events, default 200,000; the issue's figure is 1,000,000:
`BENCH_BACKLOG=1000000 make bench`). At each step a fresh writer process starts against the
backlog and works on it for SAMPLE seconds; its peak RSS (VmHWM) is read from /proc. Its
memory must stay flat as the backlog grows: prefetch, not queue length, bounds what it holds.
With the whole backlog waiting, the gateway is loaded by wrk and both pullers back-fill from
the simulator; their peaks are read the same way. Target: every service under 150 MB.

    python -m benchmarks memory         (through `make bench`)
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aio_pika
import orjson

from benchmarks import gateway as bench_gateway
from benchmarks.environment import fresh_database
from benchmarks.figures import Figure, record
from services.webhook_gateway.signature import sign
from shared import broker
from tests.processes import ServiceProcess
from tests.servers import LocalRabbit
from turnsim.config import SimConfig
from turnsim.dataset import Dataset, DatasetSpec
from turnsim.server import running
from turnsim.simulator import Simulator

BACKLOG = int(os.environ.get("BENCH_BACKLOG", "200000"))
SAMPLE = 8.0
TARGET_MB = 150.0
NUMBER = "27600000000"


@dataclass
class Peak:
    service: str
    backlog: int
    peak_mb: float
    note: str = ""


def peak_mb(pid: int) -> float:
    """VmHWM: the most resident memory the process has had."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def depth(amqp_url: str) -> int:
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        await broker.declare(channel, broker.Topology())
        queue = await channel.declare_queue(broker.Topology().webhook_queue, passive=True)
        return int(queue.declaration_result.message_count or 0)
    finally:
        await connection.close()


async def top_up(amqp_url: str, target: int, start: int) -> int:
    """Publish distinct inbound messages until the webhook queue holds `target`; next id."""
    missing = target - await depth(amqp_url)
    template = orjson.loads(bench_gateway.BODY_FILE.read_bytes())
    publisher = broker.Publisher(amqp_url, broker.Topology(), name="bench-backlog")
    await publisher.start(wait=True)
    counter = iter(range(start, start + max(0, missing)))

    async def worker() -> None:
        for n in counter:
            template_copy = dict(template)
            message = dict(template["messages"][0], id=f"wamid.backlog{n:09d}")
            template_copy["messages"] = [message]
            headers = {
                broker.H_SOURCE: "webhook",
                broker.H_SUBSCRIPTION: "whatsapp",
                broker.H_RECEIVED_AT: broker.utc_now_iso(),
            }
            await publisher.publish(orjson.dumps(template_copy), "webhook.whatsapp", headers)

    started = time.monotonic()
    try:
        await asyncio.gather(*(worker() for _ in range(200)))
    finally:
        await publisher.close()
    if missing > 0:
        print(f"   +{missing} queued in {time.monotonic() - started:.1f} s", flush=True)
    return start + max(0, missing)


def sample(service: ServiceProcess, seconds: float) -> float:
    assert service.proc is not None
    deadline = time.monotonic() + seconds
    peak = 0.0
    while time.monotonic() < deadline and service.proc.poll() is None:
        peak = max(peak, peak_mb(service.proc.pid))
        time.sleep(0.1)  # a sampling interval, not a wait for a condition
    return peak


def measure_writer(amqp_url: str, database_url: str) -> list[Peak]:
    peaks = []
    next_id = 0
    for share in (0.25, 0.5, 1.0):
        size = int(BACKLOG * share)
        next_id = asyncio.run(top_up(amqp_url, size, next_id))
        before = asyncio.run(depth(amqp_url))
        env = {
            "DATABASE_URL": database_url,
            "AMQP_URL": amqp_url,
            "BUSINESS_NUMBER_ID": NUMBER,
            "HOST": "127.0.0.1",
            "LOG_LEVEL": "WARNING",
        }
        with ServiceProcess("services.db_writer", env) as writer:
            asyncio.run(writer.ready(timeout=60))
            peak = sample(writer, SAMPLE)
            writer.terminate()
        after = asyncio.run(depth(amqp_url))
        print(
            f"   writer with {before} waiting: peak {peak:.1f} MB "
            f"(stored {before - after} in {SAMPLE:.0f} s)",
            flush=True,
        )
        peaks.append(Peak("db_writer", before, peak, f"stored {before - after} meanwhile"))
    return peaks


def measure_gateway(amqp_url: str, waiting: int) -> Peak:
    env = {
        "AMQP_URL": amqp_url,
        "BUSINESS_NUMBER_ID": NUMBER,
        "TURNIO_WEBHOOK_SECRET": bench_gateway.SECRET,
        "HOST": "127.0.0.1",
        "LOG_LEVEL": "WARNING",
    }
    body = bench_gateway.BODY_FILE.read_bytes()
    with (
        tempfile.TemporaryDirectory() as tmp,
        ServiceProcess("services.webhook_gateway", env) as gateway,
    ):
        asyncio.run(gateway.ready())
        script = Path(tmp) / "webhook.lua"
        script.write_text(
            bench_gateway.WRK_SCRIPT.format(
                path=str(bench_gateway.BODY_FILE), signature=sign(body, bench_gateway.SECRET)
            )
        )
        load = bench_gateway.wrk(gateway.url, script)
        assert gateway.proc is not None
        peak = peak_mb(gateway.proc.pid)
        gateway.terminate()
    return Peak("webhook_gateway", waiting, peak, f"under wrk, {load.rps:,.0f} req/s")


def measure_pullers(amqp_url: str, database_url: str, waiting: int) -> list[Peak]:
    end = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    spec = DatasetSpec(
        seed=5, messages=30_000, contacts=10_000, start=end - timedelta(days=2), end=end
    )
    sim = Simulator(Dataset.generate(spec), SimConfig(rate_limit=1000, rate_window=1.0))
    peaks = []
    with running(sim) as turn_url:
        common = {
            "DATABASE_URL": database_url,
            "AMQP_URL": amqp_url,
            "BUSINESS_NUMBER_ID": NUMBER,
            "HOST": "127.0.0.1",
            "LOG_LEVEL": "WARNING",
            "TURNIO_BASE_URL": turn_url,
            "TURNIO_BEARER_TOKEN": sim.config.token,
            "TURNIO_RATE_LIMIT": "1000",
            "TURNIO_RATE_WINDOW": "1",
        }
        specs = {
            "message_puller": common
            | {"PULL_START_FROM": spec.start.isoformat(), "PULL_SAFETY_LAG": "2"},
            "contact_puller": common
            | {"CONTACTS_START_FROM": spec.start.isoformat(), "CONTACTS_SAFETY_LAG": "2"},
        }
        for name, env in specs.items():
            with ServiceProcess(f"services.{name}", env) as puller:
                asyncio.run(puller.ready(timeout=60))
                peak = sample(puller, SAMPLE)
                puller.terminate()
            items = sim.stats().items_served
            print(f"   {name}: peak {peak:.1f} MB ({items} items served so far)", flush=True)
            peaks.append(Peak(name, waiting, peak, "back-filling from the simulator"))
    return peaks


def run() -> str:
    rabbit = LocalRabbit(management=False)
    rabbit.start()
    try:
        amqp_url = rabbit.url
        with fresh_database() as database_url:
            print(f"-- writer against a backlog growing to {BACKLOG:,}", flush=True)
            writer = measure_writer(amqp_url, database_url)
            asyncio.run(top_up(amqp_url, BACKLOG, 10**8))
            waiting = asyncio.run(depth(amqp_url))
            print(f"-- the others with {waiting:,} waiting", flush=True)
            others = [measure_gateway(amqp_url, waiting)]
            others += measure_pullers(amqp_url, database_url, waiting)
    finally:
        rabbit.destroy()
    peaks = writer + others
    growth = writer[-1].peak_mb - writer[0].peak_mb
    worst = max(peak.peak_mb for peak in peaks)
    record(Figure("writer peak RSS (MB)", throughput=writer[-1].peak_mb, unit="MB"))
    rows = [f"| {p.service} | {p.backlog:,} | {p.peak_mb:.1f} MB | {p.note} |" for p in peaks]
    verdict = "met" if worst < TARGET_MB else "missed"
    return "\n".join(
        [
            "## Memory with a backlog",
            "",
            f"Peak RSS (VmHWM) per service process with up to **{BACKLOG:,}** events waiting "
            "in a private RabbitMQ (set BENCH_BACKLOG; the issue's figure is 1,000,000). "
            f"Each writer worked on the backlog for {SAMPLE:.0f} s.",
            "",
            "| service | waiting | peak RSS | while |",
            "|---|---:|---:|---|",
            *rows,
            "",
            f"Writer growth from {writer[0].backlog:,} to {writer[-1].backlog:,} waiting: "
            f"**{growth:+.1f} MB**. Largest peak {worst:.1f} MB (target < {TARGET_MB:.0f} MB: "
            f"{verdict}).",
        ]
    )


if __name__ == "__main__":
    print(run())

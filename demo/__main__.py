"""Run the whole system locally and watch every event arrive exactly once.

`make demo` starts PostgreSQL and RabbitMQ, then this: a fresh `turnio_demo` database and
vhost, the Turn simulator (Data Export API + webhook sender), the gateway, the writer and the
message puller as real processes. It posts the example webhooks and the simulator's webhook
feed (a share missed, duplicates included), lets the puller back-fill what webhooks missed,
prints progress, then the rows per table checked against the simulator's ground truth. The
services keep running for a look at RabbitMQ's management UI until Ctrl-C (or `--once`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from demo.environment import DemoEnvironment
from demo.report import Expected, Report, measure, print_report
from shared.migrate import apply as apply_migrations
from tests.processes import ServiceProcess
from turnsim.config import SimConfig
from turnsim.dataset import Dataset, DatasetSpec
from turnsim.server import running
from turnsim.simulator import Simulator
from turnsim.webhooks import WebhookSender, sign

EXAMPLES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "turn"
SECRET = "demo-webhook-secret"
NUMBER = "27600000000"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__)
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--contacts", type=int, default=300)
    parser.add_argument(
        "--webhook-share",
        type=float,
        default=0.7,
        help="share of events the webhooks deliver; the puller finds the rest",
    )
    parser.add_argument("--duplicates", type=float, default=0.1)
    parser.add_argument("--rate-limit", type=int, default=300, help="per 30 s")
    parser.add_argument("--once", action="store_true", help="exit after the report")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument(
        "--free-ports", action="store_true", help="any free ports instead of 8000-8003"
    )
    return parser.parse_args()


async def post_examples(gateway: str) -> tuple[int, set[str]]:
    """Each example webhook three times, as Turn's double deliveries would."""
    accepted = 0
    async with httpx.AsyncClient(timeout=10) as client:
        for path in sorted(EXAMPLES.glob("webhook_*.json")):
            body = path.read_bytes()
            headers = {
                "X-Turn-Hook-Signature": sign(body, SECRET),
                "X-Turn-Hook-Subscription": "turn" if "turn_sub" in path.name else "whatsapp",
                "Content-Type": "application/json",
            }
            for _ in range(3):
                response = await client.post(
                    f"{gateway}/webhooks/turn", content=body, headers=headers
                )
                accepted += response.status_code == 200
        bad = await client.post(
            f"{gateway}/webhooks/turn", content=b"{}", headers={"X-Turn-Hook-Signature": "forged"}
        )
        print(f"  a forged signature was answered {bad.status_code} (and counted)")
    return accepted, example_ids()


def example_ids() -> set[str]:
    import orjson

    ids: set[str] = set()
    for path in EXAMPLES.glob("webhook_*.json"):
        body = orjson.loads(path.read_bytes())
        for message in body.get("messages", []):
            ids.add(message["id"])
        if "_vnd" in body:
            ids.add(body["id"])
    return ids


async def run(args: argparse.Namespace) -> int:
    now = datetime.now(UTC).replace(microsecond=0)
    spec = DatasetSpec(
        seed=7,
        messages=args.messages,
        contacts=args.contacts,
        start=now - timedelta(days=2),
        end=now - timedelta(minutes=10),
        business_number=NUMBER,
    )
    print(f"generating a Turn data set: {args.messages} messages, {args.contacts} contacts")
    dataset = Dataset.generate(spec)
    sim = Simulator(dataset, SimConfig(rate_limit=args.rate_limit, rate_window=30.0))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    def port(default: int) -> int | None:
        return None if args.free_ports else default

    with DemoEnvironment() as env, running(sim) as turn_url:
        apply_migrations(env.database_url)
        common = {
            "DATABASE_URL": env.database_url,
            "AMQP_URL": env.amqp_url,
            "BUSINESS_NUMBER_ID": NUMBER,
            "LOG_LEVEL": "INFO",
        }
        gateway = ServiceProcess(
            "services.webhook_gateway", common | {"TURNIO_WEBHOOK_SECRET": SECRET}, port=port(8000)
        )
        writer = ServiceProcess("services.db_writer", common, port=port(8001))
        puller = ServiceProcess(
            "services.message_puller",
            common
            | {
                "TURNIO_BASE_URL": turn_url,
                "TURNIO_BEARER_TOKEN": sim.config.token,
                "TURNIO_RATE_LIMIT": str(args.rate_limit),
                "TURNIO_RATE_WINDOW": "30",
                "PULL_START_FROM": spec.start.isoformat(),
                "PULL_INTERVAL": "5",
                "PULL_SAFETY_LAG": "60",
                "PULL_MAX_WINDOW": str(7 * 86400),
            },
            port=port(8002),
        )
        contact_puller = ServiceProcess(
            "services.contact_puller",
            common
            | {
                "TURNIO_BASE_URL": turn_url,
                "TURNIO_BEARER_TOKEN": sim.config.token,
                "TURNIO_RATE_LIMIT": str(args.rate_limit),
                "TURNIO_RATE_WINDOW": "30",
                "CONTACTS_START_FROM": spec.start.isoformat(),
                "CONTACTS_INTERVAL": "10",
                "CONTACTS_SAFETY_LAG": "60",
            },
            port=port(8003),
        )
        services = [gateway, writer, puller, contact_puller]
        try:
            for service in services:
                service.start()
            for service in services:
                await service.ready(timeout=60)
            print(
                f"simulator {turn_url}, gateway {gateway.url}, writer {writer.url}, "
                f"puller {puller.url} (logs: {', '.join(s.log_path for s in services)})"
            )

            print("posting the example webhooks, three times each ...")
            accepted, examples = await post_examples(gateway.url)
            print(f"  {accepted} accepted")
            deliveries = dataset.webhook_deliveries(share=args.webhook_share)
            print(
                f"posting {len(deliveries)} webhook events from the simulator "
                f"({args.webhook_share:.0%} of the feed, {args.duplicates:.0%} duplicated) ..."
            )
            sending = asyncio.create_task(
                WebhookSender(gateway.url, SECRET).send(
                    deliveries, duplicate_share=args.duplicates, concurrency=20
                )
            )
            await while_sending(env, sim, len(dataset.message_ids() | examples), sending)
            report = sending.result()
            print(
                f"  {report.requests} requests, {len(report.accepted_ids())} events answered "
                f"200, {len(report.failed())} failed, {report.seconds:.1f} s"
            )

            expected = Expected(
                messages=dataset.message_ids() | examples,
                contacts=dataset.contact_versions(),
                statuses={
                    d.delivery.event_id
                    for d in report.results
                    if d.delivery.kind == "status" and d.accepted
                },
            )
            final = await watch(env, expected, sim, args.timeout, stop)
            print_report(final, expected)
            print(
                f"\nRabbitMQ management UI: {env.management_ui} (guest/guest), vhost '{env.vhost}'"
            )
            print(f"PostgreSQL: psql {env.database_url}")
            print("\n$ python -m ingestctl status")
            status = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "ingestctl",
                "status",
                env=os.environ | common | {"AMQP_URL": env.amqp_url},
            )
            await status.wait()
            ok = final.matches(expected)
            if not args.once and not stop.is_set():
                print("\nthe services keep running; Ctrl-C stops them")
                await stop.wait()
            return 0 if ok else 1
        finally:
            print("stopping ...")
            for service in reversed(services):
                if service.proc is not None:
                    code = service.terminate(timeout=30)
                    print(f"  {service.module} exited {code}")


async def progress(env: DemoEnvironment, sim: Simulator, expected_messages: int) -> Report:
    current = await measure(env)
    served = sim.stats().items_served
    print(
        f"  pulled {served.get('messages', 0):>6} msgs {served.get('contacts', 0):>5} contacts"
        f" | stored: messages {current.messages:>6}/{expected_messages}"
        f" statuses {current.statuses:>5} contacts {current.contacts:>5}"
        f" | queued {current.queued:>5} | lag {current.lag}"
    )
    return current


async def while_sending(
    env: DemoEnvironment, sim: Simulator, expected_messages: int, sending: asyncio.Task[Any]
) -> None:
    """Progress lines while the webhooks are being posted (the pullers run meanwhile)."""
    while not sending.done():
        await progress(env, sim, expected_messages)
        await asyncio.wait({sending}, timeout=2.0)


async def watch(
    env: DemoEnvironment, expected: Expected, sim: Simulator, patience: float, stop: asyncio.Event
) -> Report:
    """Progress every two seconds until everything expected is stored and nothing is queued."""
    deadline = time.monotonic() + patience
    while True:
        current = await progress(env, sim, len(expected.messages))
        if current.matches(expected) and current.queued == 0:
            return current
        if time.monotonic() > deadline or stop.is_set():
            print("  gave up waiting")
            return current
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 2.0)


def main() -> None:
    for name in ("DATABASE_URL", "AMQP_URL"):
        if not os.environ.get(name):
            sys.exit(f"{name} is not set: run the demo with `make demo`")
    sys.exit(asyncio.run(run(parse_args())))


if __name__ == "__main__":
    main()

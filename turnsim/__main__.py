"""`python -m turnsim`: the simulator on its own, for the demo and for poking at it by hand.

    python -m turnsim --port 8900 --messages 20000 --contacts 5000 --rate-limit 60 --seed 1

Faults can be switched at runtime:
    curl -XPOST localhost:8900/_sim/config -d '{"error_rate": 0.05}'
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import uvicorn

from turnsim.app import create_app
from turnsim.config import SimConfig
from turnsim.dataset import DEFAULT_END, Dataset, DatasetSpec
from turnsim.simulator import Simulator


def _moment(value: str) -> datetime:
    if value == "now":
        return datetime.now(UTC).replace(microsecond=0)
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"give a timezone: {value}")
    return moment


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    defaults = SimConfig()
    parser = argparse.ArgumentParser(prog="python -m turnsim", description=__doc__.split("\n")[0])
    add = parser.add_argument
    add("--host", default="127.0.0.1")
    add("--port", type=int, default=8900)
    add("--seed", type=int, default=1, help="data set and fault draws")
    add("--messages", type=int, default=DatasetSpec.messages)
    add("--contacts", type=int, default=DatasetSpec.contacts)
    add("--end", type=_moment, default=DEFAULT_END, help="ISO-8601 with zone, or 'now'")
    add("--days", type=float, default=30.0, help="history length before --end")
    add("--business-number", default=DatasetSpec.business_number)
    add("--token", default=defaults.token)
    add("--rate-limit", type=int, default=defaults.rate_limit)
    add("--rate-window", type=float, default=defaults.rate_window)
    add("--cursor-ttl", type=float, default=defaults.cursor_ttl)
    add("--max-page-size", type=int, default=defaults.max_page_size)
    add("--error-rate", type=float, default=defaults.error_rate)
    add("--latency", type=float, default=defaults.latency)
    add("--max-window", type=float, default=defaults.max_window)
    add("--late-share", type=float, default=defaults.late_share)
    add("--late-delay", type=float, default=defaults.late_delay)
    add("--arrival-rate", type=float, default=defaults.arrival_rate)
    add("--contact-cursor-403-burst", type=int, default=defaults.contact_cursor_403_burst)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse(argv)
    spec = DatasetSpec(
        seed=args.seed,
        messages=args.messages,
        contacts=args.contacts,
        start=args.end - timedelta(days=args.days),
        end=args.end,
        business_number=args.business_number,
    )
    config = SimConfig(
        token=args.token,
        rate_limit=args.rate_limit,
        rate_window=args.rate_window,
        cursor_ttl=args.cursor_ttl,
        max_page_size=args.max_page_size,
        default_page_size=min(SimConfig.default_page_size, args.max_page_size),
        error_rate=args.error_rate,
        latency=args.latency,
        max_window=args.max_window,
        late_share=args.late_share,
        late_delay=args.late_delay,
        arrival_rate=args.arrival_rate,
        seed=args.seed,
        contact_cursor_403_burst=args.contact_cursor_403_burst,
    )
    started = time.perf_counter()
    dataset = Dataset.generate(spec)
    sim = Simulator(dataset, config)
    counts = dataset.counts()
    print(
        f"turnsim: {counts['messages']} messages, {counts['contacts']} contacts, "
        f"{spec.start.isoformat()} .. {spec.end.isoformat()} "
        f"(generated in {time.perf_counter() - started:.1f} s)",
        flush=True,
    )
    print(f"turnsim: http://{args.host}:{args.port} token={config.token}", flush=True)
    uvicorn.run(create_app(sim), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()

"""`python -m chaos`: one chaos run; exit 1 on any loss, duplicate or unexpected row."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import random
import sys

from chaos import faults
from chaos.run import SHORT, Options, run


def parse_args(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m chaos", description=__doc__)
    parser.add_argument("--seed", type=int, default=None, help="default: drawn and printed")
    parser.add_argument("--duration", type=float, default=None, help="seconds of workload")
    parser.add_argument("--short", action="store_true", help="the test suite's small run")
    parser.add_argument("--messages", type=int, default=None)
    parser.add_argument("--contacts", type=int, default=None)
    parser.add_argument(
        "--faults",
        default=None,
        help=f"comma-separated subset of: {', '.join(faults.ALL)}",
    )
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 10**6)
    options = Options(seed=seed)
    if args.short:
        options = dataclasses.replace(options, **SHORT)  # type: ignore[arg-type]
    overrides: dict[str, object] = {}
    if args.duration is not None:
        overrides["duration"] = args.duration
    if args.messages is not None:
        overrides["messages"] = args.messages
    if args.contacts is not None:
        overrides["contacts"] = args.contacts
    if args.faults:
        kinds = tuple(k.strip() for k in args.faults.split(",") if k.strip())
        unknown = set(kinds) - set(faults.ALL)
        if unknown:
            parser.error(f"unknown fault(s): {', '.join(sorted(unknown))}")
        overrides["faults"] = kinds
    return dataclasses.replace(options, **overrides)  # type: ignore[arg-type]


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    outcome = asyncio.run(run(parse_args()))
    sys.exit(0 if outcome.ok else 1)


if __name__ == "__main__":
    main()

"""The command line of a Data Export puller: `python -m services.<puller>` runs it;
`python -m services.<puller> backfill --from ISO --until ISO` records a back-fill request for
the running singleton of that stream and exits.

The back-fill subcommand needs only the database and the business number (not the Turn token
or the broker), so an operator can run it from any pod or laptop that reaches PostgreSQL; the
running puller picks the request up between its own windows (shared/schedule.py).
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from shared.database import create_pool
from shared.puller_settings import parse_time
from shared.schedule import Backfills
from shared.settings import Env, configure_or_exit

S = TypeVar("S")


async def request_backfill(
    database_url: str, number: str, stream: str, start: str, until: str
) -> int:
    """Record a back-fill of `[start, until)` (ISO-8601 with a zone); the request's id.
    ValueError names what is wrong with the range."""
    pool = await create_pool(database_url, min_size=1, max_size=1)
    try:
        return await Backfills(pool, number, stream).request(parse_time(start), parse_time(until))
    finally:
        await pool.close()


def main(
    argv: list[str],
    *,
    prog: str,
    stream: str,
    settings: Callable[[Env], S],
    run: Callable[[S], Coroutine[Any, Any, None]],
) -> None:
    """Parse `argv`; run the service (`settings` read from the environment, then `run`) or
    record a back-fill of `stream`."""
    parser = argparse.ArgumentParser(prog=prog)
    commands = parser.add_subparsers(dest="command")
    backfill = commands.add_parser("backfill", help="ask the running puller to re-read a range")
    backfill.add_argument("--from", dest="start", required=True, help="ISO-8601 with a zone")
    backfill.add_argument("--until", required=True, help="ISO-8601 with a zone")
    args = parser.parse_args(argv)
    if args.command == "backfill":

        def target(env: Env) -> tuple[str, str]:
            return env.database_url(), env.required("BUSINESS_NUMBER_ID")

        url, number = configure_or_exit(target, os.environ)
        try:
            request_id = asyncio.run(request_backfill(url, number, stream, args.start, args.until))
        except ValueError as exc:
            raise SystemExit(f"backfill: {exc}") from None
        print(f"back-fill request {request_id} recorded for {number}:{stream}")
        return
    asyncio.run(run(configure_or_exit(settings, os.environ)))

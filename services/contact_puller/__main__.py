"""`python -m services.contact_puller` runs the puller;
`python -m services.contact_puller backfill --from ISO --until ISO` records a back-fill request
(stream "contacts") for the running singleton and exits."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from services.contact_puller.app import run
from services.contact_puller.settings import STREAM, ContactSettings
from services.message_puller.settings import parse_time
from shared.database import create_pool
from shared.schedule import Backfills
from shared.settings import Env, configure_or_exit


async def request_backfill(database_url: str, number: str, start: str, until: str) -> int:
    pool = await create_pool(database_url, min_size=1, max_size=1)
    try:
        return await Backfills(pool, number, STREAM).request(parse_time(start), parse_time(until))
    finally:
        await pool.close()


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m services.contact_puller")
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
            request_id = asyncio.run(request_backfill(url, number, args.start, args.until))
        except ValueError as exc:
            raise SystemExit(f"backfill: {exc}") from None
        print(f"back-fill request {request_id} recorded for {number}:{STREAM}")
        return
    settings = configure_or_exit(ContactSettings.from_env, os.environ)
    asyncio.run(run(settings))


if __name__ == "__main__":
    main(sys.argv[1:])

"""Argument parsing and dispatch. Exit codes: 0 fine, 1 something is down or refused, 2 usage.

python -m ingestctl status [--json]
python -m ingestctl backfill messages|contacts --from ISO --until ISO
python -m ingestctl dlq list [--limit N] [--body]
python -m ingestctl dlq replay (--all | --id DELIVERY_ID ...)
python -m ingestctl dlq purge [--yes]
python -m ingestctl schema wait [--timeout SECONDS]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TextIO

from ingestctl import dlq, schema, state, status
from ingestctl.settings import CtlSettings
from shared.errors import ConfigError, IngestError
from shared.settings import Env

OK, FAILED, USAGE = 0, 1, 2


def parse_time(text: str) -> datetime:
    """ISO-8601; a date alone means its midnight; no offset means UTC."""
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO-8601 time: {text!r}") from exc
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ingestctl", description="Operate turnio-ingest (same environment as the services)."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    status_cmd = commands.add_parser("status", help="checkpoints, lag, leases, sweeps, queues")
    status_cmd.add_argument("--json", action="store_true", help="machine-readable output")

    backfill = commands.add_parser("backfill", help="ask the running puller to re-read a range")
    backfill.add_argument("stream", choices=state.STREAMS)
    backfill.add_argument("--from", dest="from_ts", type=parse_time, required=True)
    backfill.add_argument("--until", dest="until_ts", type=parse_time, required=True)

    dlq_cmd = commands.add_parser("dlq", help="the dead-letter queue")
    dlq_actions = dlq_cmd.add_subparsers(dest="action", required=True)
    listing = dlq_actions.add_parser("list", help="show dead letters (they stay in the queue)")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--body", action="store_true", help="print each body (first 2 KiB)")
    replay = dlq_actions.add_parser("replay", help="republish to the main exchange, then ack")
    which = replay.add_mutually_exclusive_group(required=True)
    which.add_argument("--all", action="store_true")
    which.add_argument("--id", dest="ids", action="append", metavar="DELIVERY_ID")
    purge = dlq_actions.add_parser("purge", help="delete every dead letter")
    purge.add_argument("--yes", action="store_true", help="do not ask")

    schema_cmd = commands.add_parser("schema", help="database schema")
    schema_actions = schema_cmd.add_subparsers(dest="action", required=True)
    wait = schema_actions.add_parser("wait", help="until the image's migrations are applied")
    wait.add_argument("--timeout", type=float, default=600.0)
    return parser


def settings_for(args: argparse.Namespace, env: Env) -> CtlSettings:
    if args.command == "status":
        return CtlSettings.from_env(env, database=True, broker=True, number=True)
    if args.command == "backfill":
        return CtlSettings.from_env(env, database=True, number=True)
    if args.command == "dlq":
        return CtlSettings.from_env(env, broker=True)
    return CtlSettings.from_env(env, database=True)


async def run(
    args: argparse.Namespace,
    settings: CtlSettings,
    out: TextIO,
    ask: Callable[[str], str],
) -> int:
    def say(line: str = "") -> None:
        print(line, file=out)

    if args.command == "status":
        report = await status.gather(settings)
        say(json.dumps(report.as_json(), indent=2) if args.json else status.render(report))
        return OK if report.healthy else FAILED

    if args.command == "backfill":
        if args.until_ts <= args.from_ts:
            say("refused: --until must be after --from")
            return USAGE
        if args.until_ts > datetime.now(UTC):
            say("refused: --until is in the future (Turn refuses it; the puller covers now)")
            return USAGE
        async with state.connect(settings.database_url) as pool:
            request_id = await state.request_backfill(
                pool, settings.business_number_id, args.stream, args.from_ts, args.until_ts
            )
        say(
            f"back-fill #{request_id} recorded: {args.stream} {args.from_ts.isoformat()} .. "
            f"{args.until_ts.isoformat()}; the running {args.stream[:-1]} puller picks it up "
            "(watch: ingestctl status)"
        )
        return OK

    if args.command == "dlq":
        return await run_dlq(args, settings, say, ask)

    missing = await schema.wait(settings.database_url, args.timeout, say=say)
    if missing:
        say(f"gave up after {args.timeout:.0f}s; still pending: {', '.join(missing)}")
        return FAILED
    say("schema is current")
    return OK


async def run_dlq(
    args: argparse.Namespace,
    settings: CtlSettings,
    say: Callable[..., None],
    ask: Callable[[str], str],
) -> int:
    queue = settings.topology.dead_queue
    if args.action == "list":
        total, letters = await dlq.peek(settings.amqp_url, settings.topology, args.limit)
        say(f"{total} dead letter(s) in {queue}" + (f", showing {len(letters)}" if letters else ""))
        for letter in letters:
            say()
            say(
                f"delivery {letter.delivery_id or '(no id)'}  route {letter.routing_key or '?'}"
                f"  deaths {letter.deaths}  at {letter.died_at or '?'}"
            )
            say(f"  reason: {letter.reason}")
            source = letter.headers.get("x-source")
            if source is not None:
                say(f"  source: {dlq._text(source)}  bytes: {len(letter.body)}")
            if args.body:
                say(f"  body: {letter.body[:2048].decode('utf-8', 'replace')}")
        return OK

    if args.action == "replay":
        result = await dlq.replay(
            settings.amqp_url, settings.topology, None if args.all else args.ids
        )
        say(f"replayed {len(result.replayed)} message(s) to exchange {settings.topology.exchange}")
        for delivery_id, why in result.skipped:
            say(f"  left in {queue}: {delivery_id or '(no id)'}: {why}")
        for delivery_id in result.missing:
            say(f"  not found in {queue}: {delivery_id}")
        return OK if not result.skipped and not result.missing else FAILED

    total = await dlq.count(settings.amqp_url, settings.topology)
    if total == 0:
        say(f"{queue} is empty")
        return OK
    if not args.yes:
        try:
            answer = ask(f"Delete {total} dead letter(s) from {queue} for good? Type 'purge': ")
        except EOFError:
            answer = ""
        if answer.strip() != "purge":
            say("not purged (pass --yes to skip the question)")
            return FAILED
    purged = await dlq.purge(settings.amqp_url, settings.topology)
    say(f"purged {purged} dead letter(s) from {queue}")
    return OK


async def invoke(
    argv: Sequence[str],
    environ: Mapping[str, str],
    out: TextIO = sys.stdout,
    ask: Callable[[str], str] = input,
) -> int:
    """The whole command; returns the exit code. Tests await this directly."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    try:
        settings = settings_for(args, Env(environ))
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=out)
        return USAGE
    try:
        return await run(args, settings, out, ask)
    except IngestError as exc:
        print(f"unavailable: {exc}", file=out)
        return FAILED


def main() -> None:
    try:
        code = asyncio.run(invoke(sys.argv[1:], os.environ))
    except KeyboardInterrupt:
        code = FAILED
    sys.exit(code)

"""What landed, measured from PostgreSQL and RabbitMQ, against the simulator's ground truth."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import aio_pika
import asyncpg

from shared.broker import Topology

if TYPE_CHECKING:
    from demo.environment import DemoEnvironment


@dataclass
class Expected:
    messages: set[str]
    statuses: set[str]
    contacts: dict[str, str]  # id -> newest updated_at


@dataclass
class Report:
    messages: int = 0
    statuses: int = 0
    contacts: int = 0
    events: int = 0
    events_by_type: dict[str, int] = field(default_factory=dict)
    queued: int = 0
    dead: int = 0
    lag: str = "-"
    message_ids: set[str] = field(default_factory=set)
    status_keys: set[str] = field(default_factory=set)
    contact_versions: dict[str, str] = field(default_factory=dict)
    duplicate_events: int = 0

    def matches(self, expected: Expected) -> bool:
        return (
            self.message_ids == expected.messages
            and expected.statuses <= self.status_keys
            and self.contact_versions == expected.contacts
        )


async def measure(env: DemoEnvironment) -> Report:
    report = Report()
    conn = await asyncpg.connect(env.database_url)
    try:
        report.message_ids = {r[0] for r in await conn.fetch("SELECT external_id FROM messages")}
        report.messages = len(report.message_ids)
        report.status_keys = {
            f"{r[0]}:{r[1]}"
            for r in await conn.fetch("SELECT message_external_id, status FROM statuses")
        }
        report.statuses = len(report.status_keys)
        report.contact_versions = {
            r[0]: r[1]
            for r in await conn.fetch("SELECT external_id, raw->>'updated_at' FROM contacts")
        }
        report.contacts = len(report.contact_versions)
        rows = await conn.fetch("SELECT event_type, count(*) FROM webhook_events GROUP BY 1")
        report.events_by_type = {r[0]: r[1] for r in rows}
        report.events = sum(report.events_by_type.values())
        report.duplicate_events = await conn.fetchval(
            "SELECT count(*) - count(DISTINCT (event_type, external_event_id)) FROM webhook_events"
        )
        lag = await conn.fetchval(
            "SELECT now() - max(checkpoint) FROM ingestion_state WHERE stream = 'messages'"
        )
        report.lag = str(lag).split(".")[0] if lag is not None else "-"
    finally:
        await conn.close()
    topology = Topology()
    connection = await aio_pika.connect(env.amqp_url)
    try:
        channel = await connection.channel()
        for name in topology.bindings():
            queue = await channel.declare_queue(name, passive=True)
            report.queued += queue.declaration_result.message_count or 0
        dead = await channel.declare_queue(topology.dead_queue, passive=True)
        report.dead = dead.declaration_result.message_count or 0
    finally:
        await connection.close()
    return report


def print_report(report: Report, expected: Expected) -> None:
    lost_messages = expected.messages - report.message_ids
    unexpected = report.message_ids - expected.messages
    lost_statuses = expected.statuses - report.status_keys
    print("\nwhat landed in PostgreSQL")
    print(
        f"  messages        {report.messages:>7}   expected {len(expected.messages)}, "
        f"lost {len(lost_messages)}, unexpected {len(unexpected)}"
    )
    print(
        f"  statuses        {report.statuses:>7}   every status answered 200 stored: "
        f"{'yes' if not lost_statuses else f'NO, {len(lost_statuses)} missing'}"
    )
    newest = report.contact_versions == expected.contacts
    print(
        f"  contacts        {report.contacts:>7}   expected {len(expected.contacts)}, "
        f"each in its newest version: {'yes' if newest else 'NO'}"
    )
    print(
        f"  webhook_events  {report.events:>7}   "
        + ", ".join(f"{kind} {count}" for kind, count in sorted(report.events_by_type.items()))
    )
    print(f"  duplicates      {report.duplicate_events:>7}")
    print(f"  dead letters    {report.dead:>7}")
    verdict = (
        "every event exactly once"
        if report.matches(expected) and not report.duplicate_events
        else "MISMATCH"
    )
    print(f"  => {verdict}")

"""The lost/duplicated ledger: what should have landed, checked against what did.

Rules for "expected" (what the system owes PostgreSQL after a chaos run):

- webhook messages: every inbound or outbound message whose webhook the gateway answered 2xx,
  at the first sending, a retry or a duplicate (turnsim.webhooks.DeliveryResult.accepted). A
  delivery that never got a 2xx (gateway killed, broker down) is owed nothing by the webhook
  path: Turn would give up on it. It may still be stored, as the gateway can publish and die
  before answering: that is counted as "stored without a 200", never as unexpected.
- webhook statuses: the same rule. Statuses come ONLY by webhook (the Data Export API has
  none), so a status that never got a 2xx is not owed at all.
- export messages: every message in the simulator's data set when the run ends (the history
  plus what arrived while it ran). The message puller back-fills from the configured start, so
  all of them are owed, whatever happened to their webhooks: this is also how a message whose
  webhook was never answered 200 is still expected.
- export contacts: every contact of the data set, in its newest version (`updated_at`). A
  contact stored in an older version than the simulator's newest is "stale" and counts as lost.

Per source: stored = expected keys found in their table; lost = expected - stored;
duplicated = rows beyond one per key (the unique constraints should make it 0; measured, not
assumed) plus message/status/contact events of the lake stored under a second identity
(an `unknown` event is one: nothing this workload sends is unknown); unexpected = stored keys
nobody sent (a message id outside the data set, a status no webhook carried, a contact id
Turn does not have). Dead letters are read from the dead-letter queue at the end, grouped per
source with their reasons (x-error from the writer, or x-death when the broker's delivery
limit moved them). The run fails on any loss, duplicate or unexpected row.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

import aio_pika
import asyncpg

from shared import broker

SOURCES = ("webhook messages", "webhook statuses", "export messages", "export contacts")


@dataclass(frozen=True)
class Truth:
    """What the workload owes, by the rules above (event keys of shared/events.py)."""

    webhook_messages: frozenset[str]  # answered 2xx
    webhook_statuses: frozenset[str]  # answered 2xx
    sent_messages: frozenset[str]  # every webhook message sent, answered or not
    sent_statuses: frozenset[str]  # every status sent, answered or not
    export_messages: frozenset[str]  # the data set's message ids
    contacts: dict[str, datetime]  # contact id -> newest updated_at


@dataclass
class Line:
    source: str
    expected: int = 0
    stored: int = 0
    lost: int = 0
    duplicated: int = 0
    unexpected: int = 0
    dead_lettered: int = 0
    without_200: int = 0  # stored though no 2xx was seen (gateway died after the publish)
    examples: list[str] = field(default_factory=list)  # a few lost/unexpected keys

    @property
    def clean(self) -> bool:
        return self.lost == 0 and self.duplicated == 0 and self.unexpected == 0


@dataclass
class Ledger:
    lines: dict[str, Line]
    dead_reasons: Counter[str]
    queued: int  # still in the work queues when measured
    lake_duplicates: int  # webhook_events rows beyond one per identity, all types
    unknown_events: int  # `unknown` / `error` events in the lake

    @property
    def clean(self) -> bool:
        return (
            all(line.clean for line in self.lines.values())
            and self.lake_duplicates == 0
            and self.unknown_events == 0
        )

    @property
    def lost(self) -> int:
        return sum(line.lost for line in self.lines.values())

    def format(self) -> str:
        rows = [
            f"{'source':<18}{'expected':>9}{'stored':>9}{'lost':>7}{'dup':>6}"
            f"{'unexp':>7}{'dead':>6}{'no-200':>8}"
        ]
        for line in self.lines.values():
            rows.append(
                f"{line.source:<18}{line.expected:>9}{line.stored:>9}{line.lost:>7}"
                f"{line.duplicated:>6}{line.unexpected:>7}{line.dead_lettered:>6}"
                f"{line.without_200:>8}"
            )
            if line.examples:
                rows.append(f"{'':<18}e.g. {', '.join(line.examples)}")
        rows.append(
            f"lake: {self.lake_duplicates} duplicate identities, {self.unknown_events} "
            f"unknown/error events; {self.queued} still queued"
        )
        if self.dead_reasons:
            rows.append("dead letters:")
            rows += [f"  {n:>6}  {reason}" for reason, n in self.dead_reasons.most_common()]
        else:
            rows.append("dead letters: none")
        webhook_lost = self.lines["webhook messages"].lost + self.lines["webhook statuses"].lost
        rows.append(
            "every webhook answered 200 is stored: "
            + ("yes" if webhook_lost == 0 else f"NO, {webhook_lost} missing")
        )
        rows.append("=> " + ("CLEAN: every event exactly once" if self.clean else "NOT CLEAN"))
        return "\n".join(rows)


def _line(source: str, expected: frozenset[str], stored: set[str], known: frozenset[str]) -> Line:
    lost = expected - stored
    unexpected = stored - known
    return Line(
        source,
        expected=len(expected),
        stored=len(expected & stored),
        lost=len(lost),
        unexpected=len(unexpected),
        examples=sorted(lost)[:3] + sorted(unexpected)[:3],
    )


async def measure(database_url: str, amqp_url: str, truth: Truth, *, drain_dead: bool) -> Ledger:
    """Read PostgreSQL and the queues now. `drain_dead` consumes the dead letters to read them
    (only on a broker about to be thrown away)."""
    conn = await asyncpg.connect(database_url)
    try:
        messages = [r[0] for r in await conn.fetch("SELECT external_id FROM messages")]
        statuses = [
            f"{r[0]}:{r[1]}"
            for r in await conn.fetch("SELECT message_external_id, status FROM statuses")
        ]
        contacts = {
            r[0]: r[1]
            for r in await conn.fetch("SELECT external_id, turn_updated_at FROM contacts")
        }
        contact_rows = int(await conn.fetchval("SELECT count(*) FROM contacts"))
        lake = {
            r[0]: (int(r[1]), int(r[2]))
            for r in await conn.fetch(
                "SELECT event_type, count(*), count(DISTINCT external_event_id) "
                "FROM webhook_events GROUP BY 1"
            )
        }
    finally:
        await conn.close()

    message_set, status_set = set(messages), set(statuses)
    lines = {
        "webhook messages": _line(
            "webhook messages",
            truth.webhook_messages,
            message_set,
            truth.export_messages | truth.sent_messages,
        ),
        "webhook statuses": _line(
            "webhook statuses", truth.webhook_statuses, status_set, truth.sent_statuses
        ),
        "export messages": _line(
            "export messages",
            truth.export_messages,
            message_set,
            truth.export_messages | truth.sent_messages,
        ),
    }
    lines["webhook messages"].without_200 = len(
        (truth.sent_messages - truth.webhook_messages) & message_set
    )
    lines["webhook statuses"].without_200 = len(
        (truth.sent_statuses - truth.webhook_statuses) & status_set
    )
    lines["webhook statuses"].duplicated = len(statuses) - len(status_set)
    message_dups = len(messages) - len(message_set)
    lines["webhook messages"].duplicated = lines["export messages"].duplicated = message_dups

    expected_contacts = frozenset(truth.contacts)
    contact_line = _line("export contacts", expected_contacts, set(contacts), expected_contacts)
    stale = sorted(k for k, v in contacts.items() if k in truth.contacts and v != truth.contacts[k])
    contact_line.lost += len(stale)
    contact_line.stored -= len(stale)
    contact_line.examples += [f"{k} stale" for k in stale[:3]]
    contact_line.duplicated = contact_rows - len(contacts)
    lines["export contacts"] = contact_line

    queued, dead = await _queues(amqp_url, drain_dead=drain_dead)
    reasons: Counter[str] = Counter()
    for source, reason in dead:
        reasons[f"{source}: {reason}"] += 1
        if source in lines:
            lines[source].dead_lettered += 1
    return Ledger(
        lines=lines,
        dead_reasons=reasons,
        queued=queued,
        lake_duplicates=sum(total - distinct for total, distinct in lake.values()),
        unknown_events=sum(lake.get(kind, (0, 0))[0] for kind in ("unknown", "error")),
    )


async def _queues(amqp_url: str, *, drain_dead: bool) -> tuple[int, list[tuple[str, str]]]:
    """Messages ready in the work queues, and (source, reason) of each dead letter."""
    topology = broker.Topology()
    connection = await aio_pika.connect(amqp_url)
    dead: list[tuple[str, str]] = []
    try:
        channel = await connection.channel()
        queued = 0
        for name in topology.bindings():
            declared = await channel.declare_queue(name, passive=True)
            queued += declared.declaration_result.message_count or 0
        dead_queue = await channel.declare_queue(topology.dead_queue, passive=True)
        if not drain_dead:
            count = dead_queue.declaration_result.message_count or 0
            return queued, [("?", "not read")] * count
        while (message := await dead_queue.get(no_ack=True, fail=False)) is not None:
            dead.append(_dead_reason(message))
        return queued, dead
    finally:
        await connection.close()


def _dead_reason(message: aio_pika.abc.AbstractIncomingMessage) -> tuple[str, str]:
    headers = message.headers or {}
    key = _text(headers.get(broker.H_ORIGINAL_ROUTING_KEY)) or message.routing_key or ""
    deaths = headers.get("x-death")
    if not key and isinstance(deaths, list) and deaths and isinstance(deaths[0], dict):
        keys = deaths[0].get("routing-keys")
        key = (_text(keys[0]) or "") if isinstance(keys, list) and keys else ""
    reason = _text(headers.get(broker.H_ERROR))
    if reason is None and isinstance(deaths, list) and deaths and isinstance(deaths[0], dict):
        reason = f"broker: {_text(deaths[0].get('reason'))} (delivery limit or rejection)"
    if key.startswith("export.contact"):
        source = "export contacts"
    elif key.startswith("export"):
        source = "export messages"
    elif b'"statuses"' in message.body:
        source = "webhook statuses"
    else:
        source = "webhook messages"
    return source, (reason or "no reason given")[:160]


def _text(value: object) -> str | None:
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    return value if isinstance(value, str) else None

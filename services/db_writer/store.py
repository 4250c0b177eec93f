"""Events -> rows: set-based SQL per table, one transaction per batch.

Each table gets one INSERT ... SELECT FROM unnest(arrays) ... ON CONFLICT statement per batch,
so a batch of 500 events is four round trips, not 2,000. Rows are de-duplicated (and merged)
in the batch first, because one statement may not touch the same row twice, and sorted by key,
so two writers lock rows in the same order and cannot deadlock on each other.

What PostgreSQL refuses for the data itself (a "\\u0000" that jsonb and text cannot hold, a
value over a limit) must not take its batch down: the batch is bisected under savepoints of
one transaction until the refused events are alone, and everything else commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import asyncpg

from services.db_writer.explode import ContactRow, Event, MessageRow, StatusRow
from shared.database import CONNECTION_ERRORS
from shared.errors import DatabaseUnavailable

# Errors about one event's data: the same event will fail every time, the others are fine.
# Classes 22 (data exception), 23 (integrity), 54 (program limit, e.g. an index row too big).
REFUSED: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.DataError,
    asyncpg.exceptions.IntegrityConstraintViolationError,
    asyncpg.exceptions.ProgramLimitExceededError,
    UnicodeError,
)

EventId = tuple[str, str]  # (event_type, external_event_id)

TABLES = ("webhook_events", "messages", "statuses", "contacts")


def _newer(table: str, column: str) -> str:
    """SQL: the incoming value of `column` is strictly newer than the stored one."""
    return (
        f"(EXCLUDED.{column} > {table}.{column} "
        f"OR ({table}.{column} IS NULL AND EXCLUDED.{column} IS NOT NULL))"
    )


def _insert(table: str, columns: Sequence[tuple[str, str]]) -> str:
    """INSERT INTO table (...) SELECT ... FROM unnest($1::type[], ...); jsonb goes as text."""
    names = ", ".join(name for name, _ in columns)
    arrays = ", ".join(
        f"${i}::{'text' if kind == 'jsonb' else kind}[]" for i, (_, kind) in enumerate(columns, 1)
    )
    aliases = ", ".join(f"c{i}" for i in range(1, len(columns) + 1))
    selected = ", ".join(
        f"c{i}::jsonb" if kind == "jsonb" else f"c{i}" for i, (_, kind) in enumerate(columns, 1)
    )
    return (
        f"INSERT INTO {table} AS {table} ({names}) SELECT {selected} "
        f"FROM unnest({arrays}) AS x({aliases})"
    )


EVENT_COLUMNS = (
    ("event_type", "text"),
    ("external_event_id", "text"),
    ("business_number_id", "text"),
    ("source", "text"),
    ("subscription", "text"),
    ("delivery_id", "text"),
    ("payload", "jsonb"),
    ("source_ts", "timestamptz"),
    ("received_at", "timestamptz"),
    ("updated_at", "timestamptz"),
)
# Only contacts carry updated_at, so for every other event the WHERE is false: first copy wins.
EVENTS_SQL = (
    _insert("webhook_events", EVENT_COLUMNS)
    + " ON CONFLICT (provider, event_type, external_event_id) DO UPDATE SET"
    " payload = EXCLUDED.payload, updated_at = EXCLUDED.updated_at,"
    " source_ts = EXCLUDED.source_ts,"
    " processed = webhook_events.processed AND webhook_events.payload = EXCLUDED.payload"
    f" WHERE {_newer('webhook_events', 'updated_at')}"
    " RETURNING (xmax = 0)"
)

MESSAGE_COLUMNS = (
    ("external_id", "text"),
    ("business_number_id", "text"),
    ("direction", "text"),
    ("message_type", "text"),
    ("from_addr", "text"),
    ("to_addr", "text"),
    ("contact_wa_id", "text"),
    ("body", "text"),
    ("sent_at", "timestamptz"),
    ("turn_inserted_at", "timestamptz"),
    ("turn_uuid", "text"),
    ("chat_uuid", "text"),
    ("contact_uuid", "text"),
    ("author_type", "text"),
    ("author_name", "text"),
    ("in_reply_to", "text"),
    ("last_status", "text"),
    ("last_status_at", "timestamptz"),
    ("source", "text"),
    ("raw", "jsonb"),
)
assert tuple(name for name, _ in MESSAGE_COLUMNS) == MessageRow._fields
_FILLABLE = [name for name, _ in MESSAGE_COLUMNS[2:16]]  # direction .. in_reply_to
_STATUS_NEWER = _newer("messages", "last_status_at")
# A later copy of a message (the export after the webhook) fills what was missing and moves
# last_status forward, and never creates a second row; an identical copy writes nothing.
MESSAGES_SQL = (
    _insert("messages", MESSAGE_COLUMNS)
    + " ON CONFLICT (external_id) DO UPDATE SET "
    + ", ".join(f"{c} = COALESCE(messages.{c}, EXCLUDED.{c})" for c in _FILLABLE)
    + f", last_status = CASE WHEN {_STATUS_NEWER} THEN EXCLUDED.last_status"
    " ELSE COALESCE(messages.last_status, EXCLUDED.last_status) END"
    f", last_status_at = CASE WHEN {_STATUS_NEWER} THEN EXCLUDED.last_status_at"
    " ELSE messages.last_status_at END"
    ", updated_at = now() WHERE "
    + " OR ".join(f"(messages.{c} IS NULL AND EXCLUDED.{c} IS NOT NULL)" for c in _FILLABLE)
    + f" OR {_STATUS_NEWER} RETURNING (xmax = 0)"
)

STATUS_COLUMNS = (
    ("message_external_id", "text"),
    ("status", "text"),
    ("business_number_id", "text"),
    ("recipient_id", "text"),
    ("status_at", "timestamptz"),
    ("conversation_id", "text"),
    ("conversation_origin", "text"),
    ("pricing_category", "text"),
    ("billable", "boolean"),
    ("errors", "jsonb"),
    ("raw", "jsonb"),
)
assert tuple(name for name, _ in STATUS_COLUMNS) == StatusRow._fields
STATUSES_SQL = (
    _insert("statuses", STATUS_COLUMNS)
    + " ON CONFLICT (message_external_id, status) DO NOTHING RETURNING true"
)

CONTACT_COLUMNS = (
    ("external_id", "text"),
    ("business_number_id", "text"),
    ("uuid", "text"),
    ("whatsapp_id", "text"),
    ("name", "text"),
    ("surname", "text"),
    ("whatsapp_profile_name", "text"),
    ("language", "text"),
    ("opted_in", "boolean"),
    ("opted_in_at", "timestamptz"),
    ("turn_inserted_at", "timestamptz"),
    ("turn_updated_at", "timestamptz"),
    ("raw", "jsonb"),
)
assert tuple(name for name, _ in CONTACT_COLUMNS) == ContactRow._fields
# Newest wins: an older copy (a sweep, a redelivery, another replica's batch) never overwrites
# a newer one, and an equal one writes nothing. ON CONFLICT re-checks the WHERE against the
# latest committed row, so this holds between concurrent writers too.
CONTACTS_SQL = (
    _insert("contacts", CONTACT_COLUMNS)
    + " ON CONFLICT (external_id) DO UPDATE SET "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c, _ in CONTACT_COLUMNS[1:])
    + f", updated_at = now() WHERE {_newer('contacts', 'turn_updated_at')}"
    " RETURNING (xmax = 0)"
)


@dataclass
class Counts:
    """Rows per table: inserted, updated (a newer or fuller copy), duplicate (nothing written)."""

    rows: dict[str, dict[str, int]] = field(
        default_factory=lambda: {t: {"inserted": 0, "updated": 0, "duplicate": 0} for t in TABLES}
    )

    def add(self, other: Counts) -> None:
        for table, outcomes in other.rows.items():
            for outcome, n in outcomes.items():
                self.rows[table][outcome] += n

    def record(self, table: str, sent: int, returned: Sequence[asyncpg.Record]) -> None:
        inserted = sum(1 for r in returned if r[0])
        self.rows[table]["inserted"] += inserted
        self.rows[table]["updated"] += len(returned) - inserted
        self.rows[table]["duplicate"] += sent - len(returned)


@dataclass(frozen=True)
class Refused:
    event: Event
    reason: str
    category: str  # data_error | constraint | limit | encoding


@dataclass
class Result:
    counts: Counts
    refused: list[Refused]

    @classmethod
    def empty(cls) -> Result:
        return cls(Counts(), [])


def identity(event: Event) -> EventId:
    return (event.event_type, event.key)


def dedupe(events: Sequence[Event]) -> list[Event]:
    """One event per identity, merged as the database would merge the copies; sorted by key.

    Messages: a later copy fills fields the first left empty. Contacts: the newest wins.
    Everything else: the first copy wins.
    """
    chosen: dict[EventId, Event] = {}
    for event in events:
        key = identity(event)
        seen = chosen.get(key)
        if seen is None:
            chosen[key] = event
        elif event.contact is not None and seen.contact is not None:
            if _is_newer(event, seen):
                chosen[key] = event
        elif event.message is not None and seen.message is not None:
            chosen[key] = _merge_messages(seen, event)
    return [chosen[key] for key in sorted(chosen)]


def _is_newer(event: Event, than: Event) -> bool:
    if event.updated_at is None:
        return False
    return than.updated_at is None or event.updated_at > than.updated_at


def _merge_messages(first: Event, later: Event) -> Event:
    assert first.message is not None and later.message is not None
    a, b = first.message, later.message
    merged = a._replace(
        **{f: getattr(b, f) for f in _FILLABLE if getattr(a, f) is None},
    )
    if b.last_status_at is not None and (
        a.last_status_at is None or b.last_status_at > a.last_status_at
    ):
        merged = merged._replace(last_status=b.last_status, last_status_at=b.last_status_at)
    elif merged.last_status is None:
        merged = merged._replace(last_status=b.last_status)
    return Event(
        first.event_type,
        first.key,
        first.origin,
        first.payload,
        first.source_ts or later.source_ts,
        message=merged,
    )


def _columns(rows: Sequence[tuple[object, ...]], width: int) -> list[list[object]]:
    if not rows:
        return [[] for _ in range(width)]
    return [list(column) for column in zip(*rows, strict=True)]


async def write(conn: asyncpg.Connection, events: Sequence[Event]) -> Counts:
    """Write de-duplicated events; the caller holds the transaction."""
    counts = Counts()
    event_rows = [
        (
            e.event_type.value,
            e.key,
            e.origin.business_number_id,
            e.origin.source,
            e.origin.subscription,
            e.origin.delivery_id,
            e.payload,
            e.source_ts,
            e.origin.received_at,
            e.updated_at,
        )
        for e in events
    ]
    if event_rows:
        returned = await conn.fetch(EVENTS_SQL, *_columns(event_rows, len(EVENT_COLUMNS)))
        counts.record("webhook_events", len(event_rows), returned)
    for table, sql, rows, width in (
        ("messages", MESSAGES_SQL, [e.message for e in events if e.message], len(MESSAGE_COLUMNS)),
        ("statuses", STATUSES_SQL, [e.status for e in events if e.status], len(STATUS_COLUMNS)),
        ("contacts", CONTACTS_SQL, [e.contact for e in events if e.contact], len(CONTACT_COLUMNS)),
    ):
        if rows:
            returned = await conn.fetch(sql, *_columns(rows, width))
            counts.record(table, len(rows), returned)
    return counts


async def store(pool: asyncpg.Pool, events: Sequence[Event]) -> Result:
    """Write a de-duplicated batch in one transaction; isolate the events PostgreSQL refuses.

    Raises DatabaseUnavailable when PostgreSQL is away or refuses every write: then nothing
    was committed.
    """
    try:
        async with pool.acquire() as conn:
            try:
                async with conn.transaction():
                    return Result(await write(conn, events), [])
            except REFUSED as exc:
                if len(events) == 1:
                    return Result(Counts(), [_refused(events[0], exc)])
            async with conn.transaction():
                result = Result(Counts(), [])
                await _bisect(conn, events, result)
                return result
    except CONNECTION_ERRORS as exc:
        raise DatabaseUnavailable(f"PostgreSQL unavailable: {type(exc).__name__}: {exc}") from exc
    except asyncpg.PostgresError as exc:
        # Not the data (that is REFUSED, above) but the database: read-only after a failover,
        # disk full, a migration not applied, a permission missing. The same batch will go
        # through once that is fixed, so it is retried like an outage, never dead-lettered.
        raise DatabaseUnavailable(
            f"PostgreSQL cannot take writes: {exc.sqlstate} {type(exc).__name__}: {exc}"
        ) from exc


async def _bisect(conn: asyncpg.Connection, events: Sequence[Event], result: Result) -> None:
    """Halve until each refused event is alone; each half runs under its own savepoint."""
    middle = len(events) // 2
    for half in (events[:middle], events[middle:]):
        try:
            async with conn.transaction():
                result.counts.add(await write(conn, half))
        except REFUSED as exc:
            if len(half) == 1:
                result.refused.append(_refused(half[0], exc))
            else:
                await _bisect(conn, half, result)


def _refused(event: Event, exc: BaseException) -> Refused:
    sqlstate = getattr(exc, "sqlstate", None) or ""
    category = {"22": "data_error", "23": "constraint", "54": "limit"}.get(sqlstate[:2], "encoding")
    detail = f"{sqlstate} " if sqlstate else ""
    return Refused(
        event,
        f"PostgreSQL refused {event.event_type.value} {event.key}: {detail}{exc}",
        category,
    )

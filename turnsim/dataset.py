"""The simulated Turn number's data: a seeded, known data set and its ground truth.

Items are kept per kind in one list sorted by `(time in microseconds, id)`, each with its JSON
bytes already serialised, so serving a page is a bisect plus `page_size` steps, whatever the size
of the data set.

Which time an export window filters on (turn-api.md §3.5/§8 leave it open, [INF]):
- messages: the message `timestamp` (epoch seconds), not `_vnd.v1.inserted_at`;
- contacts: `updated_at` (one real backend checkpoints on `max(updated_at)`), so an edited
  contact moves to its new time and shows up again in a later window.
Windows are half-open, `from <= time < until`; ties are broken by id (as a string).

Visibility: an item is visible to a read made at wall time `as_of` when it had been added by
then (`add_message`/`touch_contact` stamp the wall clock) and, if it is a late arrival, when
`as_of >= max(its time, lateness switched on) + late delay` (see `LateModel`).
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import orjson

from turnsim import payloads, statuses
from turnsim.index import US, Entry, Key, LateModel, Page, SortedIndex

MESSAGES = "messages"
CONTACTS = "contacts"
KINDS = (MESSAGES, CONTACTS)
FIRST_CONTACT_ID = 1048577
DEFAULT_END = datetime(2025, 1, 31, tzinfo=UTC)
DEFAULT_START = DEFAULT_END - timedelta(days=30)

Moment = float | datetime
DeliveryKind = Literal["inbound", "outbound", "status"]


@dataclass(frozen=True)
class DatasetSpec:
    seed: int = 1
    messages: int = 1000
    contacts: int = 200
    start: datetime = DEFAULT_START
    end: datetime = DEFAULT_END
    business_number: str = "27600000000"
    inbound_share: float = 0.5
    statuses: bool = True


@dataclass(frozen=True)
class Delivery:
    """One webhook request Turn would make: headers (unsigned) and the exact body bytes."""

    kind: DeliveryKind
    event_id: str  # message id, or "{message id}:{status}" (shared/events.py)
    at: int  # epoch seconds of the event
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class _Sent:
    recipient: str
    history: tuple[tuple[str, int], ...]
    conversation: str


def micros(moment: Moment) -> int:
    if isinstance(moment, datetime):
        if moment.tzinfo is None:
            raise ValueError("naive datetime: give a timezone")
        delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
        return (delta.days * 86400 + delta.seconds) * US + delta.microseconds
    return round(moment * US)


def _epoch(moment: Moment | None) -> float:
    if moment is None:
        return time.time()
    return moment.timestamp() if isinstance(moment, datetime) else float(moment)


def _dump(item: Any) -> bytes:
    return orjson.dumps(item, option=orjson.OPT_SORT_KEYS)


def _draw(seed: int, event_id: str) -> float:
    """A per-event uniform number that does not depend on iteration order."""
    digest = hashlib.blake2b(f"{seed}:{event_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest) / 2**64


class Dataset:
    """Turn's store for one number. Thread-safe: the server and tests touch it at once."""

    def __init__(self, spec: DatasetSpec) -> None:
        self.spec = spec
        self._rng = random.Random(spec.seed)
        self._lock = threading.RLock()
        self._index = {kind: SortedIndex() for kind in KINDS}
        self._people: list[payloads.Person] = []
        self._contacts: dict[int, Entry] = {}
        self._message_ids: set[str] = set()
        self._last_outbound: dict[str, str] = {}  # wa_id -> latest outbound message id
        self._sent: dict[str, _Sent] = {}
        self.late = LateModel()

    @classmethod
    def generate(cls, spec: DatasetSpec) -> Dataset:
        """The same spec always gives the same items, byte for byte."""
        if spec.end <= spec.start:
            raise ValueError("spec.end must be after spec.start")
        data = cls(spec)
        rng = data._rng
        start, end = int(spec.start.timestamp()), int(spec.end.timestamp())
        with data._lock:
            for n in range(spec.contacts):
                data._new_contact(FIRST_CONTACT_ID + n, start, end)
            if data._people:
                for timestamp in sorted(rng.randrange(start, end) for _ in range(spec.messages)):
                    data._new_message(timestamp, added_at=0.0)
        return data

    # -- building ----------------------------------------------------------------------------

    def _new_contact(self, contact_id: int, start: int, end: int) -> None:
        rng = self._rng
        wa_id = f"2782{contact_id - FIRST_CONTACT_ID + 1:07d}"
        inserted = start - rng.uniform(0, 365 * 86400)
        updated = rng.uniform(start, end)
        item = payloads.contact(rng, contact_id, wa_id, inserted, updated)
        details = item["details"]
        self._people.append(
            payloads.Person(
                contact_id=contact_id,
                contact_uuid=item["uuid"],
                wa_id=wa_id,
                profile_name=details["whatsapp_profile_name"],
                chat_uuid=payloads.new_uuid(rng),
                chat_inserted_at=payloads.iso(inserted + 0.013),
            )
        )
        self._put_contact(contact_id, item, added_at=0.0)

    def _put_contact(self, contact_id: int, item: dict[str, Any], added_at: float) -> None:
        at = micros(datetime.fromisoformat(item["updated_at"]))
        entry = Entry((at, str(contact_id)), _dump(item), added_at, self._rng.random())
        old = self._contacts.get(contact_id)
        if old is not None:
            self._index[CONTACTS].remove(old.key)
        self._contacts[contact_id] = entry
        self._index[CONTACTS].insert(entry)

    def _new_message(
        self,
        timestamp: int,
        added_at: float,
        direction: str | None = None,
        person: payloads.Person | None = None,
    ) -> dict[str, Any]:
        rng, spec = self._rng, self.spec
        if person is None:
            # A few contacts write a lot, most write a little.
            person = self._people[int(len(self._people) * rng.random() ** 2)]
        if direction is None:
            direction = "inbound" if rng.random() < spec.inbound_share else "outbound"
        item: dict[str, Any]
        if direction == "inbound":
            replied_to = self._last_outbound.get(person.wa_id)
            item = payloads.inbound(rng, person, timestamp, spec.business_number, replied_to)
            message = item["messages"][0]
        else:
            history = statuses.status_history(rng, timestamp) if spec.statuses else []
            last = history[-1] if history else None
            item = message = payloads.outbound(rng, person, timestamp, spec.business_number, last)
            self._sent[message["id"]] = _Sent(
                person.wa_id, tuple(history), f"{rng.getrandbits(128):032x}"
            )
            self._last_outbound[person.wa_id] = message["id"]
        if message["id"] in self._message_ids:  # 80 random bits: never in practice
            raise RuntimeError(f"duplicate generated id {message['id']}")
        self._message_ids.add(message["id"])
        entry = Entry((timestamp * US, message["id"]), _dump(item), added_at, rng.random())
        self._index[MESSAGES].insert(entry)
        return item

    # -- changes while running ---------------------------------------------------------------

    def add_message(
        self,
        at: Moment | None = None,
        *,
        direction: str | None = None,
        contact_id: int | None = None,
        now: Moment | None = None,
    ) -> dict[str, Any]:
        """A new message in Turn (time `at`, default now), visible from wall time `now`."""
        added = _epoch(now)
        timestamp = int(_epoch(at) if at is not None else added)
        with self._lock:
            person = None
            if contact_id is not None:
                person = self._people[contact_id - FIRST_CONTACT_ID]
            return self._new_message(timestamp, added, direction, person)

    def touch_contact(
        self, contact_id: int | str, at: Moment | None = None, *, now: Moment | None = None
    ) -> dict[str, Any]:
        """An edit of a contact in Turn: a detail changes and `updated_at` becomes `at`.

        The old version leaves the store at once (cursors already open no longer see it, like a
        keyset query over a row that changed); the new one is visible from wall time `now`.
        """
        added = _epoch(now)
        updated = _epoch(at) if at is not None else added
        with self._lock:
            old = orjson.loads(self._contacts[int(contact_id)].body)
            item = payloads.touched(self._rng, old, updated)
            self._put_contact(int(contact_id), item, added)
            return item

    def set_late(self, model: LateModel) -> None:
        with self._lock:
            self.late = model

    # -- serving -----------------------------------------------------------------------------

    def page(
        self,
        kind: str,
        lo: int,
        hi: int,
        *,
        ascending: bool,
        after: Key | None,
        size: int,
        as_of: float,
    ) -> Page:
        """Up to `size` items of `lo <= time < hi` (µs) visible at `as_of`, after `after`."""
        with self._lock:
            return self._index[kind].page(
                lo, hi, ascending=ascending, after=after, size=size, as_of=as_of, late=self.late
            )

    # -- ground truth ------------------------------------------------------------------------

    def message_ids(self) -> set[str]:
        with self._lock:
            return set(self._message_ids)

    def contact_ids(self) -> set[str]:
        with self._lock:
            return {str(contact_id) for contact_id in self._contacts}

    def contact_versions(self) -> dict[str, str]:
        """Contact id -> its newest `updated_at` (ISO, as served)."""
        with self._lock:
            return {
                str(contact_id): payloads.iso(entry.key[0] / US)
                for contact_id, entry in self._contacts.items()
            }

    def status_keys(self) -> set[str]:
        """Every `{id}:{status}` a complete webhook feed carries."""
        with self._lock:
            return {
                f"{message_id}:{status}"
                for message_id, sent in self._sent.items()
                for status, _ in sent.history
            }

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {
                "messages": len(self._message_ids),
                "contacts": len(self._contacts),
                "statuses": sum(len(sent.history) for sent in self._sent.values()),
            }

    def messages_between(
        self, from_: Moment, until: Moment, *, now: Moment | None = None
    ) -> list[dict[str, Any]]:
        """What the export serves for `[from_, until)` read at `now`, in ascending order."""
        return self._between(MESSAGES, from_, until, now)

    def contacts_between(
        self, from_: Moment, until: Moment, *, now: Moment | None = None
    ) -> list[dict[str, Any]]:
        """Contacts whose `updated_at` is in `[from_, until)`, visible at `now`, ascending."""
        return self._between(CONTACTS, from_, until, now)

    def _between(
        self, kind: str, from_: Moment, until: Moment, now: Moment | None
    ) -> list[dict[str, Any]]:
        page = self.page(
            kind,
            micros(from_),
            micros(until),
            ascending=True,
            after=None,
            size=2**62,
            as_of=_epoch(now),
        )
        return [orjson.loads(body) for body in page.bodies]

    # -- webhooks ----------------------------------------------------------------------------

    def webhook_deliveries(
        self,
        *,
        kinds: Iterable[DeliveryKind] = ("inbound", "outbound", "status"),
        share: float = 1.0,
        seed: int = 1,
        from_: Moment | None = None,
        until: Moment | None = None,
    ) -> list[Delivery]:
        """What Turn would POST for the messages in `[from_, until)`, in event time order.

        `share` < 1 keeps a seeded subset of the events (the webhook "missed" the rest), chosen
        per event so the subset does not depend on the other arguments.
        """
        wanted = set(kinds)
        lo = micros(from_) if from_ is not None else -(2**62)
        hi = micros(until) if until is not None else 2**62
        with self._lock:
            page = self.page(
                MESSAGES, lo, hi, ascending=True, after=None, size=2**62, as_of=float("inf")
            )
            sent = dict(self._sent)
        out: list[Delivery] = []
        for body in page.bodies:
            item = orjson.loads(body)
            if "messages" in item:
                message = item["messages"][0]
                if "inbound" in wanted and _draw(seed, message["id"]) < share:
                    headers = {"X-Turn-Hook-Subscription": "whatsapp"}
                    out.append(_delivery("inbound", message["id"], message, headers, body))
                continue
            message_id = item["id"]
            if "outbound" in wanted and _draw(seed, message_id) < share:
                vnd = item["_vnd"]["v1"]
                # A fresh copy: no status reached yet when the `turn` hook fires.
                vnd["last_status"] = vnd["last_status_timestamp"] = None
                headers = {"X-Turn-Hook-Subscription": "turn", "X-WhatsApp-Id": message_id}
                out.append(_delivery("outbound", message_id, item, headers, _dump(item)))
            if "status" in wanted and message_id in sent:
                record = sent[message_id]
                for status, at in record.history:
                    event_id = f"{message_id}:{status}"
                    if _draw(seed, event_id) < share:
                        status_item = statuses.status_body(
                            message_id, record.recipient, status, at, record.conversation
                        )
                        out.append(
                            Delivery(
                                "status",
                                event_id,
                                at,
                                {
                                    "Content-Type": "application/json",
                                    "X-Turn-Hook-Subscription": "whatsapp",
                                },
                                _dump(status_item),
                            )
                        )
        out.sort(key=lambda delivery: (delivery.at, delivery.event_id))
        return out


def _delivery(
    kind: DeliveryKind,
    event_id: str,
    message: dict[str, Any],
    headers: dict[str, str],
    body: bytes,
) -> Delivery:
    return Delivery(
        kind,
        event_id,
        int(message["timestamp"]),
        {"Content-Type": "application/json", **headers},
        body,
    )

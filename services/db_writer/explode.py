"""Turn bodies -> events. Pure: bytes and headers in, events out; no I/O.

One body can hold several events (DESIGN.md "Event identity"): a webhook envelope's
`messages[]`, `statuses[]`, `contacts[]` (contact profiles) and `errors[]` items are each an
event; the `turn` subscription sends one bare outbound message; an export delivery holds one
export item (an inbound container, a bare outbound message, or a contact). Whatever we do not
recognise is kept as an `unknown` event keyed by its content, never dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import orjson

from shared import broker
from shared.errors import InvalidPayload
from shared.events import (
    EventType,
    Source,
    contact_key,
    contact_profile_key,
    fallback_key,
    message_key,
    status_key,
)
from shared.timestamps import epoch_time, iso_time

ENVELOPE_KEYS = frozenset({"messages", "statuses", "contacts", "errors"})


class MessageRow(NamedTuple):
    """A `messages` row, in the column order of store.MESSAGE_COLUMNS."""

    external_id: str
    business_number_id: str
    direction: str | None
    message_type: str | None
    from_addr: str | None
    to_addr: str | None
    contact_wa_id: str | None
    body: str | None
    sent_at: datetime | None
    turn_inserted_at: datetime | None
    turn_uuid: str | None
    chat_uuid: str | None
    contact_uuid: str | None
    author_type: str | None
    author_name: str | None
    in_reply_to: str | None
    last_status: str | None
    last_status_at: datetime | None
    source: str
    raw: str


class StatusRow(NamedTuple):
    message_external_id: str
    status: str
    business_number_id: str
    recipient_id: str | None
    status_at: datetime | None
    conversation_id: str | None
    conversation_origin: str | None
    pricing_category: str | None
    billable: bool | None
    errors: str | None
    raw: str


class ContactRow(NamedTuple):
    external_id: str
    business_number_id: str
    uuid: str | None
    whatsapp_id: str | None
    name: str | None
    surname: str | None
    whatsapp_profile_name: str | None
    language: str | None
    opted_in: bool | None
    opted_in_at: datetime | None
    turn_inserted_at: datetime | None
    turn_updated_at: datetime | None
    raw: str


@dataclass(frozen=True, slots=True)
class Origin:
    """What the broker message says about where a body came from."""

    source: str
    subscription: str | None
    delivery_id: str | None
    received_at: datetime
    business_number_id: str
    kind: str | None  # export items: message | contact
    whatsapp_id: str | None  # turn subscription: the id of the bare outbound copy

    @classmethod
    def from_headers(
        cls,
        headers: Mapping[str, Any],
        routing_key: str,
        *,
        business_number_id: str,
        now: datetime,
    ) -> Origin:
        source = _header(headers, broker.H_SOURCE)
        if source not in (Source.WEBHOOK, Source.EXPORT):
            source = Source.EXPORT if routing_key.startswith("export.") else Source.WEBHOOK
        kind = _header(headers, broker.H_KIND)
        if kind is None and routing_key == broker.ROUTE_EXPORT_CONTACT:
            kind = "contact"
        elif kind is None and routing_key == broker.ROUTE_EXPORT_MESSAGE:
            kind = "message"
        subscription = _header(headers, broker.H_SUBSCRIPTION)
        return cls(
            source=str(source),
            subscription=subscription.lower() if subscription else None,
            delivery_id=_header(headers, broker.H_DELIVERY_ID),
            received_at=iso_time(_header(headers, broker.H_RECEIVED_AT)) or now,
            business_number_id=_header(headers, broker.H_BUSINESS_NUMBER) or business_number_id,
            kind=kind,
            whatsapp_id=_header(headers, broker.H_WHATSAPP_ID),
        )


@dataclass(frozen=True, slots=True)
class Event:
    event_type: EventType
    key: str  # external_event_id
    origin: Origin
    payload: str  # the item's JSON
    source_ts: datetime | None
    updated_at: datetime | None = None  # contacts: Turn's updated_at (newest wins)
    message: MessageRow | None = None
    status: StatusRow | None = None
    contact: ContactRow | None = None


def explode(
    body: bytes,
    headers: Mapping[str, Any],
    routing_key: str,
    *,
    business_number_id: str,
    now: datetime,
) -> list[Event]:
    """Every event in one broker message. Raises InvalidPayload when the body is not JSON."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidPayload(f"invalid JSON: {exc}") from None
    origin = Origin.from_headers(
        headers, routing_key, business_number_id=business_number_id, now=now
    )
    if origin.kind == "contact":
        return [_contact(value, origin)]
    if isinstance(value, dict):
        if _is_bare_message(value, origin):
            return [_message(value, origin, in_envelope=False)]
        if ENVELOPE_KEYS & value.keys():
            return _envelope(value, origin) or [_unknown(value, origin)]
    return [_unknown(value, origin)]


def _is_bare_message(value: dict[str, Any], origin: Origin) -> bool:
    # A bare message of type "contacts" carries a `contacts` array of its own, so presence of
    # `_vnd` (or the `turn` subscription) decides, not the absence of every envelope key.
    if "messages" in value or "statuses" in value:
        return False
    if origin.subscription == "turn" or "_vnd" in value:
        return True
    return origin.kind == "message" and "id" in value and "type" in value


def _envelope(value: dict[str, Any], origin: Origin) -> list[Event]:
    events: list[Event] = []
    for name, items in value.items():
        if name not in ENVELOPE_KEYS or not isinstance(items, list):
            events.append(_unknown({name: items}, origin))
            continue
        for item in items:
            if name == "messages":
                events.append(_message(item, origin, in_envelope=True))
            elif name == "statuses":
                events.append(_status(item, origin))
            elif name == "contacts":
                events.append(_contact_profile(item, origin))
            else:
                events.append(_error(item, origin))
    return events


def _message(item: Any, origin: Origin, *, in_envelope: bool) -> Event:
    if not isinstance(item, dict):
        return _unknown(item, origin)
    external_id = _ident(item.get("id"))
    if external_id is None and not in_envelope:
        external_id = origin.whatsapp_id
    if external_id is None:
        return _unknown(item, origin)
    vnd = _dict(_dict(item.get("_vnd")).get("v1"))
    chat = _dict(vnd.get("chat"))
    author = _dict(vnd.get("author"))
    direction = _str(vnd.get("direction")) or ("inbound" if in_envelope else "outbound")
    message_type = _str(item.get("type"))
    from_addr, to_addr = _str(item.get("from")), _str(item.get("to"))
    sent_at = epoch_time(item.get("timestamp"))
    payload = _json(item)
    row = MessageRow(
        external_id=external_id,
        business_number_id=origin.business_number_id,
        direction=direction,
        message_type=message_type,
        from_addr=from_addr,
        to_addr=to_addr,
        contact_wa_id=from_addr if direction == "inbound" else to_addr,
        body=_text_of(item, message_type),
        sent_at=sent_at,
        turn_inserted_at=iso_time(vnd.get("inserted_at")),
        turn_uuid=_str(vnd.get("uuid")),
        chat_uuid=_str(chat.get("uuid")),
        contact_uuid=_str(chat.get("contact_uuid")),
        author_type=_str(author.get("type")),
        author_name=_str(author.get("name")),
        in_reply_to=_str(_dict(item.get("context")).get("id")),
        last_status=_str(vnd.get("last_status")),
        last_status_at=iso_time(vnd.get("last_status_timestamp")),
        source=origin.source,
        raw=payload,
    )
    return Event(EventType.MESSAGE, message_key(external_id), origin, payload, sent_at, message=row)


def _status(item: Any, origin: Origin) -> Event:
    if not isinstance(item, dict):
        return _unknown(item, origin)
    message_id, status = _ident(item.get("id")), _str(item.get("status"))
    if message_id is None or status is None:
        return _unknown(item, origin)
    conversation = _dict(item.get("conversation"))
    pricing = _dict(item.get("pricing"))
    billable = pricing.get("billable")
    errors = item.get("errors")
    # Current payloads put recipient_id at the top; an older form nests it under `message`.
    recipient = _str(item.get("recipient_id")) or _str(
        _dict(item.get("message")).get("recipient_id")
    )
    status_at = epoch_time(item.get("timestamp"))
    payload = _json(item)
    row = StatusRow(
        message_external_id=message_id,
        status=status,
        business_number_id=origin.business_number_id,
        recipient_id=recipient,
        status_at=status_at,
        conversation_id=_str(conversation.get("id")),
        conversation_origin=_str(_dict(conversation.get("origin")).get("type")),
        pricing_category=_str(pricing.get("category")),
        billable=billable if isinstance(billable, bool) else None,
        errors=_json(errors) if errors is not None else None,
        raw=payload,
    )
    return Event(
        EventType.STATUS, status_key(message_id, status), origin, payload, status_at, status=row
    )


def _contact_profile(item: Any, origin: Origin) -> Event:
    wa_id = _ident(item.get("wa_id")) if isinstance(item, dict) else None
    if wa_id is None:
        return _unknown(item, origin)
    key = contact_profile_key(wa_id, item.get("profile"))
    return Event(EventType.CONTACT_PROFILE, key, origin, _json(item), None)


def _contact(item: Any, origin: Origin) -> Event:
    contact_id = _ident(item.get("id")) if isinstance(item, dict) else None
    if contact_id is None:
        return _unknown(item, origin)
    details = _dict(item.get("details"))
    opted_in = details.get("opted_in")
    updated_at = iso_time(item.get("updated_at"))
    payload = _json(item)
    row = ContactRow(
        external_id=contact_key(contact_id),
        business_number_id=origin.business_number_id,
        uuid=_str(item.get("uuid")),
        whatsapp_id=_str(details.get("whatsapp_id")),
        name=_str(details.get("name")),
        surname=_str(details.get("surname")),
        whatsapp_profile_name=_str(details.get("whatsapp_profile_name")),
        language=_str(details.get("language")),
        opted_in=opted_in if isinstance(opted_in, bool) else None,
        opted_in_at=iso_time(details.get("opted_in_at")),
        turn_inserted_at=iso_time(item.get("inserted_at")),
        turn_updated_at=updated_at,
        raw=payload,
    )
    return Event(
        EventType.CONTACT,
        row.external_id,
        origin,
        payload,
        updated_at or row.turn_inserted_at,
        updated_at=updated_at,
        contact=row,
    )


def _error(item: Any, origin: Origin) -> Event:
    return Event(EventType.ERROR, fallback_key(item), origin, _json(item), None)


def _unknown(item: Any, origin: Origin) -> Event:
    return Event(EventType.UNKNOWN, fallback_key(item), origin, _json(item), None)


_TEXT_FIELDS = ("body", "caption", "text", "title", "emoji", "name")


def _text_of(item: dict[str, Any], message_type: str | None) -> str | None:
    """The human-readable text of a message: text body, caption, button or reply title."""
    content = _dict(item.get(message_type)) if message_type else {}
    if message_type == "interactive":
        for reply in ("button_reply", "list_reply"):
            title = _str(_dict(content.get(reply)).get("title"))
            if title is not None:
                return title
        return _str(_dict(content.get("body")).get("text"))
    for field in _TEXT_FIELDS:
        text = _str(content.get(field))
        if text is not None:
            return text
    return None


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value != "" else None


def _ident(value: Any) -> str | None:
    """An id: a non-empty string, or an integer (Turn's contact ids)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    return _str(value)


def _header(headers: Mapping[str, Any], name: str) -> str | None:
    value = headers.get(name)
    if isinstance(value, bytes | bytearray):
        value = bytes(value).decode("utf-8", "replace")
    return value if isinstance(value, str) and value != "" else None

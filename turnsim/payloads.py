"""Realistic Turn.io payload shapes, built from a seeded random source.

Shapes follow tests/fixtures/turn/ (and turn-api.md §2.4, §3.4, §3.5): inbound export items
are `{"contacts": [...], "messages": [msg]}` containers, outbound items bare message objects,
both carrying `_vnd.v1`; contacts carry an integer `id`, `uuid`, `details`, `inserted_at` and
`updated_at`. Pure functions: no clock, no I/O, so a seed always gives the same bytes.
"""

from __future__ import annotations

import base64
import random
from bisect import bisect
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import accumulate
from typing import Any

FIRST_NAMES = (
    "Thandi", "Sipho", "Lerato", "Bongani", "Nomsa", "Thabo", "Zanele", "Kagiso", "Ayanda",
    "Palesa", "Mandla", "Naledi", "Andile", "Refilwe", "Lwazi", "Busisiwe", "Tshepo", "Anele",
    "Karabo", "Nokuthula", "Pieter", "Annelie", "Fatima", "Yusuf", "Grace", "Chipo",
)  # fmt: skip
SURNAMES = (
    "Mokoena", "Dlamini", "Nkosi", "Khumalo", "Ndlovu", "Botha", "van Wyk", "Naidoo",
    "Mthembu", "Zulu", "Molefe", "Petersen", None, None, None,
)  # fmt: skip
LANGUAGES = ("zul", "xho", "eng", "afr", "sot", "tsn", None)
INBOUND_TEXTS = (
    "Hi", "Hello 👋", "When is my next clinic visit?", "YES", "no", "STOP", "Thank you!",
    "I missed my appointment, can I come tomorrow?", "Ngiyabonga", "Dankie",
    "What time does the clinic open on Saturday?", "1", "2", "menu",
    "My baby has a fever since last night, what should I do?", "ok 👍", "Sawubona",
    "Please call me back", "Where can I get the vaccine?", "Is the clinic open today?",
)  # fmt: skip
OUTBOUND_TEXTS = (
    "Your next visit is on {day} at 09:00.", "Thanks for your message. A nurse will reply soon.",
    "Reply 1 for appointments, 2 for health information, 3 to talk to someone.",
    "You are now subscribed to weekly messages. Reply STOP to unsubscribe.",
    "Remember to bring your clinic card.", "We have received your question 🙏",
    "Hi {name}, how are you feeling today?", "Your results are ready at the clinic.",
)  # fmt: skip
JOURNEYS = ("Clinic reminders", "Onboarding", "Vaccine FAQ", "Feedback survey")
OPERATORS = ("Nomsa (nurse)", "Pieter", "Helpdesk")
BUTTONS = (("yes", "Yes"), ("no", "No"), ("later", "Remind me later"), ("menu", "Main menu"))
EMOJI = ("👍", "❤️", "😂", "🙏", "😮")


def iso(epoch: float) -> str:
    """Turn's ISO-8601 form: UTC, microseconds, `Z` (as in `_vnd.v1.inserted_at`)."""
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="microseconds")[:-6] + "Z"


def new_uuid(rng: random.Random) -> str:
    """A version-4 UUID string (formatted by hand: generation speed matters at 100k items)."""
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


def wamid(rng: random.Random, wa_id: str, outbound: bool) -> str:
    """A WhatsApp id shaped like the real ones: base64 of a blob embedding the phone number."""
    serial = f"{rng.getrandbits(80):020X}".encode()
    raw = (
        b"\x1c\x18"
        + bytes([len(wa_id)])
        + wa_id.encode()
        + b"\x15\x02\x00"
        + (b"\x11" if outbound else b"\x12")
        + b"\x18\x14"
        + serial
        + b"\x00"
    )
    return "wamid." + base64.b64encode(raw).decode()


@dataclass(frozen=True)
class Person:
    """What a message needs to know about its contact."""

    contact_id: int
    contact_uuid: str
    wa_id: str
    profile_name: str
    chat_uuid: str
    chat_inserted_at: str


def contact(
    rng: random.Random, contact_id: int, wa_id: str, inserted: float, updated: float
) -> dict[str, Any]:
    name = rng.choice(FIRST_NAMES)
    surname = rng.choice(SURNAMES)
    opted_in = rng.random() < 0.8
    return {
        "details": {
            "birthday": None,
            "language": rng.choice(LANGUAGES),
            "location": None,
            "name": name if rng.random() < 0.7 else None,
            "opted_in": opted_in,
            "opted_in_at": iso(int(inserted) + 68) if opted_in else None,
            "surname": surname,
            "whatsapp_id": wa_id,
            "whatsapp_profile_name": f"{name} {surname[0]}" if surname else name,
        },
        "id": contact_id,
        "inserted_at": iso(inserted),
        "updated_at": iso(updated),
        "uuid": new_uuid(rng),
    }


def touched(rng: random.Random, item: dict[str, Any], updated: float) -> dict[str, Any]:
    """The same contact after an edit in Turn (a profile field changed, `updated_at` moved)."""
    details = dict(item["details"])
    field = rng.choice(("language", "name", "opted_in"))
    if field == "language":
        details["language"] = rng.choice(LANGUAGES)
    elif field == "name":
        details["name"] = rng.choice(FIRST_NAMES)
    else:
        details["opted_in"] = not details["opted_in"]
        details["opted_in_at"] = iso(int(updated)) if details["opted_in"] else None
    return {**item, "details": details, "updated_at": iso(updated)}


def _chat(rng: random.Random, person: Person, updated: float, unread: int) -> dict[str, Any]:
    return {
        "assigned_to": None
        if rng.random() < 0.85
        else {
            "id": "op-" + person.chat_uuid[:8],
            "name": rng.choice(OPERATORS),
            "type": "OPERATOR",
        },
        "contact_uuid": person.contact_uuid,
        "inserted_at": person.chat_inserted_at,
        "owner": "+" + person.wa_id,
        "permalink": f"https://whatsapp.turn.io/app/c/{person.chat_uuid}",
        "state": "OPEN" if unread or rng.random() < 0.6 else "CLOSED",
        "state_reason": "Re-opened by inbound message." if unread else None,
        "unread_count": unread,
        "updated_at": iso(updated),
        "uuid": person.chat_uuid,
    }


def _vnd(
    rng: random.Random,
    person: Person,
    *,
    direction: str,
    author: dict[str, Any],
    inserted: float,
    last_status: tuple[str, float] | None,
) -> dict[str, Any]:
    return {
        "v1": {
            "author": author,
            "card_uuid": None,
            "chat": _chat(rng, person, inserted + 0.02, 1 if direction == "inbound" else 0),
            "direction": direction,
            "faq_uuid": None,
            "in_reply_to": None,
            "inserted_at": iso(inserted),
            "labels": [] if rng.random() < 0.9 else [{"uuid": new_uuid(rng), "value": "question"}],
            "last_status": last_status[0] if last_status else None,
            "last_status_timestamp": iso(int(last_status[1])) if last_status else None,
            "on_fallback_channel": False,
            "rendered_content": None,
            "uuid": new_uuid(rng),
        }
    }


def _media(rng: random.Random, mime: str, caption: bool = False) -> dict[str, Any]:
    media: dict[str, Any] = {
        "id": new_uuid(rng),
        "mime_type": mime,
        "sha256": f"{rng.getrandbits(256):064x}",
    }
    if caption and rng.random() < 0.4:
        media["caption"] = rng.choice(INBOUND_TEXTS)
    return media


INBOUND_TYPES = (
    ("text", 70), ("image", 7), ("button", 5), ("interactive", 5), ("voice", 3), ("location", 2),
    ("document", 2), ("sticker", 1), ("video", 1), ("reaction", 1), ("audio", 1), ("contacts", 1),
    ("system", 0.5), ("unknown", 0.5),
)  # fmt: skip
OUTBOUND_TYPES = (("text", 75), ("template", 10), ("interactive", 8), ("image", 5), ("document", 2))


class _Table:
    """A weighted choice, its cumulative weights computed once."""

    def __init__(self, table: tuple[tuple[str, float], ...]) -> None:
        self.names = [name for name, _ in table]
        self.cumulative = list(accumulate(weight for _, weight in table))

    def pick(self, rng: random.Random) -> str:
        return self.names[bisect(self.cumulative, rng.random() * self.cumulative[-1])]


INBOUND_KINDS = _Table(INBOUND_TYPES)
OUTBOUND_KINDS = _Table(OUTBOUND_TYPES)


def inbound(
    rng: random.Random,
    person: Person,
    timestamp: int,
    business_number: str,
    replied_to: str | None,
) -> dict[str, Any]:
    """An inbound export item / `whatsapp` webhook body: a container holding one message."""
    kind = INBOUND_KINDS.pick(rng)
    message: dict[str, Any] = {
        "from": person.wa_id,
        "id": wamid(rng, person.wa_id, outbound=False),
        "timestamp": str(timestamp),
        "type": kind,
    }
    if kind == "text":
        message["text"] = {"body": rng.choice(INBOUND_TEXTS)}
    elif kind in ("image", "video", "document", "sticker", "voice", "audio"):
        mime = {
            "image": "image/jpeg",
            "video": "video/mp4",
            "document": "application/pdf",
            "sticker": "image/webp",
            "voice": "audio/ogg; codecs=opus",
            "audio": "audio/mpeg",
        }[kind]
        message[kind] = _media(rng, mime, caption=kind in ("image", "video", "document"))
        if kind == "document":
            message[kind]["filename"] = "clinic-card.pdf"
    elif kind == "location":
        message["location"] = {
            "latitude": round(-26.2 + rng.uniform(-3, 3), 6),
            "longitude": round(28.04 + rng.uniform(-3, 3), 6),
        }
    elif kind == "button":
        payload, text = rng.choice(BUTTONS)
        message["button"] = {"payload": payload, "text": text}
    elif kind == "interactive":
        reply_id, title = rng.choice(BUTTONS)
        if rng.random() < 0.7:
            message["interactive"] = {
                "button_reply": {"id": reply_id, "title": title},
                "type": "button_reply",
            }
        else:
            message["interactive"] = {
                "list_reply": {"description": title, "id": reply_id, "title": title},
                "type": "list_reply",
            }
    elif kind == "reaction":
        message["reaction"] = {"emoji": rng.choice(EMOJI), "message_id": replied_to or ""}
    elif kind == "contacts":
        message["contacts"] = [
            {
                "name": {"first_name": rng.choice(FIRST_NAMES), "formatted_name": "Clinic"},
                "phones": [{"phone": "+27 82 000 1234", "type": "CELL", "wa_id": "27820001234"}],
            }
        ]
    elif kind == "system":
        message["system"] = {
            "body": f"User {person.profile_name} changed from {person.wa_id} to a new number",
            "new_wa_id": "27" + str(rng.randrange(10**9, 10**10)),
            "type": "user_changed_number",
        }
    else:
        message["errors"] = [
            {
                "code": 501,
                "details": "Message type is not currently supported",
                "title": "Unknown message type",
            }
        ]
    if replied_to and kind in ("button", "interactive"):
        message["context"] = {"from": business_number, "id": replied_to}
    author = {"id": person.wa_id, "name": person.profile_name, "type": "OWNER"}
    message["_vnd"] = _vnd(
        rng,
        person,
        direction="inbound",
        author=author,
        inserted=timestamp + rng.random(),
        last_status=None,
    )
    if kind in ("system", "unknown") and rng.random() < 0.5:
        return {"messages": [message]}  # seen without a `contacts` array [OBS S19]
    return {
        "contacts": [{"profile": {"name": person.profile_name}, "wa_id": person.wa_id}],
        "messages": [message],
    }


def _author(rng: random.Random) -> dict[str, Any]:
    roll = rng.random()
    if roll < 0.5:
        return {
            "id": "d7c1e3a2-5f4b-4c6d-8e9f-0a1b2c3d4e5f",
            "name": "Ingestion backend token",
            "type": "SYSTEM",
        }
    if roll < 0.8:
        return {
            "block_id": f"block-{rng.randrange(1, 40)}",
            "block_is_ai": False,
            "id": new_uuid(rng),
            "journey_name": rng.choice(JOURNEYS),
            "journey_uuid": new_uuid(rng),
            "name": rng.choice(JOURNEYS),
            "request_id": f"{rng.getrandbits(96):024x}",
            "session_id": new_uuid(rng),
            "type": "STACK",
        }
    return {"id": new_uuid(rng), "name": rng.choice(OPERATORS), "type": "OPERATOR"}


def outbound(
    rng: random.Random,
    person: Person,
    timestamp: int,
    business_number: str,
    last_status: tuple[str, float] | None,
) -> dict[str, Any]:
    """An outbound export item / `turn` webhook body: a bare message object."""
    kind = OUTBOUND_KINDS.pick(rng)
    message: dict[str, Any] = {
        "from": business_number,
        "id": wamid(rng, person.wa_id, outbound=True),
        "preview_url": False,
        "recipient_type": "individual",
        "timestamp": str(timestamp),
        "to": person.wa_id,
        "type": kind,
    }
    if kind == "text":
        template = rng.choice(OUTBOUND_TEXTS)
        message["text"] = {"body": template.format(day="14 January", name=person.profile_name)}
    elif kind == "template":
        message["template"] = {
            "components": [
                {"parameters": [{"text": person.profile_name, "type": "text"}], "type": "body"}
            ],
            "language": {"code": "en", "policy": "deterministic"},
            "name": "appointment_reminder",
            "namespace": "f6c1b2a3_4d5e_6f70_8192_a3b4c5d6e7f8",
        }
    elif kind == "interactive":
        message["interactive"] = {
            "action": {
                "buttons": [
                    {"reply": {"id": reply_id, "title": title}, "type": "reply"}
                    for reply_id, title in BUTTONS[:3]
                ]
            },
            "body": {"text": "Will you come to your appointment?"},
            "type": "button",
        }
    elif kind == "image":
        message["image"] = {"caption": "Clinic opening hours", "id": new_uuid(rng)}
    else:
        message["document"] = {"filename": "results.pdf", "id": new_uuid(rng)}
    message["_vnd"] = _vnd(
        rng,
        person,
        direction="outbound",
        author=_author(rng),
        inserted=timestamp + rng.random(),
        last_status=last_status,
    )
    return message

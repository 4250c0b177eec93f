from datetime import UTC, datetime

import orjson
import pytest

from services.db_writer.explode import Event, explode
from shared import broker
from shared.errors import InvalidPayload
from shared.events import EventType, contact_profile_key, content_hash
from tests.conftest import BUSINESS_NUMBER
from tests.db_writer.conftest import example, webhook_headers

NOW = datetime(2025, 1, 2, tzinfo=UTC)
INBOUND_ID = "wamid.HBgLMjc4MjAwMDAwMDEVAgASGBQzRUIwMDAwMDAwMDAwMDAwMDAxAA=="
OUTBOUND_ID = "wamid.HBgLMjc4MjAwMDAwMDEVAgARGBI0QzAwMDAwMDAwMDAwMDAwMDEA"


def webhook(body: bytes, subscription: str = "whatsapp", whatsapp_id: str | None = None):
    return explode(
        body,
        webhook_headers(subscription, whatsapp_id),
        broker.webhook_route(subscription),
        business_number_id="fallback",
        now=NOW,
    )


def export(item, kind: str):
    route = broker.ROUTE_EXPORT_CONTACT if kind == "contact" else broker.ROUTE_EXPORT_MESSAGE
    headers = {broker.H_SOURCE: "export", broker.H_KIND: kind}
    return explode(orjson.dumps(item), headers, route, business_number_id="27600000000", now=NOW)


def keys(events: list[Event]) -> list[tuple[str, str]]:
    return [(e.event_type.value, e.key) for e in events]


def test_inbound_text_is_a_contact_profile_and_a_message():
    events = webhook(example("webhook_inbound_text.json"))
    profile = {"name": "Thandi M"}
    assert keys(events) == [
        ("contact_profile", contact_profile_key("27820000001", profile)),
        ("message", INBOUND_ID),
    ]
    message = events[1].message
    assert message is not None
    assert message.direction == "inbound"
    assert message.contact_wa_id == message.from_addr == "27820000001"
    assert message.body == "Hi, when is my next clinic visit?"
    assert message.sent_at == datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
    assert message.turn_inserted_at == datetime(2025, 1, 1, 12, 0, 0, 412345, tzinfo=UTC)
    assert message.chat_uuid == "5a8e2d71-3c9b-4f60-8e1d-7b2a9c4f0e13"
    assert message.author_type == "OWNER"
    assert message.business_number_id == BUSINESS_NUMBER  # from the header, not the fallback
    assert events[1].origin.source == "webhook"
    assert events[1].origin.subscription == "whatsapp"
    assert orjson.loads(events[1].payload)["id"] == INBOUND_ID  # the item, not the envelope


def test_turn_subscription_copy_is_one_outbound_message():
    body = example("webhook_outbound_turn_subscription.json")
    [event] = webhook(body, "turn", OUTBOUND_ID)
    assert (event.event_type, event.key) == (EventType.MESSAGE, OUTBOUND_ID)
    assert event.message is not None
    assert event.message.direction == "outbound"
    assert event.message.contact_wa_id == event.message.to_addr == "27820000001"
    assert event.message.author_name == "Ingestion backend token"
    assert orjson.loads(event.payload) == orjson.loads(body)


def test_turn_copy_without_id_takes_the_header():
    body = orjson.dumps({"to": "27820000001", "type": "text", "text": {"body": "hi"}})
    [event] = webhook(body, "turn", "wamid.FROM-HEADER")
    assert event.key == "wamid.FROM-HEADER"
    assert event.message is not None and event.message.body == "hi"


def test_delivered_status():
    [event] = webhook(example("webhook_status_delivered.json"))
    assert (event.event_type, event.key) == (EventType.STATUS, f"{OUTBOUND_ID}:delivered")
    status = event.status
    assert status is not None
    assert status.recipient_id == "27820000001"
    assert status.conversation_id == "b41c7e9d02a35f6e8c1d4a7b9e0f2c35"
    assert status.conversation_origin == "service"
    assert status.pricing_category == "service"
    assert status.billable is True
    assert status.status_at == datetime.fromtimestamp(1735732863, UTC)
    assert status.errors is None


def test_failed_status_keeps_its_errors():
    [event] = webhook(example("webhook_status_failed.json"))
    assert event.status is not None
    assert event.status.status == "failed"
    assert orjson.loads(event.status.errors or "null")[0]["code"] == 131026


def test_status_with_the_older_nested_recipient():
    body = {"statuses": [{"id": "m1", "status": "read", "message": {"recipient_id": "2782"}}]}
    [event] = webhook(orjson.dumps(body))
    assert event.status is not None and event.status.recipient_id == "2782"


def test_export_messages_page_items():
    page = orjson.loads(example("export_messages_page.json"))
    inbound, outbound = page["data"]
    events = export(inbound, "message")
    assert [e.event_type for e in events] == [EventType.CONTACT_PROFILE, EventType.MESSAGE]
    assert events[1].key == INBOUND_ID and events[1].origin.source == "export"
    [event] = export(outbound, "message")
    assert event.key == OUTBOUND_ID
    assert event.message is not None
    assert event.message.direction == "outbound"
    assert event.message.last_status == "read"
    assert event.message.last_status_at == datetime(2025, 1, 1, 12, 5, 41, tzinfo=UTC)


def test_export_contacts_page_items():
    page = orjson.loads(example("export_contacts_page.json"))
    first, second = (export(item, "contact") for item in page["data"])
    [thandi], [sipho] = first, second
    assert (thandi.event_type, thandi.key) == (EventType.CONTACT, "1048577")
    contact = thandi.contact
    assert contact is not None
    assert contact.whatsapp_id == "27820000001"
    assert contact.language == "zul"
    assert contact.opted_in is True
    assert contact.turn_updated_at == datetime(2025, 1, 1, 12, 0, 0, 450012, tzinfo=UTC)
    assert thandi.updated_at == contact.turn_updated_at
    assert sipho.contact is not None and sipho.contact.name is None
    assert sipho.contact.opted_in is False


def test_several_items_in_one_body_each_become_an_event():
    body = {
        "contacts": [{"wa_id": "1", "profile": {"name": "A"}}, {"wa_id": "2", "profile": {}}],
        "messages": [
            {"id": "m1", "from": "1", "type": "text", "text": {"body": "a"}, "timestamp": "1"},
            {"id": "m2", "from": "2", "type": "image", "image": {"caption": "pic"}},
        ],
        "statuses": [{"id": "m0", "status": "sent"}, {"id": "m0", "status": "read"}],
        "errors": [{"code": 1, "title": "x"}],
        "brand_new": {"x": 1},
    }
    events = webhook(orjson.dumps(body))
    assert sorted(keys(events)) == sorted(
        [
            ("contact_profile", contact_profile_key("1", {"name": "A"})),
            ("contact_profile", contact_profile_key("2", {})),
            ("message", "m1"),
            ("message", "m2"),
            ("status", "m0:sent"),
            ("status", "m0:read"),
            ("error", content_hash({"code": 1, "title": "x"})),
            ("unknown", content_hash({"brand_new": {"x": 1}})),
        ]
    )
    m2 = next(e for e in events if e.key == "m2")
    assert m2.message is not None and m2.message.body == "pic"


@pytest.mark.parametrize(
    "value",
    [{}, [], [1, 2], 42, "text", None, {"something": "else"}, {"messages": "not a list"}],
)
def test_odd_shapes_are_kept_as_unknown_events_keyed_by_content(value):
    events = webhook(orjson.dumps(value))
    assert len(events) == 1
    [event] = events
    assert event.event_type == EventType.UNKNOWN
    assert event.key == content_hash(value)
    assert orjson.loads(event.payload) == value


def test_an_envelope_with_empty_arrays_is_still_kept():
    [event] = webhook(b'{"messages": [], "statuses": []}')
    assert event.event_type == EventType.UNKNOWN


def test_items_without_an_id_are_unknown_not_dropped():
    body = {"messages": [{"type": "text"}, "scalar"], "statuses": [{"id": "x"}]}
    events = webhook(orjson.dumps(body))
    assert [e.event_type for e in events] == [EventType.UNKNOWN] * 3
    assert len({e.key for e in events}) == 3


def test_a_contact_without_id_is_unknown():
    [event] = export({"details": {}}, "contact")
    assert event.event_type == EventType.UNKNOWN


def test_a_bare_contacts_type_message_is_not_an_envelope():
    body = {
        "_vnd": {"v1": {"direction": "outbound"}},
        "id": "m9",
        "type": "contacts",
        "contacts": [{"name": {"formatted_name": "X"}}],
        "to": "2782",
    }
    [event] = webhook(orjson.dumps(body), "turn")
    assert (event.event_type, event.key) == (EventType.MESSAGE, "m9")


def test_invalid_json_is_poison():
    with pytest.raises(InvalidPayload, match="invalid JSON"):
        webhook(b'{"messages": [')
    with pytest.raises(InvalidPayload):
        webhook(b"\xff\xfe")


def test_a_nul_character_survives_explode_for_the_database_to_refuse():
    [event] = webhook(b'{"messages":[{"id":"m","type":"text","text":{"body":"a\\u0000b"}}]}')
    assert event.message is not None and event.message.body == "a\x00b"
    assert "\\u0000" in event.payload


def test_received_at_comes_from_the_header_else_now():
    [with_header] = webhook(example("webhook_status_failed.json"))
    assert with_header.origin.received_at != NOW
    [without] = explode(b"{}", {}, "webhook.other", business_number_id="n", now=NOW)
    assert without.origin.received_at == NOW
    assert without.origin.business_number_id == "n"
    assert without.origin.source == "webhook"

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from tests.conftest import EXAMPLES
from tests.turnsim.conftest import item_id
from turnsim.dataset import DEFAULT_END, DEFAULT_START, Dataset, DatasetSpec
from turnsim.index import LateModel

EXAMPLE_MESSAGES = json.loads((EXAMPLES / "export_messages_page.json").read_text())["data"]
EXAMPLE_CONTACT = json.loads((EXAMPLES / "export_contacts_page.json").read_text())["data"][0]


def all_messages(data: Dataset) -> list[dict[str, Any]]:
    return data.messages_between(DEFAULT_START, DEFAULT_END + timedelta(days=1))


def test_a_seed_gives_the_same_items_byte_for_byte_and_another_seed_does_not():
    spec = DatasetSpec(seed=3, messages=300, contacts=40)
    first, again = Dataset.generate(spec), Dataset.generate(spec)
    other = Dataset.generate(DatasetSpec(seed=4, messages=300, contacts=40))
    assert all_messages(first) == all_messages(again)
    assert first.contact_versions() == again.contact_versions()
    assert first.webhook_deliveries() == again.webhook_deliveries()
    assert first.message_ids() != other.message_ids()


def test_counts_ids_and_window_follow_the_spec():
    spec = DatasetSpec(seed=5, messages=2000, contacts=100, inbound_share=0.3)
    data = Dataset.generate(spec)
    items = all_messages(data)
    assert len(items) == len(data.message_ids()) == 2000
    assert {item_id(item) for item in items} == data.message_ids()
    assert len(data.contact_ids()) == 100
    inbound = sum("messages" in item for item in items)
    assert 0.25 < inbound / 2000 < 0.35
    stamps = [int(_message(item)["timestamp"]) for item in items]
    assert stamps == sorted(stamps)
    assert DEFAULT_START.timestamp() <= stamps[0] and stamps[-1] < DEFAULT_END.timestamp()
    assert all(data_id.startswith("wamid.") for data_id in data.message_ids())


def _message(item: dict[str, Any]) -> dict[str, Any]:
    return item["messages"][0] if "messages" in item else item


def _shape(value: object) -> object:
    """Nested key sets of a JSON value (types of leaves ignored)."""
    if isinstance(value, dict):
        return {key: _shape(inner) for key, inner in value.items()}
    return None


def test_items_have_the_shapes_of_the_examples():
    data = Dataset.generate(DatasetSpec(seed=1, messages=400, contacts=30))
    items = all_messages(data)
    inbound_text = next(
        i for i in items if "messages" in i and "contacts" in i and _message(i)["type"] == "text"
    )
    outbound_text = next(i for i in items if "messages" not in i and i["type"] == "text")
    example_in, example_out = EXAMPLE_MESSAGES
    assert set(inbound_text) == set(example_in)
    assert set(_message(inbound_text)) == set(_message(example_in))
    vnd_keys = set(example_in["messages"][0]["_vnd"]["v1"])
    assert set(_message(inbound_text)["_vnd"]["v1"]) == vnd_keys
    assert set(outbound_text) == set(example_out)
    assert set(outbound_text["_vnd"]["v1"]) == set(example_out["_vnd"]["v1"])
    assert set(outbound_text["_vnd"]["v1"]["chat"]) == set(example_out["_vnd"]["v1"]["chat"])
    contact = data.contacts_between(DEFAULT_START, DEFAULT_END)[0]
    assert _shape(contact) == _shape(EXAMPLE_CONTACT)
    assert isinstance(contact["id"], int)
    kinds = {_message(item)["type"] for item in items}
    assert {"text", "image", "button", "interactive", "template"} <= kinds


def test_outbound_messages_carry_their_furthest_status_and_deliveries_carry_each():
    data = Dataset.generate(DatasetSpec(seed=2, messages=500, contacts=50))
    outbound = [i for i in all_messages(data) if "messages" not in i]
    statuses = {i["_vnd"]["v1"]["last_status"] for i in outbound}
    assert {"sent", "delivered", "read"} <= statuses
    deliveries = data.webhook_deliveries()
    by_kind = {
        kind: [d for d in deliveries if d.kind == kind]
        for kind in ("inbound", "outbound", "status")
    }
    assert len(by_kind["inbound"]) + len(by_kind["outbound"]) == 500
    assert {d.event_id for d in by_kind["status"]} == data.status_keys()
    copy = by_kind["outbound"][0]
    assert copy.headers["X-Turn-Hook-Subscription"] == "turn"
    assert copy.headers["X-WhatsApp-Id"] == copy.event_id
    assert orjson.loads(copy.body)["_vnd"]["v1"]["last_status"] is None
    status = orjson.loads(by_kind["status"][0].body)["statuses"][0]
    assert by_kind["status"][0].event_id == f"{status['id']}:{status['status']}"
    assert by_kind["inbound"][0].headers["X-Turn-Hook-Subscription"] == "whatsapp"
    read = next(i for i in outbound if i["_vnd"]["v1"]["last_status"] == "read")
    assert {f"{read['id']}:{s}" for s in ("sent", "delivered", "read")} <= data.status_keys()


def test_a_share_of_deliveries_is_a_stable_subset():
    data = Dataset.generate(DatasetSpec(seed=2, messages=500, contacts=50))
    everything = {d.event_id for d in data.webhook_deliveries()}
    half = {d.event_id for d in data.webhook_deliveries(share=0.5, seed=9)}
    inbound_half = {
        d.event_id for d in data.webhook_deliveries(kinds=["inbound"], share=0.5, seed=9)
    }
    assert 0.4 < len(half) / len(everything) < 0.6
    assert inbound_half <= half


def test_contacts_are_filtered_on_updated_at_and_a_touch_moves_them():
    data = Dataset.generate(DatasetSpec(seed=1, messages=10, contacts=20))
    before = data.contact_versions()
    contacts = data.contacts_between(DEFAULT_START, DEFAULT_END)
    assert len(contacts) == 20
    assert [c["updated_at"] for c in contacts] == sorted(c["updated_at"] for c in contacts)
    touched_at = datetime(2025, 3, 1, 12, 0, 0, 250000, tzinfo=UTC)
    item = data.touch_contact(contacts[0]["id"], touched_at)
    assert item["updated_at"] == "2025-03-01T12:00:00.250000Z"
    assert data.contact_versions() == {**before, str(contacts[0]["id"]): item["updated_at"]}
    assert len(data.contacts_between(DEFAULT_START, DEFAULT_END)) == 19
    later = data.contacts_between(touched_at, touched_at + timedelta(seconds=1))
    assert later == [item]


def test_added_messages_are_visible_from_when_they_were_added():
    data = Dataset.generate(DatasetSpec(seed=1, messages=10, contacts=5))
    now = time.time()
    item = data.add_message(at=now - 100, now=now)
    window = (datetime.fromtimestamp(now - 200, UTC), datetime.fromtimestamp(now, UTC))
    assert data.messages_between(*window, now=now - 1) == []
    assert data.messages_between(*window, now=now) == [item]
    assert item_id(item) in data.message_ids()


def test_additions_from_many_threads_are_all_kept():
    data = Dataset.generate(DatasetSpec(seed=1, messages=0, contacts=5))

    def add() -> None:
        for _ in range(200):
            data.add_message()

    threads = [threading.Thread(target=add) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(data.message_ids()) == 800
    assert len(data.messages_between(DEFAULT_START, datetime.now(UTC) + timedelta(1))) == 800


def test_late_items_are_hidden_until_their_delay_has_passed():
    data = Dataset.generate(DatasetSpec(seed=1, messages=1000, contacts=20))
    switched_on = time.time()
    data.set_late(LateModel(share=0.2, delay=30.0, since=switched_on))
    early = all_messages(data)  # read now: late items missing
    assert 0.15 < 1 - len(early) / 1000 < 0.25
    window = (DEFAULT_START, DEFAULT_END + timedelta(days=1))
    assert len(data.messages_between(*window, now=switched_on + 30)) == 1000


def test_generating_a_large_data_set_is_quick():
    started = time.perf_counter()
    data = Dataset.generate(DatasetSpec(seed=1, messages=20_000, contacts=2000))
    assert time.perf_counter() - started < 10.0  # ~0.5 s here; 100k take ~2.5 s
    assert len(data.message_ids()) == 20_000

"""The writer end to end: bodies published to RabbitMQ as the gateway and pullers do, rows in
PostgreSQL, dead letters in turnio.dead."""

import orjson

from services.db_writer.app import Writer
from shared import broker
from shared.broker import Topology
from tests.db_writer.conftest import Feed, count, dead_letters, example, started
from tests.waiting import eventually

INBOUND_ID = "wamid.HBgLMjc4MjAwMDAwMDEVAgASGBQzRUIwMDAwMDAwMDAwMDAwMDAxAA=="
OUTBOUND_ID = "wamid.HBgLMjc4MjAwMDAwMDEVAgARGBI0QzAwMDAwMDAwMDAwMDAwMDEA"
FAILED_ID = "wamid.HBgLMjc4MjAwMDAwMDIVAgARGBI0QzAwMDAwMDAwMDAwMDAwMDIA"


async def rows(db, table: str) -> int:
    return await count(db, f"SELECT count(*) FROM {table}")


async def settled(writer: Writer, n: int) -> None:
    await eventually(
        lambda: _acked(writer), until=lambda acked: acked >= n, timeout=20, what=f"{n} acks"
    )


async def _acked(writer: Writer) -> int:
    return writer.acked


async def test_every_example_file_lands(writer, feed: Feed, db):
    await feed.webhook(example("webhook_inbound_text.json"))
    await feed.webhook(example("webhook_outbound_turn_subscription.json"), "turn", OUTBOUND_ID)
    await feed.webhook(example("webhook_status_delivered.json"))
    await feed.webhook(example("webhook_status_failed.json"))
    for item in orjson.loads(example("export_messages_page.json"))["data"]:
        await feed.export(item, "message")
    for item in orjson.loads(example("export_contacts_page.json"))["data"]:
        await feed.export(item, "contact")
    await settled(writer, 8)

    events = await db.fetch(
        "SELECT event_type, count(*) AS n FROM webhook_events GROUP BY 1 ORDER BY 1"
    )
    assert {r["event_type"]: r["n"] for r in events} == {
        "contact": 2,
        "contact_profile": 1,
        "message": 2,
        "status": 2,
    }
    messages = {r["external_id"]: r for r in await db.fetch("SELECT * FROM messages")}
    assert set(messages) == {INBOUND_ID, OUTBOUND_ID}
    assert messages[INBOUND_ID]["direction"] == "inbound"
    assert messages[INBOUND_ID]["body"] == "Hi, when is my next clinic visit?"
    assert messages[OUTBOUND_ID]["direction"] == "outbound"
    assert messages[OUTBOUND_ID]["last_status"] == "read"  # filled in by the export copy
    statuses = await db.fetch("SELECT message_external_id, status FROM statuses ORDER BY 2")
    assert [tuple(r) for r in statuses] == [(OUTBOUND_ID, "delivered"), (FAILED_ID, "failed")]
    contacts = await db.fetch("SELECT external_id, language FROM contacts ORDER BY 1")
    assert [tuple(r) for r in contacts] == [("1048577", "zul"), ("1048578", None)]
    payload = await db.fetchval(
        "SELECT payload->>'id' FROM webhook_events WHERE event_type = 'message' "
        "AND external_event_id = $1",
        INBOUND_ID,
    )
    assert payload == INBOUND_ID  # the item, not the envelope
    assert await vhost_empty(writer)


async def vhost_empty(writer: Writer) -> bool:
    return len(writer.batcher) == 0


async def test_the_same_body_five_times_is_one_row_per_event(writer, feed: Feed, db):
    body = example("webhook_inbound_text.json")
    for _ in range(5):
        await feed.webhook(body)
    await settled(writer, 5)
    assert await rows(db, "webhook_events") == 2
    assert await rows(db, "messages") == 1


async def test_sent_delivered_read_are_three_rows_and_a_status_may_come_first(
    writer, feed: Feed, db
):
    for status in ("read", "sent", "delivered"):
        body = {"statuses": [{"id": "wamid.X", "status": status, "timestamp": "1735732900"}]}
        await feed.webhook(orjson.dumps(body))
    await settled(writer, 3)
    assert await rows(db, "statuses") == 3
    assert await rows(db, "messages") == 0  # the message itself is not known yet

    message = {"id": "wamid.X", "to": "2782", "type": "text", "text": {"body": "hello"}}
    await feed.webhook(orjson.dumps(message), "turn", "wamid.X")
    await settled(writer, 4)
    joined = await count(
        db,
        "SELECT count(*) FROM statuses s JOIN messages m ON m.external_id = s.message_external_id",
    )
    assert joined == 3


async def test_several_items_in_one_body(writer, feed: Feed, db):
    body = {
        "contacts": [{"wa_id": "1", "profile": {"name": "A"}}],
        "messages": [
            {"id": "m1", "from": "1", "type": "text", "text": {"body": "a"}},
            {"id": "m2", "from": "1", "type": "text", "text": {"body": "b"}},
            {"id": "m1", "from": "1", "type": "text", "text": {"body": "a"}},  # repeated inside
        ],
        "statuses": [{"id": "m0", "status": "sent"}],
        "errors": [{"code": 500, "title": "boom"}],
        "surprise": True,
    }
    await feed.webhook(orjson.dumps(body))
    await settled(writer, 1)
    types = await db.fetch("SELECT event_type, count(*) FROM webhook_events GROUP BY 1")
    assert dict((r[0], r[1]) for r in types) == {
        "contact_profile": 1,
        "message": 2,
        "status": 1,
        "error": 1,
        "unknown": 1,
    }
    assert await rows(db, "messages") == 2


async def test_a_refused_item_is_dead_lettered_and_the_rest_of_its_batch_commits(
    writer_env, feed: Feed, db, amqp_url
):
    bad_body = (
        b'{"messages":['
        b'{"id":"good-1","from":"1","type":"text","text":{"body":"fine"}},'
        b'{"id":"bad-1","from":"1","type":"text","text":{"body":"nul \\u0000 here"}}'
        b"]}"
    )
    headers_marker = "bad-body"
    await feed.publisher.publish(
        bad_body,
        "webhook.whatsapp",
        {broker.H_SOURCE: "webhook", broker.H_DELIVERY_ID: headers_marker},
    )
    for i in range(20):
        await feed.webhook(orjson.dumps({"messages": [{"id": f"other-{i}", "type": "text"}]}))
    # Published before the writer starts: all 21 bodies arrive in one batch.
    writer = await started({**writer_env, "WRITER_BATCH_MAX_AGE": "0.5"})
    try:
        await settled(writer, 21)
    finally:
        await writer.stop()

    stored = {r[0] for r in await db.fetch("SELECT external_id FROM messages")}
    assert stored == {"good-1"} | {f"other-{i}" for i in range(20)}
    [dead] = await dead_letters(amqp_url)
    assert dead.body == bad_body
    headers = dead.headers or {}
    assert headers[broker.H_DELIVERY_ID] == headers_marker  # the original headers kept
    assert "bad-1" in str(headers[broker.H_ERROR])
    assert "22P05" in str(headers[broker.H_ERROR])  # jsonb: unsupported Unicode escape
    assert headers[broker.H_ORIGINAL_ROUTING_KEY] == "webhook.whatsapp"
    assert headers[broker.H_ERROR_AT]


async def test_invalid_json_is_dead_lettered_with_its_reason(writer, feed: Feed, db, amqp_url):
    await feed.webhook(b'{"messages": [ not json')
    await feed.webhook(example("webhook_status_failed.json"))
    await settled(writer, 2)
    [dead] = await dead_letters(amqp_url)
    assert dead.body == b'{"messages": [ not json'
    assert "invalid JSON" in str((dead.headers or {})[broker.H_ERROR])
    assert await rows(db, "statuses") == 1


async def test_webhook_then_export_copy_is_one_message_row(writer, feed: Feed, db):
    await feed.webhook(example("webhook_outbound_turn_subscription.json"), "turn", OUTBOUND_ID)
    await settled(writer, 1)
    before = await db.fetchrow("SELECT * FROM messages")
    assert before["last_status"] is None and before["source"] == "webhook"

    outbound = orjson.loads(example("export_messages_page.json"))["data"][1]
    await feed.export(outbound, "message")
    await feed.export(outbound, "message")
    await settled(writer, 3)
    after = await db.fetch("SELECT * FROM messages")
    assert len(after) == 1
    assert after[0]["id"] == before["id"]
    assert after[0]["last_status"] == "read"
    assert after[0]["last_status_at"] is not None
    assert after[0]["source"] == "webhook"  # the first source that brought it
    assert await rows(db, "webhook_events") == 1


def contact(updated_at: str, name: str) -> dict[str, object]:
    return {
        "id": 42,
        "uuid": "u-42",
        "inserted_at": "2024-01-01T00:00:00Z",
        "updated_at": updated_at,
        "details": {"name": name, "whatsapp_id": "2782"},
    }


OLD = contact("2025-01-01T00:00:00.000001Z", "old")
NEW = contact("2025-01-02T00:00:00Z", "new")


async def stored_contact(db) -> tuple[str, str]:
    name = await db.fetchval("SELECT name FROM contacts WHERE external_id = '42'")
    payload = await db.fetchval(
        "SELECT payload->'details'->>'name' FROM webhook_events "
        "WHERE event_type = 'contact' AND external_event_id = '42'"
    )
    return name, payload


async def test_contacts_newest_wins_old_after_new(writer, feed: Feed, db):
    await feed.export(NEW, "contact")
    await settled(writer, 1)
    await feed.export(OLD, "contact")
    await settled(writer, 2)
    assert await stored_contact(db) == ("new", "new")


async def test_contacts_newest_wins_new_after_old_resets_processed(writer, feed: Feed, db):
    await feed.export(OLD, "contact")
    await settled(writer, 1)
    await db.execute("UPDATE webhook_events SET processed = true")
    await feed.export(NEW, "contact")
    await settled(writer, 2)
    assert await stored_contact(db) == ("new", "new")
    assert await db.fetchval("SELECT processed FROM webhook_events") is False


async def test_contacts_equal_timestamp_writes_nothing(writer, feed: Feed, db):
    await feed.export(NEW, "contact")
    await settled(writer, 1)
    await db.execute("UPDATE webhook_events SET processed = true")
    stamp = await db.fetchval("SELECT updated_at FROM contacts")
    await feed.export({**NEW, "details": {"name": "same time"}}, "contact")
    await settled(writer, 2)
    assert await stored_contact(db) == ("new", "new")
    assert await db.fetchval("SELECT updated_at FROM contacts") == stamp
    assert await db.fetchval("SELECT processed FROM webhook_events") is True


async def test_contacts_newest_wins_in_one_batch_too(writer_env, feed: Feed, db):
    await feed.export(NEW, "contact")
    await feed.export(OLD, "contact")
    writer = await started({**writer_env, "WRITER_BATCH_MAX_AGE": "0.5"})
    try:
        await settled(writer, 2)
    finally:
        await writer.stop()
    assert await stored_contact(db) == ("new", "new")


async def test_two_writers_with_old_and_new_versions_in_either_order_end_newest(
    writer_env, feed: Feed, db, amqp_url
):
    first = await started(writer_env)
    second = await started({**writer_env, "PORT": "0"})
    try:
        # Every contact in 14 versions, newest and oldest interleaved, so each writer's
        # batches hold old and new copies and commit in whatever order they race to.
        order = [day for pair in zip(range(1, 8), range(14, 7, -1), strict=True) for day in pair]
        for day in order + order[::-1]:
            for contact_id in range(100, 104):
                version = contact(f"2025-01-{day:02d}T00:00:00Z", f"v{day}")
                await feed.export({**version, "id": contact_id}, "contact")
        await eventually(
            lambda: _total_acked(first, second),
            until=lambda n: n >= 112,
            timeout=30,
            what="both writers acked everything",
        )
        assert first.acked > 0 and second.acked > 0
    finally:
        await first.stop()
        await second.stop()
    newest = await db.fetch("SELECT external_id, name FROM contacts ORDER BY 1")
    assert [tuple(r) for r in newest] == [(str(k), "v14") for k in range(100, 104)]


async def _total_acked(*writers: Writer) -> int:
    return sum(w.acked for w in writers)


async def test_probes(writer, writer_env):
    import httpx

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{writer_env['PORT']}") as client:
        assert (await client.get("/health")).status_code == 200
        ready = await client.get("/ready")
        assert ready.status_code == 200
        assert ready.json()["checks"] == {"database": True, "consuming": True}
        text = (await client.get("/metrics")).text
        assert "turnio_writer_flush_seconds" in text
        assert "turnio_writer_rows_total" in text


async def test_topology_is_declared_by_the_writer(writer, vhost):
    topology = Topology()
    assert await vhost.depth(topology.dead_queue) == 0
    assert await vhost.depth(topology.export_contact_queue) == 0

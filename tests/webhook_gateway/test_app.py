import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from prometheus_client import REGISTRY

from services.webhook_gateway.app import WEBHOOK_PATH, DeliveryIds, create_app
from services.webhook_gateway.signature import sign
from shared.broker import (
    H_BUSINESS_NUMBER,
    H_DELIVERY_ID,
    H_RECEIVED_AT,
    H_SOURCE,
    H_SUBSCRIPTION,
    H_WHATSAPP_ID,
)
from tests.conftest import BUSINESS_NUMBER
from tests.servers import free_port
from tests.webhook_gateway.conftest import (
    WEBHOOK_EXAMPLES,
    drain,
    gateway_settings,
    serving,
    signed,
)


def sample(name: str) -> float:
    return REGISTRY.get_sample_value(name.split("{")[0], _labels(name)) or 0.0


def _labels(name: str) -> dict[str, str]:
    if "{" not in name:
        return {}
    inner = name.split("{", 1)[1].rstrip("}")
    return dict(part.split("=") for part in inner.split(","))


def requests_total(outcome: str) -> float:
    return sample(f"turnio_gateway_requests_total{{outcome={outcome}}}")


def signature_failures(reason: str) -> float:
    return sample(f"turnio_gateway_signature_failures_total{{reason={reason}}}")


async def test_every_example_lands_byte_for_byte_with_its_headers(client, amqp_url):
    sent = []
    for path in WEBHOOK_EXAMPLES:
        body = path.read_bytes()
        subscription = "turn" if "turn_subscription" in path.name else "whatsapp"
        extra = {"X-WhatsApp-Id": f"wamid.{path.stem}"} if subscription == "turn" else {}
        response = await client.post(
            WEBHOOK_PATH, content=body, headers=signed(body, subscription, **extra)
        )
        assert response.status_code == 200, response.text
        sent.append((body, subscription, extra))

    published = await drain(amqp_url)
    assert len(published) == len(sent) == len(WEBHOOK_EXAMPLES)
    delivery_ids = set()
    for (body, subscription, extra), message in zip(sent, published, strict=True):
        assert message.body == body  # never re-serialised
        assert message.routing_key == f"webhook.{subscription}"
        assert message.persistent
        headers = message.headers
        assert headers[H_SOURCE] == "webhook"
        assert headers[H_SUBSCRIPTION] == subscription
        assert headers[H_BUSINESS_NUMBER] == BUSINESS_NUMBER
        assert str(headers[H_RECEIVED_AT]).endswith("Z")
        assert headers[H_DELIVERY_ID] == message.message_id
        delivery_ids.add(message.message_id)
        if extra:
            assert headers[H_WHATSAPP_ID] == extra["X-WhatsApp-Id"]
        else:
            assert H_WHATSAPP_ID not in headers
    assert len(delivery_ids) == len(sent)


async def test_turn_event_and_fallback_headers_are_passed_on(client, amqp_url):
    body = b'{"statuses": []}'
    headers = signed(body, **{"X-Turn-Event": "1", "X-Turn-Fallback-Channel": "1"})
    assert (await client.post(WEBHOOK_PATH, content=body, headers=headers)).status_code == 200
    [message] = await drain(amqp_url)
    assert message.headers["x-turn-event"] == "1"
    assert message.headers["x-turn-fallback-channel"] == "1"


async def test_unknown_or_missing_subscription_still_lands(client, amqp_url):
    body = b'{"x": 1}'
    headers = signed(body, "brand_new_kind")
    assert (await client.post(WEBHOOK_PATH, content=body, headers=headers)).status_code == 200
    del headers["X-Turn-Hook-Subscription"]
    assert (await client.post(WEBHOOK_PATH, content=body, headers=headers)).status_code == 200
    first, second = await drain(amqp_url)
    assert (first.routing_key, first.headers[H_SUBSCRIPTION]) == ("webhook.other", "brand_new_kind")
    assert (second.routing_key, second.headers[H_SUBSCRIPTION]) == ("webhook.other", "")


@pytest.mark.parametrize("body", [b"{not json", b"", b"\x00\xff\xfe", b'{"a": "\\u0000"}'])
async def test_signed_garbage_is_accepted_and_published_untouched(client, amqp_url, body):
    response = await client.post(WEBHOOK_PATH, content=body, headers=signed(body))
    assert response.status_code == 200
    [message] = await drain(amqp_url)
    assert message.body == body


async def test_unsigned_is_refused_counted_and_not_published(client, amqp_url):
    body = (WEBHOOK_EXAMPLES[0]).read_bytes()
    before = (requests_total("unauthorized"), signature_failures("missing"))
    response = await client.post(
        WEBHOOK_PATH, content=body, headers={"X-Turn-Hook-Subscription": "whatsapp"}
    )
    assert response.status_code == 401
    assert (requests_total("unauthorized"), signature_failures("missing")) == (
        before[0] + 1,
        before[1] + 1,
    )
    assert await drain(amqp_url) == []


async def test_wrong_signature_is_refused_and_logged_without_body_or_secret(
    client, amqp_url, caplog
):
    body = b'{"messages": [{"id": "wamid.PRIVATE-CONTENT"}]}'
    headers = signed(b"another body")
    before = signature_failures("mismatch")
    response = await client.post(WEBHOOK_PATH, content=body, headers=headers)
    assert response.status_code == 401
    assert signature_failures("mismatch") == before + 1
    assert await drain(amqp_url) == []
    refused = [r for r in caplog.records if "signature" in r.getMessage()]
    assert refused, "a refused webhook is logged"
    text = " ".join(f"{r.getMessage()} {vars(r)}" for r in refused)
    assert "PRIVATE-CONTENT" not in text
    assert "test-webhook-secret" not in text
    assert headers["X-Turn-Hook-Signature"] not in text


async def test_a_flood_of_forgeries_is_all_counted_but_logged_once(client, amqp_url, caplog):
    before = signature_failures("mismatch")
    for n in range(30):
        response = await client.post(
            WEBHOOK_PATH, content=b"{}", headers={"X-Turn-Hook-Signature": f"forged{n}"}
        )
        assert response.status_code == 401
    assert signature_failures("mismatch") == before + 30
    refused = [r for r in caplog.records if "signature" in r.getMessage()]
    assert len(refused) == 1, "one line per interval, not one per forged request"


async def test_body_over_the_limit_by_content_length_is_refused_at_once(client, amqp_url):
    body = b"x" * 4097  # the fixture's limit is 4096
    before = requests_total("too_large")
    response = await client.post(WEBHOOK_PATH, content=body, headers=signed(body))
    assert response.status_code == 413
    assert requests_total("too_large") == before + 1
    assert await drain(amqp_url) == []


async def test_body_at_the_limit_is_accepted(client, amqp_url):
    body = b"y" * 4096
    assert (await client.post(WEBHOOK_PATH, content=body, headers=signed(body))).status_code == 200
    assert [m.body for m in await drain(amqp_url)] == [body]


async def test_chunked_body_is_counted_while_streaming(client, amqp_url):
    pulled = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal pulled
        for _ in range(10_000):  # 10 MB if anyone read it all
            pulled += 1
            yield b"z" * 1000

    before = requests_total("too_large")
    response = await client.post(WEBHOOK_PATH, content=endless(), headers=signed(b"whatever"))
    assert response.status_code == 413
    assert pulled <= 6  # stopped reading just past 4096 bytes, not at the end of the stream
    assert requests_total("too_large") == before + 1
    assert await drain(amqp_url) == []


async def test_chunked_body_under_the_limit_is_joined_exactly(client, amqp_url):
    parts = [b'{"messages": [', b'{"id": "a"}', b"]}\n"]

    async def stream() -> AsyncIterator[bytes]:
        for part in parts:
            yield part

    body = b"".join(parts)
    response = await client.post(WEBHOOK_PATH, content=stream(), headers=signed(body))
    assert response.status_code == 200
    assert [m.body for m in await drain(amqp_url)] == [body]


async def test_only_post(client):
    assert (await client.get(WEBHOOK_PATH)).status_code == 405


async def test_probes_and_metrics(client):
    assert (await client.get("/health")).status_code == 200
    ready = await client.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"broker": True}
    text = (await client.get("/metrics")).text
    for name in (
        "turnio_gateway_requests_total",
        "turnio_gateway_signature_failures_total",
        "turnio_gateway_publish_seconds",
        "turnio_gateway_body_bytes",
    ):
        assert name in text


async def test_without_a_broker_webhooks_get_503_with_retry_after_and_not_ready():
    nowhere = f"amqp://guest:guest@127.0.0.1:{free_port()}/"
    app = create_app(gateway_settings(nowhere, RETRY_AFTER="7"))
    body = b'{"messages": []}'
    before = requests_total("unavailable")
    async with serving(app, wait_ready=False) as client:
        assert (await client.get("/health")).status_code == 200
        ready = await client.get("/ready")
        assert ready.status_code == 503
        assert ready.json()["checks"] == {"broker": False}
        response = await client.post(WEBHOOK_PATH, content=body, headers=signed(body))
        assert response.status_code == 503
        assert response.headers["retry-after"] == "7"
        # A bad signature is still a 401 while the broker is down: auth comes first.
        bad = await client.post(WEBHOOK_PATH, content=body, headers={"X-Turn-Hook-Signature": "x"})
        assert bad.status_code == 401
    assert requests_total("unavailable") == before + 1


async def test_second_secret_is_accepted_end_to_end(amqp_url):
    app = create_app(
        gateway_settings(amqp_url, TURNIO_WEBHOOK_SECRET=f"old-{uuid.uuid4()},new-one")
    )
    body = b'{"messages": []}'
    async with serving(app) as client:
        headers = {
            "X-Turn-Hook-Signature": sign(body, "new-one"),
            "X-Turn-Hook-Subscription": "whatsapp",
        }
        assert (await client.post(WEBHOOK_PATH, content=body, headers=headers)).status_code == 200
    assert [m.body for m in await drain(amqp_url)] == [body]


async def test_many_concurrent_webhooks_all_land(client: httpx.AsyncClient, amqp_url: str) -> None:
    bodies = [f'{{"n": {i}}}'.encode() for i in range(200)]

    async def post(body: bytes) -> int:
        return (await client.post(WEBHOOK_PATH, content=body, headers=signed(body))).status_code

    statuses = await asyncio.gather(*(post(b) for b in bodies))
    assert set(statuses) == {200}
    assert sorted(m.body for m in await drain(amqp_url)) == sorted(bodies)


def test_delivery_ids_are_unique_within_and_across_processes() -> None:
    first, second = DeliveryIds(), DeliveryIds()
    ids = {first.next() for _ in range(10_000)} | {second.next() for _ in range(10_000)}
    assert len(ids) == 20_000
    assert all(len(i) == 32 for i in ids)  # as long as a uuid4 hex

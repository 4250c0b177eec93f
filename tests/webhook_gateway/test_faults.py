"""The broker going away or stalling, on a private RabbitMQ node this module may stop and start."""

import collections
import subprocess
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from services.webhook_gateway.app import WEBHOOK_PATH, create_app
from tests.servers import RABBIT_BIN, LocalRabbit
from tests.waiting import eventually
from tests.webhook_gateway.conftest import drain, gateway_settings, serving, signed

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def node() -> Iterator[LocalRabbit]:
    rabbit = LocalRabbit(management=False)
    rabbit.start()
    try:
        yield rabbit
    finally:
        rabbit.destroy()


def rabbitmqctl(node: LocalRabbit, *args: str) -> None:
    subprocess.run(
        [str(RABBIT_BIN / "rabbitmqctl"), "-n", node.node, *args],
        env=node.env,
        check=True,
        capture_output=True,
        timeout=60,
    )


async def post(client: httpx.AsyncClient, body: bytes) -> httpx.Response:
    return await client.post(WEBHOOK_PATH, content=body, headers=signed(body))


async def ready_status(client: httpx.AsyncClient) -> int:
    return (await client.get("/ready")).status_code


async def test_broker_stopped_503_then_nothing_that_got_200_is_lost(node: LocalRabbit) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    settings = gateway_settings(node.url, AMQP_QUEUE_PREFIX=prefix, RETRY_AFTER="3")
    accepted: list[bytes] = []
    async with serving(create_app(settings)) as client:
        for i in range(20):
            body = f'{{"before": {i}}}'.encode()
            assert (await post(client, body)).status_code == 200
            accepted.append(body)

        node.stop()
        await eventually(lambda: ready_status(client), until=lambda s: s == 503, what="not ready")
        during = b'{"during": "outage"}'
        refused = await post(client, during)
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "3"

        node.start()
        await eventually(
            lambda: ready_status(client), until=lambda s: s == 200, timeout=60, what="ready again"
        )
        # Turn retries the delivery it got a 503 for: now it is taken.
        assert (await post(client, during)).status_code == 200
        accepted.append(during)
        for i in range(20):
            body = f'{{"after": {i}}}'.encode()
            assert (await post(client, body)).status_code == 200
            accepted.append(body)

    landed = collections.Counter(m.body for m in await drain(node.url, f"{prefix}.webhook"))
    missing = collections.Counter(accepted) - landed
    assert not missing, f"lost after a 200: {missing}"
    assert landed[during] == 1  # the 503'd attempt never reached the queue (broker was gone)


async def test_confirm_that_never_comes_is_a_503_within_the_timeout(node: LocalRabbit) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    settings = gateway_settings(node.url, AMQP_QUEUE_PREFIX=prefix, PUBLISH_CONFIRM_TIMEOUT="0.5")
    async with serving(create_app(settings)) as client:
        assert (await post(client, b'{"n": 1}')).status_code == 200
        # A memory alarm blocks every publisher: frames are accepted, confirms never come.
        rabbitmqctl(node, "set_vm_memory_high_watermark", "0")
        try:
            started = time.monotonic()
            response = await post(client, b'{"n": 2}')
            elapsed = time.monotonic() - started
            assert response.status_code == 503
            assert "retry-after" in response.headers
            assert 0.4 <= elapsed < 2.0  # the configured 0.5 s, far under Turn's 5 s
        finally:
            rabbitmqctl(node, "set_vm_memory_high_watermark", "0.4")
        # The alarm cleared: the gateway recovers by itself.
        response = await eventually(
            lambda: post(client, b'{"n": 3}'),
            until=lambda r: r.status_code == 200,
            timeout=30,
            interval=0.2,
            what="accepting again after the alarm",
        )
        assert response.status_code == 200
    landed = [m.body for m in await drain(node.url, f"{prefix}.webhook")]
    assert b'{"n": 1}' in landed
    assert b'{"n": 3}' in landed

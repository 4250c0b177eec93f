"""An in-process gateway on a real RabbitMQ vhost, and a way to read what it published."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

import aio_pika
import httpx
import pytest
from starlette.applications import Starlette

from services.webhook_gateway.app import create_app
from services.webhook_gateway.settings import GatewaySettings
from services.webhook_gateway.signature import sign
from shared.broker import Publisher, Topology
from shared.settings import Env
from tests.conftest import BUSINESS_NUMBER, EXAMPLES, WEBHOOK_SECRET
from tests.waiting import eventually

WEBHOOK_EXAMPLES = sorted(EXAMPLES.glob("webhook_*.json"))


def gateway_settings(amqp_url: str, **overrides: str) -> GatewaySettings:
    env = {
        "AMQP_URL": amqp_url,
        "BUSINESS_NUMBER_ID": BUSINESS_NUMBER,
        "TURNIO_WEBHOOK_SECRET": WEBHOOK_SECRET,
        **overrides,
    }
    return GatewaySettings.from_env(Env(env))


def signed(body: bytes, subscription: str = "whatsapp", **extra: str) -> dict[str, str]:
    return {
        "X-Turn-Hook-Signature": sign(body, WEBHOOK_SECRET),
        "X-Turn-Hook-Subscription": subscription,
        "Content-Type": "application/json",
        **extra,
    }


@contextlib.asynccontextmanager
async def serving(app: Starlette, *, wait_ready: bool = True) -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's lifespan around an in-process client (ASGITransport skips lifespan)."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            if wait_ready:
                publisher: Publisher = app.state.publisher
                await eventually(
                    lambda: _connected(publisher), timeout=20, what="gateway connected"
                )
            yield client


async def _connected(publisher: Publisher) -> bool:
    return publisher.connected


@dataclass
class Published:
    body: bytes
    routing_key: str
    headers: Mapping[str, object]
    message_id: str | None
    persistent: bool


async def drain(amqp_url: str, queue: str | None = None) -> list[Published]:
    """Take every message now in the webhook queue (confirmed means it is already there)."""
    name = queue or Topology().webhook_queue
    connection = await aio_pika.connect(amqp_url)
    found: list[Published] = []
    try:
        channel = await connection.channel()
        declared = await channel.declare_queue(name, passive=True)
        while (message := await declared.get(no_ack=True, fail=False)) is not None:
            found.append(
                Published(
                    body=message.body,
                    routing_key=message.routing_key or "",
                    headers=dict(message.headers),
                    message_id=message.message_id,
                    persistent=message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT,
                )
            )
    finally:
        await connection.close()
    return found


@pytest.fixture
def settings(amqp_url: str) -> GatewaySettings:
    return gateway_settings(amqp_url, WEBHOOK_MAX_BODY_BYTES="4096")


@pytest.fixture
async def client(settings: GatewaySettings) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(create_app(settings)) as client:
        yield client

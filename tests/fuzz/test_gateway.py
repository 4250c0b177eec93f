"""Fuzzing the gateway on a real RabbitMQ vhost: a correctly signed body is always taken
(200, never a refusal, never a 5xx while the broker is up) and lands byte for byte; a body
whose signature does not match is refused with 401, never a 5xx."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from services.webhook_gateway.app import WEBHOOK_PATH, create_app
from services.webhook_gateway.signature import sign
from tests.conftest import WEBHOOK_SECRET
from tests.fuzz.conftest import examples, on_loop
from tests.fuzz.strategies import any_body, subscriptions
from tests.webhook_gateway.conftest import drain, gateway_settings, serving

HEADER_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=200)


@st.composite
def extra_headers(draw: st.DrawFn) -> dict[str, str]:
    found: dict[str, str] = {}
    for name in ("X-WhatsApp-Id", "X-Turn-Event", "X-Turn-Fallback-Channel", "Content-Type"):
        if draw(st.booleans()):
            found[name] = draw(HEADER_TEXT)
    return found


async def test_signed_bodies_are_always_taken_and_land_untouched(amqp_url):
    async with serving(create_app(gateway_settings(amqp_url))) as client:
        loop = asyncio.get_running_loop()

        async def post(body: bytes, subscription: str, extra: dict[str, str]) -> None:
            headers = {
                **extra,
                "X-Turn-Hook-Signature": sign(body, WEBHOOK_SECRET),
                "X-Turn-Hook-Subscription": subscription,
            }
            response = await client.post(WEBHOOK_PATH, content=body, headers=headers)
            assert response.status_code == 200, (response.status_code, response.text)
            landed = await drain(amqp_url)
            assert [p.body for p in landed] == [body]

        @settings(settings.get_profile("fuzz"), max_examples=examples(250))
        @given(body=any_body(), subscription=subscriptions(), extra=extra_headers())
        def check(body: bytes, subscription: str, extra: dict[str, str]) -> None:
            on_loop(loop, post(body, subscription, extra))

        await asyncio.to_thread(check)


async def test_bodies_with_a_wrong_signature_are_refused_with_401(amqp_url):
    async with serving(create_app(gateway_settings(amqp_url))) as client:
        loop = asyncio.get_running_loop()

        async def post(body: bytes, signature: str) -> None:
            if signature == sign(body, WEBHOOK_SECRET):
                return
            response = await client.post(
                WEBHOOK_PATH, content=body, headers={"X-Turn-Hook-Signature": signature}
            )
            assert response.status_code == 401, (response.status_code, response.text)

        @settings(settings.get_profile("fuzz"), max_examples=examples(100))
        @given(body=any_body(), signature=HEADER_TEXT | st.binary(max_size=40).map(bytes.hex))
        def check(body: bytes, signature: str) -> None:
            on_loop(loop, post(body, signature))

        await asyncio.to_thread(check)
        assert await drain(amqp_url) == []

"""Fuzzing the writer's payload explosion: every body yields events or is refused with a
reason (InvalidPayload, a PoisonError); nothing else escapes, nothing vanishes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from services.db_writer.explode import explode
from shared import broker
from shared.errors import PoisonError
from tests.fuzz.conftest import examples
from tests.fuzz.strategies import any_body, subscriptions

NOW = datetime(2025, 1, 31, tzinfo=UTC)
ROUTES = st.sampled_from(
    [broker.ROUTE_EXPORT_MESSAGE, broker.ROUTE_EXPORT_CONTACT, "webhook.whatsapp", "webhook.turn"]
)


@st.composite
def headers(draw: st.DrawFn) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, value in (
        (broker.H_SOURCE, st.sampled_from(["webhook", "export", "", "nonsense"])),
        (broker.H_SUBSCRIPTION, subscriptions()),
        (broker.H_KIND, st.sampled_from(["message", "contact", "", "x"])),
        (broker.H_WHATSAPP_ID, st.text(max_size=20) | st.binary(max_size=10)),
        (broker.H_RECEIVED_AT, st.sampled_from(["", "not a time", broker.utc_now_iso()])),
        (broker.H_BUSINESS_NUMBER, st.text(max_size=12)),
    ):
        if draw(st.booleans()):
            values[name] = draw(value)
    return values


@settings(settings.get_profile("fuzz"), max_examples=examples(600))
@given(body=any_body(), headers=headers(), routing_key=ROUTES)
def test_every_body_yields_events_or_is_refused_with_a_reason(body, headers, routing_key):
    try:
        events = explode(body, headers, routing_key, business_number_id="276", now=NOW)
    except PoisonError as refused:
        assert refused.reason
        return
    assert events, "a body that yields nothing and is not refused would vanish"
    for event in events:
        assert event.key, event
        orjson.loads(event.payload)  # what the lake stores is JSON
        row = event.message or event.status or event.contact
        if row is not None:
            orjson.loads(row.raw)

from __future__ import annotations

import hashlib
import threading
from collections import Counter
from collections.abc import Callable

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.conftest import EXAMPLES, WEBHOOK_SECRET
from tests.servers import free_port
from turnsim.dataset import Dataset, DatasetSpec, Delivery
from turnsim.server import serving
from turnsim.webhooks import WebhookSender, sign

# turn-api.md §7: signatures of the example files for secret `test-webhook-secret`.
KNOWN_SIGNATURES = {
    "webhook_inbound_text.json": "obkUNx3na0VyEdsbjrVkm78zYDmePrasRxJRbwPx78E=",
    "webhook_status_delivered.json": "oB2RwEPMKsc3iFpIyTScSQYhTt0wt2wEud4/aDCdhik=",
    "webhook_status_failed.json": "EWl4XCEjhswEUD1GUqr5Qenr6UumbuxZoq3BedtZ9XQ=",
    "webhook_outbound_turn_subscription.json": "YQeny1teA9NvCKZE5pE4i4VsyVKTYqTXvh6nlIc40Xs=",
}


@pytest.mark.parametrize(("name", "signature"), sorted(KNOWN_SIGNATURES.items()))
def test_signing_reproduces_the_published_signatures(name, signature):
    assert sign((EXAMPLES / name).read_bytes(), WEBHOOK_SECRET) == signature


class Receiver:
    """A stand-in for the gateway: checks signatures, records requests, answers as told."""

    def __init__(self, answer: Callable[[bytes, dict[str, str], int], int]) -> None:
        self.answer = answer
        self.seen: Counter[bytes] = Counter()
        self.requests: list[tuple[dict[str, str], bytes, int]] = []
        self._lock = threading.Lock()

    async def endpoint(self, request: Request) -> Response:
        body = await request.body()
        headers = dict(request.headers)
        with self._lock:
            self.seen[body] += 1
            nth = self.seen[body]
        if sign(body, WEBHOOK_SECRET) != headers.get("x-turn-hook-signature"):
            status = 403
        else:
            status = self.answer(body, headers, nth)
        with self._lock:
            self.requests.append((headers, body, status))
        return Response(status_code=status)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/webhooks/turn", self.endpoint, methods=["POST"])])


def _flaky(body: bytes) -> bool:
    return hashlib.sha256(body).digest()[0] % 4 == 0


@pytest.fixture(scope="module")
def deliveries() -> list[Delivery]:
    return Dataset.generate(DatasetSpec(seed=3, messages=150, contacts=20)).webhook_deliveries()


async def test_everything_arrives_signed_with_duplicates_and_retried_5xx(deliveries):
    # The first request of about a quarter of the bodies fails with 503.
    receiver = Receiver(lambda body, _headers, nth: 503 if nth == 1 and _flaky(body) else 200)
    with serving(receiver.app()) as url:
        sender = WebhookSender(url, WEBHOOK_SECRET, backoff=0.001)
        report = await sender.send(deliveries, duplicate_share=0.2, concurrency=8, seed=5)

    assert report.accepted_ids() == {d.event_id for d in deliveries} and not report.failed()
    assert all(r.status == 200 for r in report.results)
    assert all(status != 403 for _, _, status in receiver.requests)  # every signature verified
    assert set(receiver.seen) == {d.body for d in deliveries}
    flaky = sum(_flaky(d.body) for d in deliveries)
    assert report.retries == flaky > 0
    assert 0.1 < report.duplicates / len(deliveries) < 0.3
    assert len(receiver.requests) == report.requests == len(deliveries) + report.duplicates + flaky
    doubled = {r.delivery.body for r in report.results if r.duplicate_statuses}
    assert all(receiver.seen[body] >= 2 for body in doubled)
    for headers, body, _ in receiver.requests:
        delivery = next(d for d in deliveries if d.body == body)
        assert headers["x-turn-hook-subscription"] == delivery.headers["X-Turn-Hook-Subscription"]
        if delivery.kind == "outbound":
            assert headers["x-whatsapp-id"] == delivery.event_id
        else:
            assert "x-whatsapp-id" not in headers


async def test_4xx_is_final_and_5xx_is_retried_a_bounded_number_of_times(deliveries):
    def answer(_body: bytes, headers: dict[str, str], _nth: int) -> int:
        if headers["x-turn-hook-subscription"] == "turn":
            return 400
        return 500 if b'"statuses"' in _body else 200

    receiver = Receiver(answer)
    with serving(receiver.app()) as url:
        sender = WebhookSender(url, WEBHOOK_SECRET, max_attempts=3, backoff=0.001)
        report = await sender.send(deliveries, duplicate_share=0.0)
    outcome = {(r.delivery.kind, r.status, r.attempts) for r in report.results}
    assert outcome == {("inbound", 200, 1), ("outbound", 400, 1), ("status", 500, 3)}
    assert report.accepted_ids() == {d.event_id for d in deliveries if d.kind == "inbound"}


async def test_an_unreachable_gateway_is_reported_not_raised(deliveries):
    sender = WebhookSender(f"http://127.0.0.1:{free_port()}", WEBHOOK_SECRET, max_attempts=2)
    sender.backoff = 0.001
    report = await sender.send(deliveries[:3], duplicate_share=0.0)
    assert [(r.status, r.attempts) for r in report.results] == [(None, 2)] * 3
    assert report.accepted_ids() == set() and len(report.failed()) == 3

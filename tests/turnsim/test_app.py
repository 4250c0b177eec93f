from __future__ import annotations

import math
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.turnsim.conftest import (
    HEADERS,
    WIDE_FROM,
    WIDE_UNTIL,
    create_cursor,
    item_id,
    pull_all,
    z,
)
from tests.waiting import eventually
from turnsim.dataset import DEFAULT_END, DEFAULT_START, Dataset
from turnsim.simulator import Simulator

RATE_HEADERS = ("x-ratelimit-bucket", "x-ratelimit-limit", "x-ratelimit-remaining")


@pytest.mark.parametrize("ordering", ["asc", "desc"])
@pytest.mark.parametrize("page_size", [1, 7, 50, 1000])
async def test_following_next_serves_each_message_once_in_order(
    client, dataset: Dataset, ordering, page_size
):
    items = await pull_all(
        client, "messages", ordering=ordering, page_size=page_size, **{"from": WIDE_FROM},
        until=WIDE_UNTIL,
    )  # fmt: skip
    ids = [item_id(item) for item in items]
    assert len(ids) == len(set(ids)) == len(dataset.message_ids())
    truth = [item_id(item) for item in dataset.messages_between(DEFAULT_START, DEFAULT_END)]
    assert ids == (truth if ordering == "asc" else truth[::-1])


@pytest.mark.parametrize("ordering", ["asc", "desc"])
async def test_following_next_serves_each_contact_once(client, dataset: Dataset, ordering):
    items = await pull_all(
        client, "contacts", ordering=ordering, page_size=13, **{"from": WIDE_FROM},
        until=WIDE_UNTIL,
    )  # fmt: skip
    ids = [item_id(item) for item in items]
    assert sorted(ids) == sorted(dataset.contact_ids())
    stamps = [item["updated_at"] for item in items]
    assert stamps == sorted(stamps, reverse=ordering == "desc")


async def test_windows_are_half_open_on_the_message_timestamp(client, dataset: Dataset):
    pivot = datetime(2025, 1, 15, 12, 0, 0, tzinfo=UTC)
    # Several messages in the very second of the boundary: ties are broken by id.
    at_pivot = {item_id(dataset.add_message(at=pivot, now=0.0)) for _ in range(3)}
    before = await pull_all(client, "messages", page_size=2, until=z(pivot), **{"from": WIDE_FROM})
    after = await pull_all(client, "messages", page_size=2, until=WIDE_UNTIL, **{"from": z(pivot)})
    before_ids, after_ids = {item_id(i) for i in before}, {item_id(i) for i in after}
    assert at_pivot <= after_ids and not at_pivot & before_ids  # from inclusive, until exclusive
    assert before_ids | after_ids == dataset.message_ids()
    assert not before_ids & after_ids
    assert [item_id(i) for i in after[:3]] == sorted(at_pivot)


async def test_the_last_page_signals_the_end_as_null_or_without_next(client):
    endings = []
    for _ in range(3):
        cursor = await create_cursor(
            client, "contacts", page_size=1000, until=WIDE_UNTIL, **{"from": WIDE_FROM}
        )
        page = (await client.get(f"/v1/data/contacts/cursor/{cursor}")).json()
        endings.append(page["paging"])
    # Consecutive cursors end in each of the three ways clients meet.
    assert sorted(map(str, endings)) == sorted(map(str, [None, {}, {"next": None}]))


async def test_an_empty_window_is_one_empty_last_page(client):
    cursor = await create_cursor(
        client, "messages", until="2020-01-02T00:00:00Z", **{"from": "2020-01-01T00:00:00Z"}
    )
    page = (await client.get(f"/v1/data/messages/cursor/{cursor}")).json()
    assert page["data"] == [] and not (page["paging"] or {}).get("next")


async def test_rereading_a_cursor_gives_the_same_page_and_next(client):
    cursor = await create_cursor(
        client, "messages", page_size=10, until=WIDE_UNTIL, **{"from": WIDE_FROM}
    )
    first = (await client.get(f"/v1/data/messages/cursor/{cursor}")).json()
    again = (await client.get(f"/v1/data/messages/cursor/{cursor}")).json()
    assert first == again and first["paging"]["next"]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"from": 1735732800, "until": WIDE_UNTIL}, "from"),
        ({"from": "1735732800", "until": WIDE_UNTIL}, "from"),
        ({"from": "2025-01-01T00:00:00", "until": WIDE_UNTIL}, "from"),  # no zone
        ({"from": "2025-01-01", "until": WIDE_UNTIL}, "from"),
        ({"from": "2025-13-01T00:00:00Z", "until": WIDE_UNTIL}, "from"),
        ({"until": WIDE_UNTIL}, "from"),
        ({"from": WIDE_FROM, "until": z(datetime.now(UTC) + timedelta(minutes=5))}, "future"),
        ({"from": WIDE_UNTIL, "until": WIDE_FROM}, "before"),
        ({"from": WIDE_FROM, "until": WIDE_FROM}, "before"),
        ({"from": WIDE_FROM, "until": WIDE_UNTIL, "page_size": 1001}, "page_size"),
        ({"from": WIDE_FROM, "until": WIDE_UNTIL, "page_size": 0}, "page_size"),
        ({"from": WIDE_FROM, "until": WIDE_UNTIL, "page_size": "10"}, "page_size"),
        ({"from": WIDE_FROM, "until": WIDE_UNTIL, "ordering": "newest"}, "ordering"),
    ],
)
async def test_bad_cursor_requests_are_refused_with_400(client, body, fragment):
    response = await client.post("/v1/data/messages/cursor", json=body)
    assert response.status_code == 400
    assert fragment in response.json()["errors"][0]["details"]


async def test_timestamps_with_offsets_and_fractions_are_accepted(client):
    response = await client.post(
        "/v1/data/messages/cursor",
        json={"from": "2024-12-31T23:00:00.272+02:00", "until": "2025-01-02T00:00:00.5Z"},
    )
    assert response.status_code == 200
    expires = datetime.fromisoformat(response.json()["expires_at"])
    assert expires > datetime.now(UTC)


async def test_an_expired_cursor_and_its_next_are_refused_with_400(client, sim: Simulator):
    sim.configure(cursor_ttl=0.3)
    cursor = await create_cursor(
        client, "messages", page_size=10, until=WIDE_UNTIL, **{"from": WIDE_FROM}
    )
    first = await client.get(f"/v1/data/messages/cursor/{cursor}")
    follow = first.json()["paging"]["next"]

    async def read() -> httpx.Response:
        response: httpx.Response = await client.get(f"/v1/data/messages/cursor/{follow}")
        return response

    expired = await eventually(read, until=lambda r: r.status_code != 200, what="expiry")
    assert expired.status_code == 400
    details = str(expired.json()).lower()
    assert "cursor" in details and "expired" in details
    assert sim.stats().cursors_expired >= 1


async def test_unknown_cursor_is_400_without_claiming_expiry(client):
    response = await client.get("/v1/data/messages/cursor/nonsense")
    assert response.status_code == 400 and "expired" not in response.text.lower()


async def test_token_and_vendor_accept_header_are_required(client, sim: Simulator):
    body = {"from": WIDE_FROM, "until": WIDE_UNTIL}
    wrong = await client.post(
        "/v1/data/messages/cursor", json=body, headers={"Authorization": "Bearer nope"}
    )
    missing = await client.post(
        "/v1/data/messages/cursor", json=body, headers={"Authorization": ""}
    )
    plain = await client.post(
        "/v1/data/messages/cursor", json=body, headers={"Accept": "application/json"}
    )
    listed = await client.post(
        "/v1/data/messages/cursor",
        json=body,
        headers={"Accept": "application/json, application/vnd.v1+json; q=0.9"},
    )
    assert (wrong.status_code, missing.status_code) == (401, 401)
    assert plain.status_code == 406
    assert listed.status_code == 200
    for response in (wrong, plain):
        assert all(name in response.headers for name in RATE_HEADERS)
    assert sim.stats().by_status == {401: 2, 406: 1, 200: 1}


async def test_every_answer_carries_the_rate_headers(client, sim: Simulator):
    sim.configure(rate_limit=5, rate_window=60.0)
    answers = [
        await client.post("/v1/data/messages/cursor", json={"from": WIDE_FROM, "until": WIDE_UNTIL})
        for _ in range(4)
    ]
    answers.append(await client.get("/v1/data/messages/cursor/nonsense"))
    answers.append(await client.post("/v1/data/messages/cursor", json={"from": 1}))
    assert [a.status_code for a in answers] == [200, 200, 200, 200, 400, 429]
    for answer in answers:
        assert answer.headers["x-ratelimit-bucket"] == "general"
        assert answer.headers["x-ratelimit-limit"] == "5"
        assert float(answer.headers["x-ratelimit-reset"]) > time.time()
    assert [a.headers["x-ratelimit-remaining"] for a in answers] == ["4", "3", "2", "1", "0", "0"]


async def test_past_the_limit_429_with_retry_after_over_a_sliding_window(client, sim: Simulator):
    sim.configure(rate_limit=3, rate_window=1.0)
    url = "/v1/data/messages/cursor/nonsense"
    statuses = [(await client.get(url)).status_code for _ in range(3)]
    refused = await client.get(url)
    assert statuses == [400, 400, 400] and refused.status_code == 429
    assert refused.json()["errors"][0]["code"] == 429
    assert "Rate limit hit for bucket general" in refused.json()["errors"][0]["title"]
    assert (
        int(refused.headers["retry-after"])
        == math.ceil(float(refused.headers["x-ratelimit-reset"]) - time.time())
        or int(refused.headers["retry-after"]) == 1
    )
    await eventually(lambda: _status(client, url), until=lambda s: s != 429, what="window slid")
    # Hammer for a while: in no 1 s span are more than 3 requests admitted.
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        await client.get(url)
    admitted = [e.monotonic for e in sim.request_log() if e.status != 429]
    for index, start in enumerate(admitted):
        assert sum(start <= t < start + 1.0 for t in admitted[index:]) <= 3
    assert sim.stats().rate_limited == sum(e.status == 429 for e in sim.request_log()) > 0


async def _status(client: httpx.AsyncClient, url: str) -> int:
    return (await client.get(url)).status_code


async def test_injected_5xx_match_the_error_rate_and_never_lose_a_page(client, sim: Simulator):
    sim.configure(error_rate=0.25, seed=11)
    cursor: str | None = None
    statuses: list[int] = []
    while cursor is None:
        response = await client.post(
            "/v1/data/messages/cursor",
            json={"from": WIDE_FROM, "until": WIDE_UNTIL, "page_size": 5},
        )
        statuses.append(response.status_code)
        cursor = response.json()["cursor"] if response.status_code == 200 else None
    ids: list[str] = []
    while cursor:
        response = await client.get(f"/v1/data/messages/cursor/{cursor}")
        statuses.append(response.status_code)
        if response.status_code == 200:  # a failed GET is retried with the same cursor
            page = response.json()
            ids.extend(item_id(i) for i in page["data"])
            cursor = (page["paging"] or {}).get("next")
    assert len(ids) == len(set(ids)) == len(sim.dataset.message_ids())
    failures = [s for s in statuses if s >= 500]
    assert 0.2 < len(failures) / len(statuses) < 0.3
    assert set(failures) == {500, 502, 503}
    assert sim.stats().injected_5xx == len(failures)


async def test_the_fault_sequence_is_fixed_by_the_seed(dataset: Dataset):
    def draws(seed: int) -> list[int | None]:
        sim = Simulator(dataset)
        sim.configure(error_rate=0.3, seed=seed)
        return [sim.draw_fault() for _ in range(200)]

    assert draws(5) == draws(5) != draws(6)


async def test_latency_is_added_to_each_answer(client, sim: Simulator):
    sim.configure(latency=0.2)
    started = time.monotonic()
    await client.get("/v1/data/messages/cursor/nonsense")
    assert time.monotonic() - started >= 0.2


async def test_windows_wider_than_max_window_fail_with_5xx(client, sim: Simulator):
    sim.configure(max_window=7 * 86400)
    wide = await create_cursor(client, "messages", until=WIDE_UNTIL, **{"from": WIDE_FROM})
    narrow = await create_cursor(
        client, "messages", until="2025-01-08T00:00:00Z", **{"from": "2025-01-01T00:00:00Z"}
    )
    assert (await client.get(f"/v1/data/messages/cursor/{wide}")).status_code == 500
    assert (await client.get(f"/v1/data/messages/cursor/{narrow}")).status_code == 200
    assert sim.stats().wide_window_5xx == 1


async def test_late_arrivals_show_up_when_the_window_is_read_again(client, sim: Simulator):
    sim.configure(late_share=0.1, late_delay=0.5)
    window = {"from": WIDE_FROM, "until": WIDE_UNTIL, "page_size": 1000}
    first = {item_id(i) for i in await pull_all(client, "messages", **window)}
    truth = sim.dataset.message_ids()
    assert 0.05 < len(truth - first) / len(truth) < 0.15

    async def reread() -> set[str]:
        return {item_id(i) for i in await pull_all(client, "messages", **window)}

    assert await eventually(reread, until=lambda ids: ids == truth, what="late items visible")


async def test_new_messages_arrive_while_running(client, sim: Simulator):
    before = sim.dataset.message_ids()
    sim.configure(arrival_rate=50.0)
    started = datetime.now(UTC) - timedelta(seconds=1)

    async def recent() -> list[dict[str, Any]]:
        until = z(datetime.now(UTC))
        return await pull_all(
            client, "messages", page_size=1000, until=until, **{"from": z(started)}
        )

    items = await eventually(recent, until=lambda items: len(items) >= 5, what="arrivals")
    assert not {item_id(i) for i in items} & before
    assert {item_id(i) for i in items} <= sim.dataset.message_ids()
    assert sim.stats().arrivals >= 5


async def test_a_burst_of_contact_cursors_is_refused_with_403(client, sim: Simulator):
    sim.configure(contact_cursor_403_burst=2)
    body = {"from": WIDE_FROM, "until": WIDE_UNTIL}
    statuses = [
        (await client.post("/v1/data/contacts/cursor", json=body)).status_code for _ in range(3)
    ]
    messages = (await client.post("/v1/data/messages/cursor", json=body)).status_code
    assert statuses == [200, 200, 403] and messages == 200
    assert sim.stats().forbidden_403 == 1


async def test_control_endpoints_report_and_change_the_simulator(client, sim: Simulator):
    await client.get("/v1/data/messages/cursor/nonsense")
    stats = (await client.get("/_sim/stats")).json()
    assert stats["by_status"] == {"400": 1}
    changed = await client.post("/_sim/config", json={"error_rate": 0.5, "max_window": 60})
    assert changed.status_code == 200 and changed.json()["error_rate"] == 0.5
    assert "token" not in changed.json()
    assert sim.config.max_window == 60
    assert (await client.post("/_sim/config", json={"nope": 1})).status_code == 400
    assert (await client.post("/_sim/config", json={"error_rate": 2})).status_code == 400
    truth = (await client.get("/_sim/truth")).json()
    assert truth["messages"] == len(sim.dataset.message_ids())


async def test_the_request_log_names_the_client(client, sim: Simulator):
    await client.get("/v1/data/messages/cursor/x", headers={"User-Agent": "puller-a"})
    await client.get("/v1/data/messages/cursor/y")
    log = sim.request_log()
    assert [(e.client, e.method, e.path, e.status) for e in log] == [
        ("puller-a", "GET", "/v1/data/messages/cursor/x", 400),
        (HEADERS["User-Agent"], "GET", "/v1/data/messages/cursor/y", 400),
    ]
    assert log[0].monotonic <= log[1].monotonic

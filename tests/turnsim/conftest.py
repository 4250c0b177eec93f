"""Simulator fixtures: a small seeded data set served in-process (no sockets, no sleeps)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from turnsim.app import create_app
from turnsim.config import SimConfig
from turnsim.dataset import Dataset, DatasetSpec
from turnsim.simulator import Simulator

HEADERS = {
    "Authorization": "Bearer sim-token",
    "Accept": "application/vnd.v1+json",
    "User-Agent": "turnsim-tests",
}
WIDE_FROM = "2024-01-01T00:00:00Z"
WIDE_UNTIL = "2025-06-01T00:00:00Z"


def z(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def item_id(item: dict[str, Any]) -> str:
    if "messages" in item:
        return str(item["messages"][0]["id"])
    return str(item["id"])


@pytest.fixture
def dataset() -> Dataset:
    return Dataset.generate(DatasetSpec(seed=7, messages=1200, contacts=150))


@pytest.fixture
def sim(dataset: Dataset) -> Simulator:
    # A generous limit: tests about the limit lower it themselves.
    return Simulator(dataset, SimConfig(rate_limit=100_000))


@pytest.fixture
async def client(sim: Simulator) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(sim))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://turn.test", headers=HEADERS
    ) as http:
        yield http


async def create_cursor(client: httpx.AsyncClient, kind: str, **body: Any) -> str:
    response = await client.post(f"/v1/data/{kind}/cursor", json=body)
    assert response.status_code == 200, response.text
    return str(response.json()["cursor"])


async def pull_all(client: httpx.AsyncClient, kind: str, **body: Any) -> list[dict[str, Any]]:
    """Follow `paging.next` to the end, the way a careful client does."""
    cursor: str | None = await create_cursor(client, kind, **body)
    items: list[dict[str, Any]] = []
    while cursor:
        response = await client.get(f"/v1/data/{kind}/cursor/{cursor}")
        assert response.status_code == 200, response.text
        page = response.json()
        items.extend(page["data"])
        cursor = (page["paging"] or {}).get("next")
    return items

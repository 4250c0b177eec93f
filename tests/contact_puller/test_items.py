from datetime import UTC, datetime

import orjson
import pytest

from services.contact_puller.items import contact_id, contact_time
from tests.conftest import EXAMPLES


def test_the_example_page():
    items = orjson.loads((EXAMPLES / "export_contacts_page.json").read_bytes())["data"]
    assert contact_id(items[0]) == "1048577"
    assert contact_time(items[0]) == datetime(2025, 1, 1, 12, 0, 0, 450012, tzinfo=UTC)


def test_inserted_at_stands_in_for_a_missing_updated_at():
    item = {"id": 7, "inserted_at": "2024-11-03T08:15:02.101233Z", "updated_at": None}
    assert contact_time(item) == datetime(2024, 11, 3, 8, 15, 2, 101233, tzinfo=UTC)


@pytest.mark.parametrize("item", [None, [], {"id": True}, {"id": ""}, {"updated_at": "x"}])
def test_odd_shapes(item):
    assert contact_time(item) is None
    assert contact_id(item) is None


def test_a_naive_time_is_utc():
    assert contact_time({"updated_at": "2025-01-01T00:00:00"}) == datetime(2025, 1, 1, tzinfo=UTC)

import orjson

from services.message_puller.items import message_id, message_time
from tests.conftest import EXAMPLES


def test_both_export_shapes_give_id_and_time():
    page = orjson.loads((EXAMPLES / "export_messages_page.json").read_bytes())
    inbound, outbound = page["data"][0], page["data"][1]
    assert "messages" in inbound
    assert message_id(inbound) == inbound["messages"][0]["id"]
    assert message_id(outbound) == outbound["id"]
    time = message_time(outbound)
    assert time is not None
    assert int(time.timestamp()) == int(outbound["timestamp"])


def test_odd_items_give_none_rather_than_failing():
    odd: list[object] = [None, [], {}, {"messages": []}, {"id": 5, "timestamp": "soon"}]
    for item in odd:
        assert message_id(item) is None
        assert message_time(item) is None


def test_a_timestamp_past_the_platforms_range_gives_none():
    # fromtimestamp raises OSError (EOVERFLOW) here, which the puller loop would take for a
    # lost database and retry forever.
    for stamp in ["100000000000000000", "-100000000000000000", "1" + "0" * 40]:
        assert message_time({"id": "wamid.x", "timestamp": stamp}) is None

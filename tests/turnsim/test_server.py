from __future__ import annotations

from urllib.parse import urlsplit

import httpx

from tests.servers import port_open
from tests.turnsim.conftest import HEADERS, WIDE_FROM, WIDE_UNTIL
from turnsim.server import running
from turnsim.simulator import Simulator


def test_running_serves_on_a_free_port_and_stops_on_exit(sim: Simulator):
    with running(sim) as url:
        port = urlsplit(url).port
        assert port is not None
        response = httpx.post(
            f"{url}/v1/data/messages/cursor",
            json={"from": WIDE_FROM, "until": WIDE_UNTIL},
            headers=HEADERS,
        )
        assert response.status_code == 200
        assert response.headers["x-ratelimit-limit"] == "100000"
    assert not port_open(port)
    assert sim.stats().cursors_created["messages"] == 1


def test_two_simulators_run_side_by_side(sim: Simulator, dataset):
    other = Simulator(dataset)
    with running(sim) as first, running(other) as second:
        assert first != second
        assert httpx.get(f"{first}/_sim/stats").status_code == 200
        assert httpx.get(f"{second}/_sim/stats").status_code == 200

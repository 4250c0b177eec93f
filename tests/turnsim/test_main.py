from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from tests.processes import ROOT
from tests.servers import free_port
from tests.waiting import eventually_sync
from turnsim.__main__ import parse


def test_arguments_reach_the_settings():
    args = parse(["--messages", "5", "--rate-limit", "600", "--rate-window", "30", "--end", "now"])
    assert (args.messages, args.rate_limit, args.rate_window) == (5, 600, 30.0)
    assert args.end.tzinfo is not None
    with pytest.raises(SystemExit):
        parse(["--end", "2025-01-01T00:00:00"])  # no timezone


@pytest.mark.slow
def test_runs_standalone_and_says_where():
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "turnsim", "--port", str(port), "--messages", "300"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:

        def truth() -> dict[str, int] | None:
            try:
                return dict(httpx.get(f"http://127.0.0.1:{port}/_sim/truth").json())
            except httpx.TransportError:
                return None

        counts = eventually_sync(truth, timeout=30, what="turnsim up")
        assert counts is not None
        assert (counts["messages"], counts["contacts"]) == (300, 200)
    finally:
        proc.terminate()
        output, _ = proc.communicate(timeout=10)
    assert f"http://127.0.0.1:{port} token=sim-token" in output

"""`make demo` is the first thing a newcomer runs: it must keep working."""

import asyncio
import os
import sys

import pytest

from tests.processes import ROOT


@pytest.mark.slow
async def test_demo_runs_end_to_end_and_finds_every_event_exactly_once(pg_admin_url, rabbit):
    env = os.environ | {
        "DATABASE_URL": pg_admin_url,
        "AMQP_URL": rabbit.amqp_url,
        "RABBITMQ_MANAGEMENT_URL": rabbit.management_url,
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "demo",
        "--once",
        "--free-ports",
        "--messages",
        "300",
        "--contacts",
        "40",
        "--timeout",
        "120",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(proc.communicate(), timeout=240)
    text = output.decode(errors="replace")
    assert proc.returncode == 0, text
    assert "=> every event exactly once" in text, text
    assert "lost 0, unexpected 0" in text
    assert "each in its newest version: yes" in text
    for service in ("webhook_gateway", "db_writer", "message_puller", "contact_puller"):
        assert f"services.{service} exited 0" in text, text

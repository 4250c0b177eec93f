"""`ingestctl status` on an empty and on a populated system, and with servers away."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

import asyncpg

from shared.broker import H_DELIVERY_ID, H_ERROR, H_ORIGINAL_ROUTING_KEY, Publisher, Topology
from tests.conftest import BUSINESS_NUMBER
from tests.ingestctl.conftest import Ctl
from tests.servers import free_port
from tests.waiting import eventually


async def test_empty_system_reports_missing_pullers_and_nothing_else(
    ctl: Ctl, topology: Topology
) -> None:
    result = await ctl("status")
    assert result.code == 1
    assert "NO HOLDER" in result.out
    assert "BACK-FILLS PENDING\n  none" in result.out
    problems = [line for line in result.out.splitlines() if line.startswith("PROBLEM")]
    assert problems == [
        "PROBLEM: contacts: no puller holds the lease (is it running?)",
        "PROBLEM: messages: no puller holds the lease (is it running?)",
    ]
    for queue in ("turnio.webhook", "turnio.export.message", "turnio.export.contact"):
        assert queue in result.out


async def test_queues_not_yet_declared_are_named(ctl: Ctl) -> None:
    result = await ctl("status")
    assert "queues not declared yet: turnio.webhook" in result.out


async def _populate(db: asyncpg.Connection) -> None:
    await db.execute(
        """
        INSERT INTO ingestion_state (business_number_id, stream, checkpoint)
        VALUES ($1, 'messages', now() - interval '90 seconds'),
               ($1, 'contacts', now() - interval '2 hours'),
               ('someone-else', 'messages', now() - interval '9 days');
        INSERT INTO leases (name, holder, expires_at)
        VALUES ($1 || ':messages', 'message-puller-abc', now() + interval '30 seconds'),
               ($1 || ':contacts', 'contact-puller-old', now() - interval '1 minute');
        INSERT INTO ingestion_schedule
            (business_number_id, stream, sweep, last_started_at, last_finished_at)
        VALUES ($1, 'messages', 'recovery', now() - interval '1 hour', now() - interval '50 min'),
               ($1, 'messages', 'audit', now() - interval '5 minutes', NULL);
        INSERT INTO backfill_requests (business_number_id, stream, from_ts, until_ts)
        VALUES ($1, 'messages', '2026-01-01Z', '2026-01-02Z');
        INSERT INTO backfill_requests (business_number_id, stream, from_ts, until_ts, finished_at)
        VALUES ($1, 'contacts', '2026-01-01Z', '2026-01-02Z', now());
        """.replace("$1", f"'{BUSINESS_NUMBER}'")
    )


def _one_dead_letter(document: dict[str, Any]) -> bool:
    return any(q["messages"] == 1 for q in document["queues"] if q["name"] == "turnio.dead")


async def test_populated_system_shows_lag_leases_sweeps_backfills_and_dead_letters(
    ctl: Ctl, db: asyncpg.Connection, amqp_url: str, topology: Topology
) -> None:
    await _populate(db)
    publisher = Publisher(amqp_url, topology)
    await publisher.start(wait=True)
    headers = {H_ERROR: "bad", H_ORIGINAL_ROUTING_KEY: "webhook.whatsapp", H_DELIVERY_ID: "d1"}
    await publisher.publish(b"{}", "", headers, dead_letter=True)
    await publisher.close()

    async def report() -> dict[str, Any]:
        result = await ctl("status", "--json")
        assert result.code == 1
        document: dict[str, Any] = json.loads(result.out)
        return document

    # The management API refreshes its counts every few seconds.
    document = await eventually(
        report,
        until=_one_dead_letter,
        timeout=30,
        interval=0.5,
        what="dead letter counted by the management API",
    )
    streams = {s["stream"]: s for s in document["database"]["streams"]}
    assert 89 <= streams["messages"]["lag_seconds"] < 150
    assert streams["messages"]["lease_holder"] == "message-puller-abc"
    assert streams["messages"]["lease_expired"] is False
    assert streams["contacts"]["lease_expired"] is True
    assert timedelta(seconds=streams["contacts"]["lag_seconds"]) >= timedelta(hours=2)
    sweeps = {(w["stream"], w["sweep"]) for w in document["database"]["sweeps"]}
    assert sweeps == {("messages", "recovery"), ("messages", "audit")}
    [backfill] = document["database"]["backfills"]
    assert backfill["stream"] == "messages" and backfill["started_at"] is None
    assert document["problems"] == [
        "contacts: no puller holds the lease (is it running?)",
        "1 dead letter(s) in turnio.dead: ingestctl dlq list",
    ]

    text = (await ctl("status")).out
    assert "message-puller-abc (renew within" in text
    assert "EXPIRED contact-puller-old" in text
    assert "audit      started" in text and "RUNNING" in text
    assert re.search(r"^  messages +\S+ +1\.\dm  message-puller-abc", text, re.MULTILINE), text


async def test_servers_away_are_one_line_each_never_a_traceback(
    ctl: Ctl, ctl_env: dict[str, str]
) -> None:
    closed = free_port()
    env = {
        **ctl_env,
        "DATABASE_URL": f"postgresql://u:p@127.0.0.1:{closed}/x",
        "RABBITMQ_MANAGEMENT_URL": f"http://guest:guest@127.0.0.1:{closed}/",
    }
    result = await ctl("status", env=env)
    assert result.code == 1
    assert "Traceback" not in result.out
    problems = [line for line in result.out.splitlines() if line.startswith("PROBLEM")]
    assert len(problems) == 2
    assert f"PostgreSQL at 127.0.0.1:{closed}/x is unreachable" in problems[0]
    assert f"RabbitMQ management API at 127.0.0.1:{closed} is unreachable" in problems[1]


async def test_missing_configuration_names_the_variable(ctl: Ctl, ctl_env: dict[str, str]) -> None:
    env = {k: v for k, v in ctl_env.items() if k != "BUSINESS_NUMBER_ID"}
    result = await ctl("status", env=env)
    assert result.code == 2
    assert result.out.startswith("configuration error: BUSINESS_NUMBER_ID")

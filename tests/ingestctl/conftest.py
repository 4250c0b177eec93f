"""Run ingestctl in-process against this test's database and vhost."""

from __future__ import annotations

import io
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aio_pika
import pytest

from ingestctl.cli import invoke
from shared.broker import Topology, declare
from tests.conftest import BUSINESS_NUMBER, Vhost


@dataclass
class Result:
    code: int
    out: str


Ctl = Callable[..., Awaitable[Result]]


@pytest.fixture
def ctl_env(database_url: str, amqp_url: str, vhost: Vhost) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "AMQP_URL": amqp_url,
        "BUSINESS_NUMBER_ID": BUSINESS_NUMBER,
        "RABBITMQ_MANAGEMENT_URL": vhost.endpoint.management_url,
    }


@pytest.fixture
def ctl(ctl_env: dict[str, str]) -> Ctl:
    async def run(*argv: str, env: dict[str, str] | None = None, answer: str = "") -> Result:
        out = io.StringIO()
        code = await invoke(list(argv), env or ctl_env, out=out, ask=lambda _: answer)
        return Result(code, out.getvalue())

    return run


@pytest.fixture
async def topology(amqp_url: str) -> Topology:
    """The topology declared in this test's vhost, as a starting service would."""
    connection = await aio_pika.connect(amqp_url)
    try:
        await declare(await connection.channel(), Topology())
    finally:
        await connection.close()
    return Topology()

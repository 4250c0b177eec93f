"""`ingestctl schema wait`: the init container that orders pods after the migrate Job."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from ingestctl.schema import shipped
from tests.conftest import _admin
from tests.ingestctl.conftest import Ctl
from tests.servers import free_port, with_database


@pytest.fixture
def empty_database_url(pg_admin_url: str) -> Iterator[str]:
    name = f"t_empty_{uuid.uuid4().hex[:10]}"
    conn = _admin(pg_admin_url)
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    yield with_database(pg_admin_url, name)
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()


async def test_a_migrated_database_is_current_at_once(ctl: Ctl) -> None:
    result = await ctl("schema", "wait", "--timeout", "5")
    assert result.code == 0
    assert result.out.strip() == "schema is current"


async def test_an_unmigrated_database_times_out_naming_what_is_pending(
    ctl: Ctl, empty_database_url: str
) -> None:
    result = await ctl("schema", "wait", "--timeout", "0", env={"DATABASE_URL": empty_database_url})
    assert result.code == 1
    assert "still pending: " + ", ".join(sorted(shipped())) in result.out
    assert "0001_core" in result.out


async def test_an_unreachable_database_is_waited_for_then_reported(ctl: Ctl) -> None:
    url = f"postgresql://u:p@127.0.0.1:{free_port()}/x"
    result = await ctl("schema", "wait", "--timeout", "0", env={"DATABASE_URL": url})
    assert result.code == 1
    assert "waiting for PostgreSQL" in result.out
    assert "Traceback" not in result.out

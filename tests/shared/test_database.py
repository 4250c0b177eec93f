"""The readiness ping every service shares."""

from shared.database import database_answers
from tests.servers import free_port, with_database


async def test_a_live_database_answers(database_url):
    assert await database_answers(database_url, within=2.0) is True


async def test_nothing_listening_is_not_ready():
    assert (
        await database_answers(f"postgresql://u:p@127.0.0.1:{free_port()}/x", within=1.0) is False
    )


async def test_a_refusing_server_is_not_ready_rather_than_a_crash(database_url):
    # The server answers, but the database does not exist: an error, not a connection loss.
    assert await database_answers(with_database(database_url, "no_such_db"), within=2.0) is False

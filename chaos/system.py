"""The whole system on this machine, on private servers the fault injector may kill.

PostgreSQL and RabbitMQ are throwaway servers of our own (tests/servers.py), never the shared
ones: stopping those would break everyone else's tests. The simulator serves from a thread of
this process; every service is a real `python -m services.<name>` process (tests/processes.py),
watched like Kubernetes would: one that exits is started again after a short delay, and every
exit we did not cause is counted and reported.

Adding a service to the run is one entry in `SERVICES`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

import psycopg2

from shared.migrate import apply as apply_migrations
from tests.processes import ServiceProcess
from tests.servers import LocalPostgres, LocalRabbit, with_database
from turnsim.server import running
from turnsim.simulator import Simulator

log = logging.getLogger("chaos")

SECRET = "chaos-webhook-secret"
NUMBER = "27600000000"
DATABASE = "turnio"


@dataclass(frozen=True)
class Wiring:
    """What a service's environment is made of."""

    database_url: str
    amqp_url: str
    turn_url: str
    token: str
    rate_limit: int
    rate_window: float
    start: datetime

    def common(self) -> dict[str, str]:
        return {
            "DATABASE_URL": self.database_url,
            "AMQP_URL": self.amqp_url,
            "BUSINESS_NUMBER_ID": NUMBER,
            "LOG_LEVEL": "INFO",
            "HOST": "127.0.0.1",
        }

    def turn(self) -> dict[str, str]:
        return {
            "TURNIO_BASE_URL": self.turn_url,
            "TURNIO_BEARER_TOKEN": self.token,
            "TURNIO_RATE_LIMIT": str(self.rate_limit),
            "TURNIO_RATE_WINDOW": str(self.rate_window),
            "TURNIO_REQUEST_TIMEOUT": "5",
            "LEASE_TTL": "3",
        }


def gateway_env(w: Wiring) -> dict[str, str]:
    return w.common() | {"TURNIO_WEBHOOK_SECRET": SECRET}


def writer_env(w: Wiring) -> dict[str, str]:
    # A short backoff ceiling so a restarted PostgreSQL is noticed within the run.
    return w.common() | {"WRITER_BACKOFF_MAX": "2"}


def message_puller_env(w: Wiring) -> dict[str, str]:
    return (
        w.common()
        | w.turn()
        | {
            "PULL_START_FROM": w.start.isoformat(),
            "PULL_SAFETY_LAG": "2",
            "PULL_OVERLAP": "60",
            "PULL_INTERVAL": "1",
            "PULL_MAX_WINDOW": str(12 * 3600),
            "PULL_PAGE_SIZE": "200",
            "PULL_ERROR_BACKOFF": "0.5",
        }
    )


def contact_puller_env(w: Wiring) -> dict[str, str]:
    return (
        w.common()
        | w.turn()
        | {
            "CONTACTS_START_FROM": w.start.isoformat(),
            "CONTACTS_SAFETY_LAG": "2",
            "CONTACTS_OVERLAP": "60",
            "CONTACTS_INTERVAL": "1",
            "CONTACTS_WINDOWS": "2",
            "CONTACTS_CONCURRENCY": "2",
            "CONTACTS_CURSOR_STAGGER": "0",
            "CONTACTS_PAGE_SIZE": "100",
            "CONTACTS_BACKFILL_POLL": "1",
            "CONTACTS_ERROR_BACKOFF": "0.5",
            "CONTACTS_FORBIDDEN_BACKOFF": "0.05",
        }
    )


# name -> (module, environment). The fault injector refers to services by these names.
SERVICES: dict[str, tuple[str, Callable[[Wiring], dict[str, str]]]] = {
    "gateway": ("services.webhook_gateway", gateway_env),
    "writer-1": ("services.db_writer", writer_env),
    "writer-2": ("services.db_writer", writer_env),
    "message_puller": ("services.message_puller", message_puller_env),
    "contact_puller": ("services.contact_puller", contact_puller_env),
}


@dataclass
class Supervised:
    name: str
    process: ServiceProcess
    expected_exit: bool = False  # we killed it: its exit is not news
    retired: bool = False  # stopped for good: not restarted
    restarts: int = 0
    crashes: list[int] = field(default_factory=list)  # exit codes we did not cause


class System:
    """Private servers + simulator + supervised services. Use as a context manager."""

    def __init__(self, sim: Simulator, start: datetime, *, restart_delay: float = 1.0) -> None:
        self.sim = sim
        self.start = start
        self.restart_delay = restart_delay
        self.postgres = LocalPostgres()
        self.rabbit = LocalRabbit(management=False)
        self.database_url = with_database(self.postgres.url, DATABASE)
        self.services: dict[str, Supervised] = {}
        self.turn_url = ""
        self._stack = contextlib.ExitStack()
        self._watch: asyncio.Task[None] | None = None

    def __enter__(self) -> System:
        try:
            self.postgres.start()
            self._stack.callback(self.postgres.destroy)
            self.rabbit.start()
            self._stack.callback(self.rabbit.destroy)
            conn = psycopg2.connect(self.postgres.url)
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{DATABASE}"')
            conn.close()
            apply_migrations(self.database_url)
            self.turn_url = self._stack.enter_context(running(self.sim))
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self._watch is not None:
            self._watch.cancel()
        for supervised in self.services.values():
            supervised.expected_exit = True
            supervised.process.kill()
        self._stack.close()

    @property
    def amqp_url(self) -> str:
        return self.rabbit.url

    @property
    def gateway_url(self) -> str:
        return self.services["gateway"].process.url

    def wiring(self) -> Wiring:
        config = self.sim.config
        return Wiring(
            self.database_url,
            self.amqp_url,
            self.turn_url,
            config.token,
            config.rate_limit,
            config.rate_window,
            self.start,
        )

    async def start_services(self, names: Iterator[str] | list[str] | None = None) -> None:
        wiring = self.wiring()
        for name in names or list(SERVICES):
            module, env = SERVICES[name]
            process = ServiceProcess(module, env(wiring) | {"POD_NAME": name})
            self.services[name] = Supervised(name, process.start())
        await asyncio.gather(*(s.process.ready(timeout=60) for s in self.services.values()))
        self._watch = asyncio.create_task(self._supervise())

    async def stop_services(self, names: list[str] | None = None) -> dict[str, int]:
        """SIGTERM the named services (default: all), one after the other; exit codes."""
        codes: dict[str, int] = {}
        for name in names or list(self.services):
            supervised = self.services[name]
            supervised.expected_exit = supervised.retired = True
            if supervised.process.proc is not None:
                codes[name] = await asyncio.to_thread(supervised.process.terminate, 30)
        return codes

    def kill(self, name: str) -> None:
        supervised = self.services[name]
        supervised.expected_exit = True
        supervised.process.kill()

    async def _supervise(self) -> None:
        while True:
            for supervised in self.services.values():
                proc = supervised.process.proc
                if supervised.retired or proc is None or proc.poll() is None:
                    continue
                if not supervised.expected_exit:
                    supervised.crashes.append(proc.returncode)
                    log.warning("%s exited %s on its own", supervised.name, proc.returncode)
                supervised.expected_exit = False
                supervised.process.proc = None
                asyncio.get_running_loop().call_later(self.restart_delay, self._restart, supervised)
            await asyncio.sleep(0.1)

    @staticmethod
    def _restart(supervised: Supervised) -> None:
        if supervised.retired:
            return
        supervised.restarts += 1
        supervised.process.start()

    def crashes(self) -> dict[str, list[int]]:
        return {name: s.crashes for name, s in self.services.items() if s.crashes}

    def logs(self) -> dict[str, str]:
        return {name: s.process.log_path for name, s in self.services.items()}

"""Real PostgreSQL and RabbitMQ for the tests: from the environment, Docker, or throwaway.

Order of preference (DESIGN.md): DATABASE_URL / AMQP_URL when set; else testcontainers when a
Docker engine answers; else throwaway servers from the Debian packages in a temp dir. Fault
tests always take throwaway servers of their own (`LocalPostgres`, `LocalRabbit`), because
they stop and restart them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import httpx

from tests.waiting import eventually_sync

PG_BIN = Path("/usr/lib/postgresql/15/bin")
RABBIT_BIN = Path("/usr/lib/rabbitmq/bin")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def docker_available() -> bool:
    try:
        import docker

        docker.from_env(timeout=2).ping()
        return True
    except Exception:
        return False


def _as_postgres_user(cmd: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root.
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


class LocalPostgres:
    """A throwaway PostgreSQL 15 cluster on a free port; can be stopped and started again."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="pgtest."))
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        self.data = self.dir / "data"
        subprocess.run(
            _as_postgres_user(
                [
                    str(PG_BIN / "initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ]
            ),
            check=True,
            capture_output=True,
        )

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        # fsync=off only matters if the machine itself dies; synchronous_commit stays on, so
        # a commit PostgreSQL confirmed survives an immediate stop (the crash tests rely on it).
        opts = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir} -c fsync=off "
            "-c full_page_writes=off -c max_connections=200"
        )
        subprocess.run(
            _as_postgres_user(
                [
                    str(PG_BIN / "pg_ctl"),
                    "-D",
                    str(self.data),
                    "-l",
                    str(self.dir / "log"),
                    "-w",
                    "-o",
                    opts,
                    "start",
                ]
            ),
            check=True,
            capture_output=True,
        )

    def stop(self, mode: str = "immediate") -> None:
        subprocess.run(
            _as_postgres_user([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "stop"]),
            check=False,
            capture_output=True,
        )

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class LocalRabbit:
    """A throwaway RabbitMQ node (with management) in a temp dir; can be stopped and restarted.

    State (queues, persistent messages) survives stop/start because the mnesia dir is kept.
    """

    def __init__(self, *, management: bool = True) -> None:
        self.port = free_port()
        self.dist_port = free_port()
        self.management_port = free_port() if management else None
        self.dir = Path(tempfile.mkdtemp(prefix="rmqtest."))
        self.node = f"rtest{self.port}@localhost"
        conf = [f"listeners.tcp.default = 127.0.0.1:{self.port}"]
        plugins = "[]."
        if self.management_port:
            conf += [
                "management.tcp.ip = 127.0.0.1",
                f"management.tcp.port = {self.management_port}",
            ]
            plugins = "[rabbitmq_management]."
        (self.dir / "rabbitmq.conf").write_text("\n".join(conf) + "\n")
        (self.dir / "enabled_plugins").write_text(plugins + "\n")
        (self.dir / "env.conf").write_text("")
        self.env = {
            **os.environ,
            "HOME": str(self.dir),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.dir / "log"),
            "RABBITMQ_PID_FILE": str(self.dir / "pid"),
            "RABBITMQ_CONFIG_FILE": str(self.dir / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.dir / "enabled_plugins"),
            "RABBITMQ_CONF_ENV_FILE": str(self.dir / "env.conf"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    @property
    def management_url(self) -> str:
        return f"http://guest:guest@127.0.0.1:{self.management_port}/"

    def start(self, timeout: float = 60.0) -> None:
        subprocess.run(
            [str(RABBIT_BIN / "rabbitmq-server"), "-detached"],
            env=self.env,
            check=True,
            capture_output=True,
        )
        eventually_sync(
            lambda: port_open(self.port),
            timeout=timeout,
            interval=0.1,
            what=f"RabbitMQ on port {self.port}",
        )
        if self.management_port:
            eventually_sync(
                lambda: port_open(self.management_port or 0),
                timeout=timeout,
                interval=0.1,
                what="RabbitMQ management API",
            )

    def _pid(self) -> int | None:
        try:
            return int((self.dir / "pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def stop(self) -> None:
        """Kill the node at once (as a crash or a lost machine would)."""
        pid = self._pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        eventually_sync(
            lambda: not port_open(self.port), timeout=20, interval=0.05, what="RabbitMQ port closed"
        )
        (self.dir / "pid").unlink(missing_ok=True)

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@dataclass
class RabbitEndpoint:
    amqp_url: str  # URL of the default vhost
    management_url: str  # http://user:pass@host:port/

    def _client(self) -> httpx.Client:
        parts = urlsplit(self.management_url)
        base = urlunsplit((parts.scheme, f"{parts.hostname}:{parts.port}", "/api/", "", ""))
        return httpx.Client(
            base_url=base, auth=(parts.username or "guest", parts.password or "guest"), timeout=10
        )

    def create_vhost(self, name: str) -> str:
        """Create a vhost with full rights for the URL's user; return its AMQP URL."""
        user = urlsplit(self.amqp_url).username or "guest"
        with self._client() as client:
            client.put(f"vhosts/{quote(name, safe='')}").raise_for_status()
            client.put(
                f"permissions/{quote(name, safe='')}/{quote(user, safe='')}",
                json={"configure": ".*", "write": ".*", "read": ".*"},
            ).raise_for_status()
        parts = urlsplit(self.amqp_url)
        return urlunsplit((parts.scheme, parts.netloc, "/" + quote(name, safe=""), "", ""))

    def delete_vhost(self, name: str) -> None:
        with self._client() as client:
            client.delete(f"vhosts/{quote(name, safe='')}")

    def queue(self, vhost: str, name: str) -> dict[str, object]:
        with self._client() as client:
            response = client.get(f"queues/{quote(vhost, safe='')}/{quote(name, safe='')}")
            response.raise_for_status()
            return dict(response.json())


def management_url_for(amqp_url: str) -> str:
    explicit = os.environ.get("RABBITMQ_MANAGEMENT_URL")
    if explicit:
        return explicit
    parts = urlsplit(amqp_url)
    user, password = parts.username or "guest", parts.password or "guest"
    return f"http://{user}:{password}@{parts.hostname}:15672/"


@contextlib.contextmanager
def rabbit_endpoint() -> Iterator[RabbitEndpoint]:
    url = os.environ.get("AMQP_URL")
    if url:
        yield RabbitEndpoint(url, management_url_for(url))
        return
    if docker_available():
        from testcontainers.core.container import DockerContainer

        with DockerContainer("rabbitmq:3.10-management").with_exposed_ports(5672, 15672) as c:
            host = c.get_container_host_ip()
            amqp = f"amqp://guest:guest@{host}:{c.get_exposed_port(5672)}/"
            mgmt = f"http://guest:guest@{host}:{c.get_exposed_port(15672)}/"
            endpoint = RabbitEndpoint(amqp, mgmt)
            eventually_sync(
                lambda: _answers(endpoint), timeout=90, interval=0.5, what="RabbitMQ container"
            )
            yield endpoint
        return
    node = LocalRabbit()
    node.start()
    try:
        yield RabbitEndpoint(node.url, node.management_url)
    finally:
        node.destroy()


def _answers(endpoint: RabbitEndpoint) -> bool:
    try:
        with endpoint._client() as client:
            return client.get("overview").status_code == 200
    except httpx.HTTPError:
        return False


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """Yield an admin URL of a server the tests may create databases on."""
    url = os.environ.get("DATABASE_URL")
    if url:
        yield url
        return
    if docker_available():
        from testcontainers.core.container import DockerContainer

        container = DockerContainer("postgres:15").with_env("POSTGRES_PASSWORD", "postgres")
        with container.with_exposed_ports(5432) as c:
            admin = (
                f"postgresql://postgres:postgres@{c.get_container_host_ip()}:"
                f"{c.get_exposed_port(5432)}/postgres"
            )
            yield admin
        return
    server = LocalPostgres()
    server.start()
    try:
        yield server.url
    finally:
        server.destroy()


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, ""))


def wait_until_down(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while port_open(port) and time.monotonic() < deadline:
        time.sleep(0.05)

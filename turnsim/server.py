"""Serving the simulator from a background thread, for tests, the demo and benchmarks."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from starlette.types import ASGIApp

from turnsim.app import create_app
from turnsim.simulator import Simulator


class _Server(uvicorn.Server):
    """uvicorn's server, telling a waiting thread when it listens (no polling of the port)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.listening = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.listening.set()

    def serve_in_thread(self, sockets: list[socket.socket]) -> None:
        # uvicorn leaves signals alone off the main thread; the embedding process owns them.
        try:
            self.run(sockets=sockets)
        finally:
            self.listening.set()  # also when startup failed: the waiter must not hang


@contextmanager
def running(
    sim: Simulator, port: int | None = None, *, host: str = "127.0.0.1", timeout: float = 10.0
) -> Iterator[str]:
    """Serve `sim` on host:port (a free port when None); yields the base URL."""
    with serving(create_app(sim), port, host=host, timeout=timeout) as url:
        yield url


@contextmanager
def serving(
    app: ASGIApp, port: int | None = None, *, host: str = "127.0.0.1", timeout: float = 10.0
) -> Iterator[str]:
    """Serve any ASGI app from a background thread (also used for test webhook receivers)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Binding here, not in uvicorn, gives the free port before the thread starts: no race.
    sock.bind((host, port or 0))
    bound = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
    server = _Server(config)
    thread = threading.Thread(
        target=server.serve_in_thread, args=([sock],), name=f"turnsim:{bound}", daemon=True
    )
    thread.start()
    try:
        if not server.listening.wait(timeout) or not server.started:
            raise RuntimeError(f"the server did not start on {host}:{bound}")
        yield f"http://{host}:{bound}"
    finally:
        server.should_exit = True
        thread.join(timeout)
        sock.close()

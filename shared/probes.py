"""/health, /ready and /metrics for every service.

/health answers 200 while the event loop runs (liveness). /ready answers 200 only when the
service's `ready()` says its dependencies are connected and it is doing its work; Kubernetes
keeps traffic (and rollouts) away until then. /metrics is prometheus-client's text format.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Generator

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

ReadyCheck = Callable[[], dict[str, bool]]


def probe_routes(ready: ReadyCheck, registry: CollectorRegistry = REGISTRY) -> list[Route]:
    async def health(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readiness(_: Request) -> Response:
        checks = ready()
        ok = all(checks.values())
        return JSONResponse(
            {"status": "ready" if ok else "not ready", "checks": checks},
            status_code=200 if ok else 503,
        )

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return [
        Route("/health", health, methods=["GET"]),
        Route("/ready", readiness, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]


class _EmbeddedServer(uvicorn.Server):
    """uvicorn inside a service's own event loop: the service owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class ProbeServer:
    """Serves the probe routes on `port` until `stop()`."""

    def __init__(self, ready: ReadyCheck, host: str, port: int) -> None:
        app = Starlette(routes=probe_routes(ready))
        config = uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False)
        self._server = _EmbeddedServer(config)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._server.serve(), name="probe-server")
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises why it could not start (e.g. port in use)
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            await self._task

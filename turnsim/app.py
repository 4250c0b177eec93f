"""The simulator over HTTP: Turn's Data Export endpoints plus /_sim control and truth.

Order of checks on /v1 (each answer carries the X-Ratelimit-* headers):
1. `Authorization: Bearer <token>` -> 401; 2. `Accept` must name `application/vnd.v1+json`
-> 406 (Turn gates its vendor features on it; the exact status is unknown, 406 is the HTTP one);
these two do not count against the rate limit. 3. The sliding window -> 429 + Retry-After.
4. Added latency. 5. Injected 5xx (error_rate). 6. The request itself (400/403/404/500/200).
/_sim endpoints need no token and are not rate-limited.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from turnsim.simulator import ApiError, Simulator

VENDOR_TYPE = "application/vnd.v1+json"
JSON = "application/json"
FAULT_TITLES = {500: "Internal server error", 502: "Bad gateway", 503: "Service unavailable"}

Handler = Callable[[Request], Awaitable[bytes]]


def _accepts_vendor_type(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return any(part.split(";")[0].strip() == VENDOR_TYPE for part in accept.split(","))


def create_app(sim: Simulator) -> Starlette:
    async def guarded(request: Request, handler: Handler) -> Response:
        monotonic, wall = time.monotonic(), time.time()
        sim.tick()
        response = await _answer(request, handler)
        client = request.headers.get("user-agent", "")
        sim.record(monotonic, wall, client, request.method, request.url.path, response.status_code)
        return response

    async def _answer(request: Request, handler: Handler) -> Response:
        config = sim.config
        if request.headers.get("authorization", "") != f"Bearer {config.token}":
            return _error(ApiError(401, "Unauthorized", "invalid bearer token"), sim.peek_rate())
        if not _accepts_vendor_type(request):
            error = ApiError(406, "Not acceptable", f"send Accept: {VENDOR_TYPE}")
            return _error(error, sim.peek_rate())
        decision = sim.admit()
        if not decision.allowed:
            return _error(sim.rate_limited(), decision.headers)
        if config.latency > 0:
            await asyncio.sleep(config.latency)
        fault = sim.draw_fault()
        if fault is not None:
            if fault == 502:  # what a proxy in front says: not JSON
                body = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
                return Response(body, 502, decision.headers, media_type="text/html")
            return _error(ApiError(fault, FAULT_TITLES[fault]), decision.headers)
        try:
            body = await handler(request)
        except ApiError as error:
            return _error(error, decision.headers)
        return Response(body, 200, decision.headers, media_type=JSON)

    async def create_cursor(request: Request) -> bytes:
        try:
            payload = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            raise ApiError(400, "Invalid request", "the body is not JSON") from None
        token, expires_at = sim.create_cursor(request.path_params["kind"], payload)
        return orjson.dumps({"cursor": token, "expires_at": expires_at})

    async def read_page(request: Request) -> bytes:
        return sim.read_page(request.path_params["kind"], request.path_params["cursor"])

    async def post_cursor(request: Request) -> Response:
        return await guarded(request, create_cursor)

    async def get_page(request: Request) -> Response:
        return await guarded(request, read_page)

    async def stats(request: Request) -> Response:
        return Response(orjson.dumps(sim.stats().as_dict()), media_type=JSON)

    async def config(request: Request) -> Response:
        if request.method == "POST":
            try:
                changes = orjson.loads(await request.body())
                if not isinstance(changes, dict):
                    raise ValueError("send a JSON object of SimConfig fields")
                sim.configure(**changes)
            except (ValueError, TypeError) as exc:
                return Response(orjson.dumps({"error": str(exc)}), 400, media_type=JSON)
        return Response(orjson.dumps(sim.config.public()), media_type=JSON)

    async def truth(request: Request) -> Response:
        sim.tick()
        return Response(orjson.dumps(sim.dataset.counts()), media_type=JSON)

    return Starlette(
        routes=[
            Route("/v1/data/{kind}/cursor", post_cursor, methods=["POST"]),
            Route("/v1/data/{kind}/cursor/{cursor}", get_page, methods=["GET"]),
            Route("/_sim/stats", stats, methods=["GET"]),
            Route("/_sim/config", config, methods=["GET", "POST"]),
            Route("/_sim/truth", truth, methods=["GET"]),
        ]
    )


def _error(error: ApiError, headers: dict[str, str]) -> Response:
    return Response(error.body(), error.status, headers, media_type=JSON)

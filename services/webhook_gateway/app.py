"""Wiring: the Starlette app, its publisher's lifecycle, and how uvicorn serves it.

POST /webhooks/turn is a plain ASGI endpoint rather than a Request/Response function: it is
the only hot path, and reading the body and a handful of headers straight from the ASGI
messages spares a Request, a Headers mapping and a Response object per webhook.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import secrets
import signal
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from services.webhook_gateway import metrics
from services.webhook_gateway.settings import GatewaySettings
from services.webhook_gateway.signature import SignatureVerifier
from shared.broker import (
    H_BUSINESS_NUMBER,
    H_DELIVERY_ID,
    H_RECEIVED_AT,
    H_SOURCE,
    H_SUBSCRIPTION,
    H_TURN_EVENT,
    H_TURN_FALLBACK_CHANNEL,
    H_WHATSAPP_ID,
    Publisher,
    Topology,
    utc_now_iso,
    webhook_route,
)
from shared.errors import RetryableError
from shared.logs import Throttle
from shared.probes import probe_routes

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/webhooks/turn"
# Turn headers passed on as they came, under their own (lower-case) names.

_TEXT = (b"content-type", b"text/plain; charset=utf-8")


class DeliveryIds:
    """Unique ids without a getrandom() syscall per request: a random per-process prefix and
    a counter. Two processes share a prefix with probability 2**-64."""

    def __init__(self) -> None:
        self._prefix = secrets.token_hex(8)
        self._counter = itertools.count(1)

    def next(self) -> str:
        return f"{self._prefix}{next(self._counter):016x}"


class WebhookEndpoint:
    """Raw body in, signature checked, raw body published with a confirm, then the answer."""

    def __init__(self, settings: GatewaySettings, publisher: Publisher) -> None:
        self._verifier = SignatureVerifier(settings.webhook_secrets)
        self._ids = DeliveryIds()
        self._publisher = publisher
        self._limit = settings.max_body_bytes
        self._business_number = settings.common.business_number_id
        self._retry_after = (b"retry-after", str(settings.retry_after_seconds).encode())
        # Every refusal is counted in metrics; the log gets one line per kind per interval.
        self._quiet = Throttle(interval=10.0)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        received_at = utc_now_iso()
        signature = subscription = whatsapp_id = turn_event = fallback = None
        declared_length: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"x-turn-hook-signature":
                signature = value
            elif name == b"content-length":
                declared_length = value
            elif name == b"x-turn-hook-subscription":
                subscription = value
            elif name == b"x-whatsapp-id":
                whatsapp_id = value
            elif name == b"x-turn-event":
                turn_event = value
            elif name == b"x-turn-fallback-channel":
                fallback = value

        # Refuse an announced oversize body before reading a byte of it.
        announced = int(declared_length) if declared_length and declared_length.isdigit() else 0
        if announced > self._limit:
            await self._too_large(send, announced)
            return

        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away; there is nobody to answer
            chunk = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > self._limit:  # chunked, or a Content-Length that lied
                    await self._too_large(send, size)
                    return
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)  # no copy when the body came in one piece

        reason = self._verifier.failure(body, signature)
        if reason is not None:
            metrics.UNAUTHORIZED.inc()
            metrics.SIGNATURE_FAILURE[reason].inc()
            held = self._quiet.allow(f"signature:{reason}")
            if held is not None:
                log.warning(
                    "webhook refused: signature %s",
                    reason,
                    extra={
                        "reason": reason,
                        "subscription": _text(subscription),
                        "body_bytes": size,
                        "client": _client(scope),
                        "suppressed_since_last": held,
                    },
                )
            await _answer(send, 401, b"invalid signature\n")
            return

        metrics.BODY_BYTES.observe(size)
        delivery_id = self._ids.next()
        subscription_name = _text(subscription) or ""
        headers: dict[str, Any] = {
            H_SOURCE: "webhook",
            H_SUBSCRIPTION: subscription_name,
            H_RECEIVED_AT: received_at,
            H_DELIVERY_ID: delivery_id,
            H_BUSINESS_NUMBER: self._business_number,
        }
        if whatsapp_id is not None:
            headers[H_WHATSAPP_ID] = _text(whatsapp_id)
        if turn_event is not None:
            headers[H_TURN_EVENT] = _text(turn_event)
        if fallback is not None:
            headers[H_TURN_FALLBACK_CHANNEL] = _text(fallback)

        started = time.perf_counter()
        try:
            await self._publisher.publish(
                body, webhook_route(subscription_name), headers, message_id=delivery_id
            )
        except RetryableError as exc:
            metrics.PUBLISH_SECONDS.observe(time.perf_counter() - started)
            metrics.UNAVAILABLE.inc()
            held = self._quiet.allow("unavailable")
            if held is not None:
                log.warning(
                    "webhook not accepted: %s",
                    exc,
                    extra={
                        "delivery_id": delivery_id,
                        "subscription": subscription_name,
                        "suppressed_since_last": held,
                    },
                )
            await _answer(send, 503, b"broker unavailable, retry later\n", self._retry_after)
            return
        metrics.PUBLISH_SECONDS.observe(time.perf_counter() - started)
        await _answer(send, 200, b"")
        metrics.ACCEPTED.inc()

    async def _too_large(self, send: Send, size: int) -> None:
        metrics.TOO_LARGE.inc()
        held = self._quiet.allow("too_large")
        if held is not None:
            log.warning(
                "webhook refused: body too large",
                extra={"body_bytes": size, "suppressed_since_last": held},
            )
        await _answer(send, 413, b"body too large\n")


async def _answer(send: Send, status: int, body: bytes, *extra: tuple[bytes, bytes]) -> None:
    headers = [(b"content-length", str(len(body)).encode()), *extra]
    if body:
        headers.append(_TEXT)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _text(value: bytes | None) -> str | None:
    # HTTP header bytes are latin-1 by definition; this never fails.
    return None if value is None else value.decode("latin-1")


def _client(scope: Scope) -> str | None:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else None


class Gateway(Starlette):
    """Starlette, with the webhook path dispatched straight to its endpoint.

    Every other route goes through Starlette's middleware and router as usual; the webhook,
    which is nearly all the traffic, skips the two exception middlewares and the route scan.
    Its endpoint answers every outcome itself, and an unexpected exception still reaches
    uvicorn, which logs it and answers 500.
    """

    def __init__(self, webhook: WebhookEndpoint, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.webhook = webhook

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == WEBHOOK_PATH and scope["method"] == "POST":
            await self.webhook(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_app(settings: GatewaySettings) -> Starlette:
    publisher = Publisher(
        settings.common.amqp_url,
        Topology(prefix=settings.common.queue_prefix),
        confirm_timeout=settings.publish_confirm_timeout,
        name="webhook-gateway",
    )

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        # Connecting happens in the background: the gateway serves /health at once and
        # says not-ready (and answers webhooks 503) until the broker is there.
        await publisher.start()
        log.info("webhook gateway started", extra={"settings": repr(settings)})
        try:
            yield
        finally:
            await publisher.close()
            log.info("webhook gateway stopped")

    webhook = WebhookEndpoint(settings, publisher)
    routes = [
        # Reached only by other methods (405): Gateway.__call__ takes the POSTs first.
        Route(WEBHOOK_PATH, webhook, methods=["POST"]),
        *probe_routes(lambda: {"broker": publisher.connected}),
    ]
    app = Gateway(webhook, routes=routes, lifespan=lifespan)
    app.state.publisher = publisher
    return app


def server_options(host: str, port: int, graceful_seconds: float) -> dict[str, Any]:
    """How uvicorn serves the gateway (also used for the benchmark's ceiling app)."""
    return {
        "host": host,
        "port": port,
        "loop": "uvloop",
        "http": "httptools",
        "lifespan": "on",
        "log_config": None,  # keep our JSON lines
        "access_log": False,
        "server_header": False,
        # On SIGTERM uvicorn stops accepting, lets in-flight webhooks finish their publish for
        # up to this long, then runs the lifespan shutdown (closing the publisher).
        "timeout_graceful_shutdown": graceful_seconds,
    }


class _Server(uvicorn.Server):
    """uvicorn, minus re-raising SIGTERM after the graceful shutdown it triggered.

    uvicorn re-raises the signal once it has shut down, so the process would die of SIGTERM
    (exit -15) even though every in-flight webhook was answered and the publisher closed. A
    shutdown that finished cleanly exits 0.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        handled = (signal.SIGINT, signal.SIGTERM)
        original = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)


def serve(app: ASGIApp, options: dict[str, Any]) -> None:
    """Serve until SIGTERM/SIGINT; exit non-zero if the server could not start."""
    server = _Server(uvicorn.Config(app, **options))
    server.run()
    if not server.started:
        raise SystemExit(3)  # uvicorn's STARTUP_FAILURE, e.g. the port is taken


def run(settings: GatewaySettings) -> None:
    options = server_options(settings.host, settings.port, settings.graceful_shutdown_seconds)
    serve(create_app(settings), options)

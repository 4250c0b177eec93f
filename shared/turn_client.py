"""Turn's Data Export API over httpx, every request drawn from the shared rate budget.

    POST /v1/data/<kind>/cursor {from, until, ordering, page_size} -> {cursor, expires_at}
    GET  /v1/data/<kind>/cursor/<cursor> -> {data: [...], paging: {next} | {} | null}

Every request first takes a grant from the budget, and every answer's X-Ratelimit-* headers
are fed back into it. Turn's answers become this project's error categories here, at the edge:

    429            -> Retry-After recorded in the budget (blocks every puller), then retried
    5xx, transport -> retried with backoff; still failing -> TurnUnavailable (re-create cursor)
    400 expired    -> CursorExpired (re-create the cursor from the last seen time)
    400 other      -> TurnRejected          401 -> TurnUnauthorized
    403            -> TurnForbidden         404 -> TurnNotFound (no Data Export on this host)
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

from shared.errors import PoisonError, RetryableError
from shared.rate_budget import RateBudget

log = logging.getLogger(__name__)

VENDOR_MEDIA_TYPE = "application/vnd.v1+json"
DEFAULT_BASE_URL = "https://whatsapp.turn.io"
KINDS = ("messages", "contacts")


class TurnUnavailable(RetryableError):
    """Turn answered 5xx or could not be reached, several times in a row."""


class CursorExpired(RetryableError):
    """The cursor outlived its lifetime; create a new one from the last seen time."""


class RateLimited(RetryableError):
    """Turn kept answering 429 although the budget was obeyed."""


class TurnRejected(PoisonError):
    """Turn refused the request as it is; sending it again will not help."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"HTTP {status}: {reason}")
        self.status = status


class TurnUnauthorized(TurnRejected):
    """401: the bearer token is wrong or expired."""


class TurnForbidden(TurnRejected):
    """403: no permission (or, reportedly, too many cursors created at once)."""


class TurnNotFound(TurnRejected):
    """404: the Data Export API is not available for this account or host."""


@dataclass(frozen=True)
class Page:
    items: list[Any]
    next_cursor: str | None  # None: this was the last page


def iso_z(moment: datetime) -> str:
    """The strict form Turn accepts: `2021-08-02T01:55:00.272Z` (UTC, milliseconds)."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: Turn needs an explicit UTC time")
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def user_agent(service: str, instance: str) -> str:
    return f"turnio-ingest/{service} ({instance})"


# Beyond these a rate header is garbled, not a figure: 1e10 s is the year 2286 as an epoch and
# three centuries as a wait, and a count must fit rate_budget's PostgreSQL integer. Taken at
# face value they overflow datetime, int() or the database, so they count as absent.
_MAX_SECONDS = 1e10
_MAX_COUNT = 2**31 - 1


def _int_header(headers: httpx.Headers, name: str) -> int | None:
    value = _float_header(headers, name)
    if value is None or abs(value) > _MAX_COUNT:
        return None
    return int(value)


def _float_header(headers: httpx.Headers, name: str) -> float | None:
    try:
        value = float(headers[name])
    except (KeyError, ValueError):
        return None
    return value if math.isfinite(value) and abs(value) <= _MAX_SECONDS else None


def retry_after_seconds(headers: httpx.Headers, now: float | None = None) -> float:
    """Retry-After, else the window's reset, else a second."""
    value = _float_header(headers, "retry-after")
    if value is not None:
        return max(value, 0.0)
    reset = _float_header(headers, "x-ratelimit-reset")
    if reset is not None:
        return max(reset - (time.time() if now is None else now), 0.0)
    return 1.0


def next_cursor(body: Any) -> str | None:
    """paging.next, treating a missing, null or empty paging (or next) as the end."""
    if not isinstance(body, dict):
        return None
    for holder in ("paging", "links"):
        section = body.get(holder)
        if isinstance(section, dict):
            value = section.get("next")
            if isinstance(value, str) and value:
                return value
    return None


def _is_cursor_expired(response: httpx.Response) -> bool:
    text = response.text.lower()
    return "cursor" in text and "expired" in text


class TurnClient:
    def __init__(
        self,
        base_url: str,
        token: str,
        budget: RateBudget,
        *,
        agent: str,
        timeout: float = 30.0,
        attempts: int = 4,
        backoff: float = 0.2,
        max_throttled: int = 10,
        on_response: Callable[[str], None] = lambda status: None,
        on_throttled: Callable[[float], None] = lambda retry_after: None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._budget = budget
        self._attempts = attempts
        self._backoff = backoff
        self._max_throttled = max_throttled
        self._on_response = on_response
        self._on_throttled = on_throttled
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": VENDOR_MEDIA_TYPE,
                "User-Agent": agent,
            },
            timeout=timeout,
            transport=transport,
        )

    async def close(self) -> None:
        await self._http.aclose()

    async def create_cursor(
        self,
        kind: str,
        start: datetime,
        until: datetime,
        *,
        page_size: int | None = None,
        ordering: str = "asc",
    ) -> str:
        if kind not in KINDS:
            raise ValueError(f"unknown export kind {kind!r}")
        if until <= start:
            raise ValueError("until must be after from")
        payload: dict[str, Any] = {
            "from": iso_z(start),
            "until": iso_z(until),
            "ordering": ordering,
        }
        if page_size is not None:
            payload["page_size"] = page_size
        response = await self._send(
            "POST",
            f"/v1/data/{kind}/cursor",
            content=orjson.dumps(payload),
            headers={"Content-Type": "application/json"},
        )
        body = self._json(response)
        cursor = body.get("cursor") if isinstance(body, dict) else None
        if not isinstance(cursor, str) or not cursor:
            raise TurnUnavailable(f"cursor answer without a cursor: {response.text[:200]!r}")
        return cursor

    async def page(self, kind: str, cursor: str) -> Page:
        response = await self._send("GET", f"/v1/data/{kind}/cursor/{cursor}")
        body = self._json(response)
        items = body.get("data") if isinstance(body, dict) else None
        if items is None:
            items = []
        if not isinstance(items, list):
            raise TurnUnavailable("page answer whose data is not a list")
        return Page(items, next_cursor(body))

    @staticmethod
    def _json(response: httpx.Response) -> Any:
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            raise TurnUnavailable(f"answer is not JSON: {response.text[:200]!r}") from exc

    async def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        failures = 0
        throttled = 0
        while True:
            await self._budget.acquire()
            try:
                response = await self._http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                self._on_response("error")
                problem = f"{type(exc).__name__}: {exc}"
            else:
                self._on_response(str(response.status_code))
                await self._feed_back(response.headers)
                status = response.status_code
                if status < 300:
                    return response
                if status == 429:
                    throttled += 1
                    wait = retry_after_seconds(response.headers)
                    self._on_throttled(wait)
                    await self._budget.block(wait)
                    log.warning("Turn answered 429", extra={"retry_after": wait, "path": path})
                    if throttled > self._max_throttled:
                        raise RateLimited(f"{throttled} answers 429 in a row")
                    continue
                if status < 500:
                    raise self._rejected(response)
                problem = f"HTTP {status}"
            failures += 1
            if failures >= self._attempts:
                raise TurnUnavailable(f"{method} {path.split('/cursor')[0]}: {problem}")
            delay = self._backoff * 2 ** (failures - 1) * random.uniform(0.5, 1.5)
            log.info("Turn request failed, retrying", extra={"problem": problem, "delay": delay})
            await asyncio.sleep(min(delay, 10.0))

    @staticmethod
    def _rejected(response: httpx.Response) -> Exception:
        status = response.status_code
        reason = response.text[:300]
        if status == 400 and _is_cursor_expired(response):
            return CursorExpired(reason)
        if status == 401:
            return TurnUnauthorized(status, reason)
        if status == 403:
            return TurnForbidden(status, reason)
        if status == 404:
            return TurnNotFound(status, reason)
        return TurnRejected(status, reason)

    async def _feed_back(self, headers: httpx.Headers) -> None:
        await self._budget.observe(
            limit=_int_header(headers, "x-ratelimit-limit"),
            remaining=_int_header(headers, "x-ratelimit-remaining"),
            reset=_float_header(headers, "x-ratelimit-reset"),
        )

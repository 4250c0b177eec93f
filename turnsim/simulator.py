"""The simulator's state: cursors, the rate-limit window, fault draws, counters, request log.

Protocol logic lives here, free of HTTP, so app.py stays a thin translation and tests can
drive the state directly. Every method is thread-safe: the server thread and a test share it.

Cursor model: POST creates a cursor for `[from, until)` frozen at its creation time (items
added or becoming visible later are not in it; see dataset.py). Each page's `next` is a new
cursor continuing after the last item served; reading the same cursor twice gives the same page
and the same `next` (so a retried GET after a 5xx is harmless). Every `next` cursor expires with
the cursor it came from, `cursor_ttl` seconds after the POST. The last page's `paging` rotates
through `null`, `{}` and `{"next": null}`, all seen from Turn.
"""

from __future__ import annotations

import math
import random
import re
import secrets
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from turnsim.config import SimConfig
from turnsim.dataset import KINDS, Dataset, micros
from turnsim.index import Key, LateModel
from turnsim.payloads import iso

# Turn is "pedantic" about timestamps [OBS S26]: full date and time, an explicit zone.
STRICT_ISO = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})",
)
LAST_PAGING: tuple[Any, ...] = (None, {}, {"next": None})


class ApiError(Exception):
    """An answer other than 200, in Turn's error body shape."""

    def __init__(self, status: int, title: str, details: str = "") -> None:
        super().__init__(f"{status} {title}: {details}")
        self.status = status
        self.title = title
        self.details = details

    def body(self) -> bytes:
        error = {"code": self.status, "title": self.title, "details": self.details}
        return orjson.dumps({"errors": [error]})


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    headers: dict[str, str]


@dataclass(frozen=True)
class LogEntry:
    monotonic: float
    wall: float
    client: str  # User-Agent
    method: str
    path: str
    status: int


@dataclass(frozen=True)
class Stats:
    requests: int
    by_status: dict[int, int]
    rate_limited: int
    injected_5xx: int
    wide_window_5xx: int
    forbidden_403: int
    cursors_created: dict[str, int]
    cursors_expired: int
    pages_served: dict[str, int]
    items_served: dict[str, int]
    arrivals: int

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.__dict__,
            "by_status": {str(code): n for code, n in sorted(self.by_status.items())},
        }


@dataclass
class _Cursor:
    kind: str
    lo: int  # microseconds, inclusive
    hi: int  # microseconds, exclusive
    ascending: bool
    size: int
    as_of: float  # wall time the snapshot was taken
    expires: float  # monotonic
    serial: int
    after: Key | None = None
    next_token: str | None = field(default=None, compare=False)


def parse_time(value: Any, name: str) -> datetime:
    if not isinstance(value, str) or not STRICT_ISO.fullmatch(value):
        raise ApiError(
            400,
            "Invalid timestamp",
            f"`{name}` must be an ISO-8601 datetime with a timezone, got {value!r}",
        )
    try:
        return datetime.fromisoformat(value)
    except ValueError as exc:
        raise ApiError(400, "Invalid timestamp", f"`{name}`: {exc}") from None


class Simulator:
    def __init__(self, dataset: Dataset, config: SimConfig | None = None) -> None:
        self.dataset = dataset
        self._config = config or SimConfig()
        self._config.check()
        self._lock = threading.RLock()
        self._cursors: dict[str, _Cursor] = {}
        self._expired: set[str] = set()
        self._window: deque[float] = deque()
        self._contact_creations: deque[float] = deque()
        self._faults = random.Random(self._config.seed)
        self._serial = 0
        self._log: list[LogEntry] = []
        self._by_status: Counter[int] = Counter()
        self._counts: Counter[str] = Counter()
        self._arrival_origin = time.time()
        self._arrived = 0
        self._apply_late(self._config, None)

    # -- configuration -----------------------------------------------------------------------

    @property
    def config(self) -> SimConfig:
        return self._config

    def configure(self, **changes: Any) -> SimConfig:
        with self._lock:
            old, new = self._config, self._config.changed(**changes)
            self._config = new
            if new.seed != old.seed:
                self._faults = random.Random(new.seed)
            if new.arrival_rate != old.arrival_rate:
                self.tick()
                self._arrival_origin, self._arrived = time.time(), 0
            self._apply_late(new, old)
            return new

    def _apply_late(self, new: SimConfig, old: SimConfig | None) -> None:
        if old is None or (new.late_share, new.late_delay) != (old.late_share, old.late_delay):
            self.dataset.set_late(LateModel(new.late_share, new.late_delay, since=time.time()))

    # -- time passing ------------------------------------------------------------------------

    def tick(self, now: float | None = None) -> int:
        """Materialise the messages that arrived (arrival_rate) by `now`; returns how many."""
        now = time.time() if now is None else now
        with self._lock:
            rate = self._config.arrival_rate
            if rate <= 0:
                return 0
            due = int((now - self._arrival_origin) * rate)
            for k in range(self._arrived, due):
                self.dataset.add_message(at=self._arrival_origin + (k + 1) / rate, now=now)
            added = max(0, due - self._arrived)
            self._arrived = max(self._arrived, due)
            self._counts["arrivals"] += added
            return added

    # -- rate limit --------------------------------------------------------------------------

    def admit(self) -> RateDecision:
        """Count one request against the sliding window, or refuse it (429)."""
        return self._rate(count=True)

    def peek_rate(self) -> dict[str, str]:
        """The rate headers without counting a request (for 401/406 answers)."""
        return self._rate(count=False).headers

    def _rate(self, *, count: bool) -> RateDecision:
        now, wall = time.monotonic(), time.time()
        with self._lock:
            cfg = self._config
            window = self._window
            while window and window[0] <= now - cfg.rate_window:
                window.popleft()
            allowed = len(window) < cfg.rate_limit
            if allowed and count:
                window.append(now)
            # The window "resets" (a call is freed) when its oldest call leaves it.
            frees_in = window[0] + cfg.rate_window - now if window else 0.0
            headers = {
                "X-Ratelimit-Bucket": cfg.bucket,
                "X-Ratelimit-Limit": str(cfg.rate_limit),
                "X-Ratelimit-Remaining": str(max(0, cfg.rate_limit - len(window))),
                "X-Ratelimit-Reset": f"{wall + frees_in:.3f}",
            }
            if not allowed:
                headers["Retry-After"] = str(max(1, math.ceil(frees_in)))
                self._counts["rate_limited"] += 1
            return RateDecision(allowed, headers)

    def rate_limited(self) -> ApiError:
        return ApiError(
            429,
            f"Rate limit hit for bucket {self._config.bucket}",
            f"Allowed {self._config.rate_limit} calls per {self._config.rate_window:g} seconds",
        )

    # -- faults ------------------------------------------------------------------------------

    def draw_fault(self) -> int | None:
        """A status to fail this request with (error_rate), or None; seeded."""
        with self._lock:
            rate = self._config.error_rate
            if rate <= 0 or self._faults.random() >= rate:
                return None
            self._counts["injected_5xx"] += 1
            return self._faults.choice((500, 502, 503))

    # -- the Data Export protocol ------------------------------------------------------------

    def create_cursor(self, kind: str, request: Any) -> tuple[str, str]:
        """POST /v1/data/<kind>/cursor: returns (cursor, expires_at) or raises ApiError."""
        if kind not in KINDS:
            raise ApiError(404, "Not found", f"no export of {kind!r}")
        if not isinstance(request, dict):
            raise ApiError(400, "Invalid request", "the body must be a JSON object")
        cfg = self._config
        start = parse_time(request.get("from"), "from")
        end = parse_time(request.get("until"), "until")
        wall = time.time()
        if micros(end) > micros(wall):
            raise ApiError(400, "Invalid request", "`until` must not be in the future")
        if start >= end:
            raise ApiError(400, "Invalid request", "`from` must be before `until`")
        ordering = request.get("ordering", "asc")
        if ordering not in ("asc", "desc"):
            raise ApiError(400, "Invalid request", f"`ordering` must be asc or desc: {ordering!r}")
        size = request.get("page_size", cfg.default_page_size)
        if isinstance(size, bool) or not isinstance(size, int):
            raise ApiError(400, "Invalid request", f"`page_size` must be an integer: {size!r}")
        if not 1 <= size <= cfg.max_page_size:
            raise ApiError(
                400, "Invalid request", f"`page_size` must be within 1..{cfg.max_page_size}"
            )
        now = time.monotonic()
        with self._lock:
            if kind == "contacts" and cfg.contact_cursor_403_burst is not None:
                recent = self._contact_creations
                while recent and recent[0] <= now - 1.0:
                    recent.popleft()
                if len(recent) >= cfg.contact_cursor_403_burst:
                    self._counts["forbidden_403"] += 1
                    raise ApiError(403, "Forbidden", "too many cursors created at once")
                recent.append(now)
            self._purge(now)
            self._serial += 1
            cursor = _Cursor(
                kind,
                micros(start),
                micros(end),
                ordering == "asc",
                size,
                as_of=wall,
                expires=now + cfg.cursor_ttl,
                serial=self._serial,
            )
            token = self._issue(cursor)
            self._counts[f"cursors_created:{kind}"] += 1
        return token, iso(wall + cfg.cursor_ttl)

    def _issue(self, cursor: _Cursor) -> str:
        token = secrets.token_urlsafe(24)
        self._cursors[token] = cursor
        return token

    def _purge(self, now: float) -> None:
        if len(self._cursors) < 1000:
            return
        for token in [t for t, cursor in self._cursors.items() if cursor.expires <= now]:
            del self._cursors[token]
            self._expired.add(token)

    def read_page(self, kind: str, token: str) -> bytes:
        """GET /v1/data/<kind>/cursor/<cursor>: the page's JSON bytes, or raises ApiError."""
        now = time.monotonic()
        with self._lock:
            cursor = self._cursors.get(token)
            if cursor is None or cursor.kind != kind:
                if token in self._expired:
                    self._counts["cursors_expired"] += 1
                    raise ApiError(400, "Cursor expired", f"cursor {token} has expired")
                raise ApiError(400, "Invalid cursor", f"unknown cursor {token} for {kind}")
            if now >= cursor.expires:
                self._counts["cursors_expired"] += 1
                raise ApiError(400, "Cursor expired", f"cursor {token} has expired")
            limit = self._config.max_window
            if limit is not None and (cursor.hi - cursor.lo) / 1e6 > limit:
                # What a query timeout over a huge window looks like from outside [OBS S23].
                self._counts["wide_window_5xx"] += 1
                raise ApiError(500, "Internal server error", "the export query timed out")
            page = self.dataset.page(
                kind,
                cursor.lo,
                cursor.hi,
                ascending=cursor.ascending,
                after=cursor.after,
                size=cursor.size,
                as_of=cursor.as_of,
            )
            paging: Any
            if page.more:
                if cursor.next_token is None:
                    follow = _Cursor(**{**cursor.__dict__, "after": page.last, "next_token": None})
                    cursor.next_token = self._issue(follow)
                paging = {"next": cursor.next_token}
            else:
                paging = LAST_PAGING[cursor.serial % len(LAST_PAGING)]
            self._counts[f"pages_served:{kind}"] += 1
            self._counts[f"items_served:{kind}"] += len(page.bodies)
        return b'{"data":[' + b",".join(page.bodies) + b'],"paging":' + orjson.dumps(paging) + b"}"

    # -- observation -------------------------------------------------------------------------

    def record(
        self, monotonic: float, wall: float, client: str, method: str, path: str, status: int
    ) -> None:
        with self._lock:
            self._log.append(LogEntry(monotonic, wall, client, method, path, status))
            self._by_status[status] += 1

    def request_log(self) -> list[LogEntry]:
        with self._lock:
            return list(self._log)

    def stats(self) -> Stats:
        with self._lock:
            counts = self._counts
            return Stats(
                requests=sum(self._by_status.values()),
                by_status=dict(self._by_status),
                rate_limited=counts["rate_limited"],
                injected_5xx=counts["injected_5xx"],
                wide_window_5xx=counts["wide_window_5xx"],
                forbidden_403=counts["forbidden_403"],
                cursors_created={k: counts[f"cursors_created:{k}"] for k in KINDS},
                cursors_expired=counts["cursors_expired"],
                pages_served={k: counts[f"pages_served:{k}"] for k in KINDS},
                items_served={k: counts[f"items_served:{k}"] for k in KINDS},
                arrivals=counts["arrivals"],
            )

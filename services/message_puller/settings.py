"""The message puller's configuration, read once from the environment at start.

Times are seconds. Defaults follow DESIGN.md and turn-api.md: 60 requests per 60 s, pages of
1000, `until` two minutes behind now, windows re-read five minutes back, an incremental pull
every 30 s, a recovery sweep of the last 3 days daily and an audit sweep of the last 30 days
weekly. Without a checkpoint the first pull starts at PULL_START_FROM (ISO-8601 with a zone),
else PULL_START_LOOKBACK seconds (default 30 days) before the first start.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlsplit

from shared.errors import ConfigError
from shared.lease import instance_id
from shared.settings import CommonSettings, Env, redact_url
from shared.turn_client import DEFAULT_BASE_URL

DAY = 86400.0
STREAM = "messages"
SERVICE = "message_puller"
MAX_PAGE_SIZE = 1000


def parse_time(value: str) -> datetime:
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError("no timezone")
    return moment


@dataclass(frozen=True)
class PullerSettings:
    common: CommonSettings
    turnio_bearer_token: str = field(repr=False)
    turnio_base_url: str = DEFAULT_BASE_URL
    host: str = "0.0.0.0"
    port: int = 8002
    instance: str = ""
    # The rate budget (shared with the contact puller through PostgreSQL).
    rate_limit: int = 60
    rate_window: float = 60.0
    rate_margin: float = 0.9
    request_timeout: float = 30.0
    # Windows.
    page_size: int = MAX_PAGE_SIZE
    overlap: float = 300.0
    safety_lag: float = 120.0
    max_window: float = DAY
    interval: float = 30.0
    start_from: datetime | None = None
    start_lookback: float = 30 * DAY
    # Sweeps: (every, span).
    recovery_every: float = DAY
    recovery_span: float = 3 * DAY
    audit_every: float = 7 * DAY
    audit_span: float = 30 * DAY
    # Singleton.
    lease_ttl: float = 15.0
    # Publishing and failure handling.
    publish_concurrency: int = 500
    publish_confirm_timeout: float = 10.0
    error_backoff: float = 5.0
    graceful_shutdown_seconds: float = 20.0

    @classmethod
    def from_env(cls, env: Env) -> PullerSettings:
        base_url = env.raw("TURNIO_BASE_URL") or DEFAULT_BASE_URL
        if urlsplit(base_url).scheme not in ("http", "https"):
            raise ConfigError("TURNIO_BASE_URL", "must be an http(s):// URL")
        page_size = env.integer("PULL_PAGE_SIZE", MAX_PAGE_SIZE, minimum=1)
        if page_size > MAX_PAGE_SIZE:
            raise ConfigError("PULL_PAGE_SIZE", f"must be at most {MAX_PAGE_SIZE} (Turn's cap)")
        margin = env.parsed("TURNIO_RATE_LIMIT_MARGIN", 0.9, float, "a share like 0.9")
        if not 0.0 < margin <= 1.0:
            raise ConfigError("TURNIO_RATE_LIMIT_MARGIN", "must be within (0, 1]")
        overlap = env.seconds("PULL_OVERLAP", 300.0)
        max_window = env.seconds("PULL_MAX_WINDOW", DAY, minimum=1.0)
        if max_window <= overlap:
            raise ConfigError("PULL_MAX_WINDOW", "must be longer than PULL_OVERLAP")
        start_from = env.parsed("PULL_START_FROM", None, parse_time, "an ISO-8601 time with a zone")
        pod = env.raw("POD_NAME")
        return cls(
            common=CommonSettings.from_env(env),
            turnio_bearer_token=env.required("TURNIO_BEARER_TOKEN"),
            turnio_base_url=base_url,
            host=env.raw("HOST") or "0.0.0.0",
            port=env.integer("PORT", 8002, minimum=1),
            instance=f"{pod}-{os.getpid()}" if pod else instance_id(),
            rate_limit=env.integer("TURNIO_RATE_LIMIT", 60, minimum=1),
            rate_window=env.seconds("TURNIO_RATE_WINDOW", 60.0, minimum=0.01),
            rate_margin=margin,
            request_timeout=env.seconds("TURNIO_REQUEST_TIMEOUT", 30.0, minimum=0.1),
            page_size=page_size,
            overlap=overlap,
            safety_lag=env.seconds("PULL_SAFETY_LAG", 120.0),
            max_window=max_window,
            interval=env.seconds("PULL_INTERVAL", 30.0, minimum=0.01),
            start_from=start_from,
            start_lookback=env.seconds("PULL_START_LOOKBACK", 30 * DAY),
            recovery_every=env.seconds("RECOVERY_SWEEP_EVERY", DAY, minimum=1.0),
            recovery_span=env.seconds("RECOVERY_SWEEP_SPAN", 3 * DAY, minimum=1.0),
            audit_every=env.seconds("AUDIT_SWEEP_EVERY", 7 * DAY, minimum=1.0),
            audit_span=env.seconds("AUDIT_SWEEP_SPAN", 30 * DAY, minimum=1.0),
            lease_ttl=env.seconds("LEASE_TTL", 15.0, minimum=0.5),
            publish_concurrency=env.integer("PUBLISH_CONCURRENCY", 500, minimum=1),
            publish_confirm_timeout=env.seconds("PUBLISH_CONFIRM_TIMEOUT", 10.0, minimum=0.05),
            error_backoff=env.seconds("PULL_ERROR_BACKOFF", 5.0, minimum=0.01),
            graceful_shutdown_seconds=env.seconds("GRACEFUL_SHUTDOWN_TIMEOUT", 20.0),
        )

    @property
    def log_level(self) -> str:
        return self.common.log_level

    def secrets(self) -> list[str]:
        """What must never appear in a log line."""
        found = [self.turnio_bearer_token]
        for url in (self.common.database_url, self.common.amqp_url):
            password = urlsplit(url).password
            if password:
                found.append(password)
        return found

    def __repr__(self) -> str:
        return (
            f"PullerSettings(database_url={redact_url(self.common.database_url)!r}, "
            f"amqp_url={redact_url(self.common.amqp_url)!r}, "
            f"business_number_id={self.common.business_number_id!r}, "
            f"turnio_base_url={self.turnio_base_url!r}, turnio_bearer_token=<hidden>, "
            f"rate_limit={self.rate_limit}/{self.rate_window}s x{self.rate_margin}, "
            f"page_size={self.page_size}, overlap={self.overlap}, safety_lag={self.safety_lag}, "
            f"interval={self.interval}, instance={self.instance!r})"
        )

"""The contact puller's configuration, read once from the environment at start.

Variables that mean the same as the message puller's keep its names (TURNIO_*, LEASE_TTL,
PUBLISH_*, GRACEFUL_SHUTDOWN_TIMEOUT, HOST, PORT, POD_NAME); what is the contact puller's own
is prefixed CONTACTS_. Times are seconds. Defaults: a run every hour, 4 windows per run read 2
at a time, cursor creations 1 s apart (Turn has answered 403 to many at once, turn-api.md
§3.7), a third of the shared budget while the message puller has work, pages of 1000, `until`
two minutes behind now, runs re-reading five minutes before the checkpoint, windows of at most
30 days. Without a checkpoint the first run starts at CONTACTS_START_FROM (ISO-8601 with a
zone), else CONTACTS_START_LOOKBACK seconds (default ten years: contacts are filtered on
`updated_at`, and a contact nobody edited for years is still a contact) before the first start.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlsplit

from services.message_puller.settings import MAX_PAGE_SIZE, parse_time
from shared.errors import ConfigError
from shared.lease import instance_id
from shared.settings import CommonSettings, Env, redact_url
from shared.turn_client import DEFAULT_BASE_URL

DAY = 86400.0
STREAM = "contacts"
SERVICE = "contact_puller"


@dataclass(frozen=True)
class ContactSettings:
    common: CommonSettings
    turnio_bearer_token: str = field(repr=False)
    turnio_base_url: str = DEFAULT_BASE_URL
    host: str = "0.0.0.0"
    port: int = 8003
    instance: str = ""
    # The rate budget, shared with the message puller through PostgreSQL.
    rate_limit: int = 60
    rate_window: float = 60.0
    rate_margin: float = 0.9
    budget_share: float = 0.333
    request_timeout: float = 30.0
    # Runs and their windows.
    interval: float = 3600.0
    windows: int = 4
    concurrency: int = 2
    cursor_stagger: float = 1.0
    forbidden_retries: int = 5
    forbidden_backoff: float = 2.0
    page_size: int = MAX_PAGE_SIZE
    overlap: float = 300.0
    safety_lag: float = 120.0
    max_window: float = 30 * DAY
    start_from: datetime | None = None
    start_lookback: float = 3650 * DAY
    backfill_poll: float = 5.0
    # Singleton.
    lease_ttl: float = 15.0
    # Publishing and failure handling.
    publish_concurrency: int = 500
    publish_confirm_timeout: float = 10.0
    error_backoff: float = 5.0
    graceful_shutdown_seconds: float = 20.0

    @classmethod
    def from_env(cls, env: Env) -> ContactSettings:
        base_url = env.raw("TURNIO_BASE_URL") or DEFAULT_BASE_URL
        if urlsplit(base_url).scheme not in ("http", "https"):
            raise ConfigError("TURNIO_BASE_URL", "must be an http(s):// URL")
        page_size = env.integer("CONTACTS_PAGE_SIZE", MAX_PAGE_SIZE, minimum=1)
        if page_size > MAX_PAGE_SIZE:
            raise ConfigError("CONTACTS_PAGE_SIZE", f"must be at most {MAX_PAGE_SIZE} (Turn's cap)")
        margin = env.parsed("TURNIO_RATE_LIMIT_MARGIN", 0.9, float, "a share like 0.9")
        if not 0.0 < margin <= 1.0:
            raise ConfigError("TURNIO_RATE_LIMIT_MARGIN", "must be within (0, 1]")
        share = env.parsed("CONTACTS_BUDGET_SHARE", 0.333, float, "a share like 0.333")
        if not 0.0 < share <= 1.0:
            raise ConfigError("CONTACTS_BUDGET_SHARE", "must be within (0, 1]")
        overlap = env.seconds("CONTACTS_OVERLAP", 300.0)
        max_window = env.seconds("CONTACTS_MAX_WINDOW", 30 * DAY, minimum=1.0)
        if max_window <= overlap:
            raise ConfigError("CONTACTS_MAX_WINDOW", "must be longer than CONTACTS_OVERLAP")
        start_from = env.parsed(
            "CONTACTS_START_FROM", None, parse_time, "an ISO-8601 time with a zone"
        )
        pod = env.raw("POD_NAME")
        return cls(
            common=CommonSettings.from_env(env),
            turnio_bearer_token=env.required("TURNIO_BEARER_TOKEN"),
            turnio_base_url=base_url,
            host=env.raw("HOST") or "0.0.0.0",
            port=env.integer("PORT", 8003, minimum=1),
            instance=f"{pod}-{os.getpid()}" if pod else instance_id(),
            rate_limit=env.integer("TURNIO_RATE_LIMIT", 60, minimum=1),
            rate_window=env.seconds("TURNIO_RATE_WINDOW", 60.0, minimum=0.01),
            rate_margin=margin,
            budget_share=share,
            request_timeout=env.seconds("TURNIO_REQUEST_TIMEOUT", 30.0, minimum=0.1),
            interval=env.seconds("CONTACTS_INTERVAL", 3600.0, minimum=0.01),
            windows=env.integer("CONTACTS_WINDOWS", 4, minimum=1),
            concurrency=env.integer("CONTACTS_CONCURRENCY", 2, minimum=1),
            cursor_stagger=env.seconds("CONTACTS_CURSOR_STAGGER", 1.0),
            forbidden_retries=env.integer("CONTACTS_FORBIDDEN_RETRIES", 5),
            forbidden_backoff=env.seconds("CONTACTS_FORBIDDEN_BACKOFF", 2.0, minimum=0.01),
            page_size=page_size,
            overlap=overlap,
            safety_lag=env.seconds("CONTACTS_SAFETY_LAG", 120.0),
            max_window=max_window,
            start_from=start_from,
            start_lookback=env.seconds("CONTACTS_START_LOOKBACK", 3650 * DAY),
            backfill_poll=env.seconds("CONTACTS_BACKFILL_POLL", 5.0, minimum=0.01),
            lease_ttl=env.seconds("LEASE_TTL", 15.0, minimum=0.5),
            publish_concurrency=env.integer("PUBLISH_CONCURRENCY", 500, minimum=1),
            publish_confirm_timeout=env.seconds("PUBLISH_CONFIRM_TIMEOUT", 10.0, minimum=0.05),
            error_backoff=env.seconds("CONTACTS_ERROR_BACKOFF", 5.0, minimum=0.01),
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
            f"ContactSettings(database_url={redact_url(self.common.database_url)!r}, "
            f"amqp_url={redact_url(self.common.amqp_url)!r}, "
            f"business_number_id={self.common.business_number_id!r}, "
            f"turnio_base_url={self.turnio_base_url!r}, turnio_bearer_token=<hidden>, "
            f"rate_limit={self.rate_limit}/{self.rate_window}s x{self.rate_margin} "
            f"share={self.budget_share}, interval={self.interval}, windows={self.windows}, "
            f"concurrency={self.concurrency}, cursor_stagger={self.cursor_stagger}, "
            f"page_size={self.page_size}, overlap={self.overlap}, safety_lag={self.safety_lag}, "
            f"instance={self.instance!r})"
        )

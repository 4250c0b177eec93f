"""What the two Data Export pullers configure alike, read once by one function.

Both pullers talk to Turn with the same token and address, draw from one rate budget, hold a
lease, publish with confirms and plan windows the same way, so those settings share their
variable names (TURNIO_*, LEASE_TTL, PUBLISH_*, GRACEFUL_SHUTDOWN_TIMEOUT, HOST, PORT,
POD_NAME). The window settings mean the same in both but carry the puller's own prefix
(`PULL_` for messages, `CONTACTS_` for contacts): `<PREFIX>_PAGE_SIZE`, `_OVERLAP`,
`_SAFETY_LAG`, `_MAX_WINDOW`, `_INTERVAL`, `_START_FROM`, `_START_LOOKBACK`,
`_ERROR_BACKOFF`. Each puller's settings class derives from `PullerSettingsBase`, overrides
the defaults that differ (port, interval, widest window, first-start look-back) and adds its
own fields; the defaults are read from the class, so each is written once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from shared.errors import ConfigError
from shared.lease import instance_id
from shared.rate_budget import BudgetPolicy
from shared.settings import CommonSettings, Env, redact_url, url_secrets
from shared.turn_client import DEFAULT_BASE_URL

DAY = 86400.0
MAX_PAGE_SIZE = 1000  # Turn's cap on an export page


def parse_time(value: str) -> datetime:
    """ISO-8601 with a zone (`Z` accepted); a time without a zone is refused."""
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError("no timezone")
    return moment


@dataclass(frozen=True)
class PullerSettingsBase:
    common: CommonSettings
    turnio_bearer_token: str = field(repr=False)
    turnio_base_url: str = DEFAULT_BASE_URL
    host: str = "0.0.0.0"
    port: int = 0
    instance: str = ""
    # The rate budget, shared by both pullers through PostgreSQL.
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
    # Singleton.
    lease_ttl: float = 15.0
    # Publishing and failure handling.
    publish_concurrency: int = 500
    publish_confirm_timeout: float = 10.0
    error_backoff: float = 5.0
    graceful_shutdown_seconds: float = 20.0

    @classmethod
    def shared_from_env(cls, env: Env, prefix: str) -> dict[str, Any]:
        """The base fields as keyword arguments for `cls`, window variables named
        `<prefix>_...`; defaults are those of `cls`."""
        default: dict[str, Any] = {f.name: f.default for f in fields(cls)}
        base_url = env.raw("TURNIO_BASE_URL") or DEFAULT_BASE_URL
        if urlsplit(base_url).scheme not in ("http", "https"):
            raise ConfigError("TURNIO_BASE_URL", "must be an http(s):// URL")
        page_size = env.integer(f"{prefix}_PAGE_SIZE", MAX_PAGE_SIZE, minimum=1)
        if page_size > MAX_PAGE_SIZE:
            raise ConfigError(
                f"{prefix}_PAGE_SIZE", f"must be at most {MAX_PAGE_SIZE} (Turn's cap)"
            )
        margin = env.parsed("TURNIO_RATE_LIMIT_MARGIN", 0.9, float, "a share like 0.9")
        if not 0.0 < margin <= 1.0:
            raise ConfigError("TURNIO_RATE_LIMIT_MARGIN", "must be within (0, 1]")
        overlap = env.seconds(f"{prefix}_OVERLAP", 300.0)
        max_window = env.seconds(f"{prefix}_MAX_WINDOW", default["max_window"], minimum=1.0)
        if max_window <= overlap:
            raise ConfigError(f"{prefix}_MAX_WINDOW", f"must be longer than {prefix}_OVERLAP")
        start_from = env.parsed(
            f"{prefix}_START_FROM", None, parse_time, "an ISO-8601 time with a zone"
        )
        pod = env.raw("POD_NAME")
        return {
            "common": CommonSettings.from_env(env),
            "turnio_bearer_token": env.required("TURNIO_BEARER_TOKEN"),
            "turnio_base_url": base_url,
            "host": env.raw("HOST") or "0.0.0.0",
            "port": env.integer("PORT", default["port"], minimum=1),
            "instance": f"{pod}-{os.getpid()}" if pod else instance_id(),
            "rate_limit": env.integer("TURNIO_RATE_LIMIT", 60, minimum=1),
            "rate_window": env.seconds("TURNIO_RATE_WINDOW", 60.0, minimum=0.01),
            "rate_margin": margin,
            "request_timeout": env.seconds("TURNIO_REQUEST_TIMEOUT", 30.0, minimum=0.1),
            "page_size": page_size,
            "overlap": overlap,
            "safety_lag": env.seconds(f"{prefix}_SAFETY_LAG", 120.0),
            "max_window": max_window,
            "interval": env.seconds(f"{prefix}_INTERVAL", default["interval"], minimum=0.01),
            "start_from": start_from,
            "start_lookback": env.seconds(f"{prefix}_START_LOOKBACK", default["start_lookback"]),
            "lease_ttl": env.seconds("LEASE_TTL", 15.0, minimum=0.5),
            "publish_concurrency": env.integer("PUBLISH_CONCURRENCY", 500, minimum=1),
            "publish_confirm_timeout": env.seconds("PUBLISH_CONFIRM_TIMEOUT", 10.0, minimum=0.05),
            "error_backoff": env.seconds(f"{prefix}_ERROR_BACKOFF", 5.0, minimum=0.01),
            "graceful_shutdown_seconds": env.seconds("GRACEFUL_SHUTDOWN_TIMEOUT", 20.0),
        }

    @property
    def log_level(self) -> str:
        return self.common.log_level

    def budget_policy(self) -> BudgetPolicy:
        return BudgetPolicy(self.rate_limit, self.rate_window, self.rate_margin)

    def secrets(self) -> list[str]:
        """What must never appear in a log line."""
        return [
            self.turnio_bearer_token,
            *url_secrets(self.common.database_url, self.common.amqp_url),
        ]

    def repr_extra(self) -> str:
        """The subclass's own fields for `repr`, after the rate limit."""
        return ""

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(database_url={redact_url(self.common.database_url)!r}, "
            f"amqp_url={redact_url(self.common.amqp_url)!r}, "
            f"business_number_id={self.common.business_number_id!r}, "
            f"turnio_base_url={self.turnio_base_url!r}, turnio_bearer_token=<hidden>, "
            f"rate_limit={self.rate_limit}/{self.rate_window}s x{self.rate_margin}"
            f"{self.repr_extra()}, "
            f"page_size={self.page_size}, overlap={self.overlap}, safety_lag={self.safety_lag}, "
            f"interval={self.interval}, instance={self.instance!r})"
        )

"""Reading configuration from the environment, once, at start.

Each service builds one frozen dataclass from `os.environ` in its `__main__` and passes it
down; nothing deeper reads the environment. Every problem raises ConfigError naming the
variable, so a misconfigured pod says exactly what to fix and refuses to start.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import quote, unquote, urlsplit

from shared.errors import ConfigError

T = TypeVar("T")

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class Env:
    """Typed access to an environment mapping; every error names its variable."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def raw(self, name: str) -> str | None:
        value = self._environ.get(name)
        if value is None or value.strip() == "":
            return None
        return value.strip()

    def required(self, name: str) -> str:
        value = self.raw(name)
        if value is None:
            raise ConfigError(name, "is required but not set")
        return value

    def parsed(self, name: str, default: T, parse: Callable[[str], T], what: str) -> T:
        value = self.raw(name)
        if value is None:
            return default
        try:
            return parse(value)
        except (ValueError, TypeError) as exc:
            raise ConfigError(name, f"must be {what}, got {value!r}") from exc

    def integer(self, name: str, default: int, *, minimum: int = 0) -> int:
        number = self.parsed(name, default, int, "a whole number")
        if number < minimum:
            raise ConfigError(name, f"must be at least {minimum}, got {number}")
        return number

    def seconds(self, name: str, default: float, *, minimum: float = 0.0) -> float:
        number = self.parsed(name, default, float, "a number of seconds")
        if number < minimum:
            raise ConfigError(name, f"must be at least {minimum}, got {number}")
        return number

    def boolean(self, name: str, default: bool) -> bool:
        def parse(value: str) -> bool:
            lowered = value.lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)

        return self.parsed(name, default, parse, "true or false")

    def secret_list(self, name: str) -> tuple[str, ...]:
        """A required comma-separated list, e.g. two webhook secrets during a rotation."""
        items = tuple(part.strip() for part in self.required(name).split(",") if part.strip())
        if not items:
            raise ConfigError(name, "is set but holds no value")
        return items

    def log_level(self) -> str:
        level = (self.raw("LOG_LEVEL") or "INFO").upper()
        if level not in LOG_LEVELS:
            raise ConfigError("LOG_LEVEL", f"must be one of {', '.join(LOG_LEVELS)}")
        return level

    def database_url(self) -> str:
        """DATABASE_URL, else the legacy DB_HOST/DB_PORT/DB_NAME/DB_USER/DB_PASSWORD."""
        url = self.raw("DATABASE_URL")
        if url is not None:
            if urlsplit(url).scheme not in ("postgres", "postgresql"):
                raise ConfigError("DATABASE_URL", "must be a postgresql:// URL")
            return url
        if self.raw("DB_HOST") is None:
            raise ConfigError("DATABASE_URL", "is required (or the legacy DB_HOST, DB_NAME, ...)")
        host = self.required("DB_HOST")
        port = self.integer("DB_PORT", 5432, minimum=1)
        name = self.required("DB_NAME")
        user = self.required("DB_USER")
        password = self.required("DB_PASSWORD")
        return (
            f"postgresql://{quote(user, safe='')}:{quote(password, safe='')}@{host}:{port}/{name}"
        )

    def amqp_url(self) -> str:
        url = self.required("AMQP_URL")
        if urlsplit(url).scheme not in ("amqp", "amqps"):
            raise ConfigError("AMQP_URL", "must be an amqp:// or amqps:// URL")
        return url


@dataclass(frozen=True)
class CommonSettings:
    """What every service needs. Services embed it in their own settings."""

    database_url: str
    amqp_url: str
    business_number_id: str
    log_level: str
    # Names the exchange and every queue (`<prefix>`, `<prefix>.webhook`, ...), so two
    # installations can share one RabbitMQ vhost.
    queue_prefix: str

    @classmethod
    def from_env(cls, env: Env, *, need_database: bool = True) -> CommonSettings:
        return cls(
            database_url=env.database_url() if need_database else (env.raw("DATABASE_URL") or ""),
            amqp_url=env.amqp_url(),
            business_number_id=env.required("BUSINESS_NUMBER_ID"),
            log_level=env.log_level(),
            queue_prefix=env.raw("AMQP_QUEUE_PREFIX") or "turnio",
        )

    def __repr__(self) -> str:
        # URLs carry passwords; a repr must be safe to log.
        return (
            f"CommonSettings(database_url={redact_url(self.database_url)!r}, "
            f"amqp_url={redact_url(self.amqp_url)!r}, "
            f"business_number_id={self.business_number_id!r}, log_level={self.log_level!r})"
        )


def url_secrets(*urls: str) -> list[str]:
    """The passwords in these URLs, for shared.logs.setup(secrets=...).

    Each both as written (percent-encoded) and decoded: the URL holds the first, but a library
    error may quote the password it actually sent.
    """
    found: list[str] = []
    for url in urls:
        password = urlsplit(url).password
        for form in (password, unquote(password)) if password else ():
            if form not in found:
                found.append(form)
    return found


def redact_url(url: str) -> str:
    """The URL with its password replaced, for logs and reprs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def configure_or_exit(build: Callable[[Env], T], environ: Mapping[str, str]) -> T:
    """Build settings, or print which variable is wrong and exit non-zero."""
    try:
        return build(Env(environ))
    except ConfigError as exc:
        logging.basicConfig(level=logging.ERROR)
        raise SystemExit(f"configuration error: {exc}") from None

"""The gateway's configuration, read once from the environment at start."""

from __future__ import annotations

from dataclasses import dataclass

from shared.errors import ConfigError
from shared.settings import CommonSettings, Env, redact_url, url_secrets

MIB = 1024 * 1024


@dataclass(frozen=True)
class GatewaySettings:
    common: CommonSettings
    # Several secrets at once, so a webhook's secret can be rotated without refusing deliveries.
    webhook_secrets: tuple[str, ...]
    host: str = "0.0.0.0"
    port: int = 8000
    max_body_bytes: int = MIB
    # Turn gives up after 5 s; answering 503 well before that lets it retry instead.
    publish_confirm_timeout: float = 2.0
    retry_after_seconds: int = 5
    graceful_shutdown_seconds: float = 20.0

    @classmethod
    def from_env(cls, env: Env) -> GatewaySettings:
        timeout = env.seconds("PUBLISH_CONFIRM_TIMEOUT", 2.0, minimum=0.05)
        if timeout >= 5.0:
            # Turn counts anything slower than 5 s as a failed delivery.
            raise ConfigError("PUBLISH_CONFIRM_TIMEOUT", "must be under Turn's 5 s deadline")
        return cls(
            common=CommonSettings.from_env(env, need_database=False),
            webhook_secrets=env.secret_list("TURNIO_WEBHOOK_SECRET"),
            host=env.raw("HOST") or "0.0.0.0",
            port=env.integer("PORT", 8000, minimum=1),
            max_body_bytes=env.integer("WEBHOOK_MAX_BODY_BYTES", MIB, minimum=1),
            publish_confirm_timeout=timeout,
            retry_after_seconds=env.integer("RETRY_AFTER", 5, minimum=0),
            graceful_shutdown_seconds=env.seconds("GRACEFUL_SHUTDOWN_TIMEOUT", 20.0, minimum=0.0),
        )

    @property
    def log_level(self) -> str:
        return self.common.log_level

    def secrets(self) -> list[str]:
        """What must never appear in a log line."""
        return [*self.webhook_secrets, *url_secrets(self.common.amqp_url)]

    def __repr__(self) -> str:
        return (
            f"GatewaySettings(amqp_url={redact_url(self.common.amqp_url)!r}, "
            f"business_number_id={self.common.business_number_id!r}, "
            f"webhook_secrets=<{len(self.webhook_secrets)} hidden>, host={self.host!r}, "
            f"port={self.port}, max_body_bytes={self.max_body_bytes}, "
            f"publish_confirm_timeout={self.publish_confirm_timeout}, "
            f"retry_after_seconds={self.retry_after_seconds})"
        )

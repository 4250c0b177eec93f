"""The writer's configuration, read once from the environment at start."""

from __future__ import annotations

from dataclasses import dataclass

from shared.errors import ConfigError
from shared.settings import CommonSettings, Env


@dataclass(frozen=True)
class WriterSettings:
    common: CommonSettings
    host: str
    port: int
    batch_size: int  # deliveries per transaction
    batch_max_age: float  # seconds the oldest delivery of a batch may wait
    prefetch: int  # per consumer; >= batch_size so a batch can fill while one is written
    backoff_initial: float  # seconds before the first retry while PostgreSQL is away
    backoff_max: float
    db_check_interval: float  # seconds between readiness pings of PostgreSQL

    @classmethod
    def from_env(cls, env: Env) -> WriterSettings:
        batch_size = env.integer("WRITER_BATCH_SIZE", 500, minimum=1)
        prefetch = env.integer("WRITER_PREFETCH", 2 * batch_size, minimum=1)
        if prefetch < batch_size:
            raise ConfigError(
                "WRITER_PREFETCH", f"must be at least WRITER_BATCH_SIZE ({batch_size})"
            )
        backoff_initial = env.seconds("WRITER_BACKOFF_INITIAL", 0.2, minimum=0.01)
        backoff_max = env.seconds("WRITER_BACKOFF_MAX", 10.0, minimum=0.01)
        if backoff_max < backoff_initial:
            raise ConfigError(
                "WRITER_BACKOFF_MAX", f"must be at least WRITER_BACKOFF_INITIAL ({backoff_initial})"
            )
        return cls(
            common=CommonSettings.from_env(env),
            host=env.raw("HOST") or "0.0.0.0",
            port=env.integer("PORT", 8001, minimum=0),
            batch_size=batch_size,
            batch_max_age=env.seconds("WRITER_BATCH_MAX_AGE", 0.2, minimum=0.0),
            prefetch=prefetch,
            backoff_initial=backoff_initial,
            backoff_max=backoff_max,
            db_check_interval=env.seconds("WRITER_DB_CHECK_INTERVAL", 2.0, minimum=0.05),
        )

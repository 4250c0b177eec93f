"""Apply the yoyo migrations: `python -m shared.migrate` (a Kubernetes Job runs the same).

Applying twice is a no-op; yoyo's lock keeps two concurrent runs from racing.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from yoyo import get_backend, read_migrations

from shared import logs
from shared.settings import Env, configure_or_exit, redact_url

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"

log = logging.getLogger("migrate")


def apply(database_url: str, directory: Path = MIGRATIONS) -> int:
    """Apply what is pending; return how many migrations were applied."""
    # yoyo picks its driver from the scheme; psycopg2 answers to postgresql://.
    url = database_url.replace("postgres://", "postgresql://", 1)
    backend = get_backend(url)
    migrations = read_migrations(str(directory))
    with backend.lock():
        pending = backend.to_apply(migrations)
        backend.apply_migrations(pending)
    backend.connection.close()
    return len(pending)


def main() -> None:
    url = configure_or_exit(lambda env: env.database_url(), os.environ)
    logs.setup(Env(os.environ).log_level())
    count = apply(url)
    log.info("migrations applied", extra={"applied": count, "database": redact_url(url)})


if __name__ == "__main__":
    main()
    sys.exit(0)

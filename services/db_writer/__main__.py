"""`python -m services.db_writer`: settings -> run()."""

from __future__ import annotations

import asyncio
import os

from services.db_writer.app import run
from services.db_writer.settings import WriterSettings
from shared import logs
from shared.settings import configure_or_exit, url_secrets


def main() -> None:
    settings = configure_or_exit(WriterSettings.from_env, os.environ)
    common = settings.common
    logs.setup(common.log_level, secrets=url_secrets(common.database_url, common.amqp_url))
    asyncio.run(run(settings))


if __name__ == "__main__":
    main()

"""python -m services.webhook_gateway"""

from __future__ import annotations

import os

from services.webhook_gateway.app import run
from services.webhook_gateway.settings import GatewaySettings
from shared import logs
from shared.settings import configure_or_exit


def main() -> None:
    settings = configure_or_exit(GatewaySettings.from_env, os.environ)
    logs.setup(settings.log_level, secrets=settings.secrets())
    run(settings)


if __name__ == "__main__":
    main()

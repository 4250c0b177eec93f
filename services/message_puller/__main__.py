"""`python -m services.message_puller` runs the puller;
`python -m services.message_puller backfill --from ISO --until ISO` records a back-fill request
for the running singleton and exits (shared/puller_command.py)."""

from __future__ import annotations

import sys

from services.message_puller.app import run
from services.message_puller.settings import STREAM, PullerSettings
from shared import puller_command


def main(argv: list[str]) -> None:
    puller_command.main(
        argv,
        prog="python -m services.message_puller",
        stream=STREAM,
        settings=PullerSettings.from_env,
        run=run,
    )


if __name__ == "__main__":
    main(sys.argv[1:])

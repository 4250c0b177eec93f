"""`python -m services.contact_puller` runs the puller;
`python -m services.contact_puller backfill --from ISO --until ISO` records a back-fill request
(stream "contacts") for the running singleton and exits (shared/puller_command.py)."""

from __future__ import annotations

import sys

from services.contact_puller.app import run
from services.contact_puller.settings import STREAM, ContactSettings
from shared import puller_command


def main(argv: list[str]) -> None:
    puller_command.main(
        argv,
        prog="python -m services.contact_puller",
        stream=STREAM,
        settings=ContactSettings.from_env,
        run=run,
    )


if __name__ == "__main__":
    main(sys.argv[1:])

"""JSON-lines logging with secret scrubbing.

One line per record: {"ts", "level", "logger", "msg", ...extra}. Services call `setup()` once
with the secrets they hold; any occurrence of one in a formatted line is replaced, as a last
line of defence behind simply never logging them.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

import orjson

_STANDARD_ATTRS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
    # uvicorn adds an ANSI-coloured copy of each message: noise in a JSON line.
    | {"message", "asctime", "color_message"}
)


class JsonFormatter(logging.Formatter):
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        # Lines are scrubbed once encoded, where a secret with `"`, `\` or a control character
        # appears JSON-escaped: both forms are looked for.
        forms = {f for s in secrets if len(s) >= 4 for f in (s, orjson.dumps(s)[1:-1].decode())}
        # Longest first, so a secret that contains another is scrubbed whole.
        self._secrets = sorted(forms, key=len, reverse=True)

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        text = orjson.dumps(line, default=str).decode()
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


def setup(level: str = "INFO", secrets: Iterable[str] = ()) -> None:
    """Route every logger to stderr as JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Library chatter at INFO (every reconnect attempt, every request) drowns the useful lines.
    for noisy in ("aiormq", "aio_pika", "uvicorn.access", "httpx"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))


class Throttle:
    """At most one log line per key per `interval` seconds.

    A flood of forged webhooks or a broker outage must not flood the logs too: the metrics
    count every event; the log shows the first, then one line per interval saying how many
    were held back meanwhile.
    """

    def __init__(self, interval: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = interval
        self._clock = clock
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def allow(self, key: str) -> int | None:
        """None: stay quiet. Otherwise log now; the number is how many were held back."""
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self._interval:
            self._held[key] = self._held.get(key, 0) + 1
            return None
        self._last[key] = now
        return self._held.pop(key, 0)

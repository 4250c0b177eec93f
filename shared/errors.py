"""The exception hierarchy. Its categories decide behaviour, not its messages.

    IngestError
    ├── ConfigError        the process cannot start: a variable is missing or malformed
    ├── RetryableError     try again later: nack/requeue, answer 503, back off
    │   ├── BrokerUnavailable
    │   └── DatabaseUnavailable
    └── PoisonError        will never succeed as it is: dead-letter it (with the reason), 4xx
        └── InvalidPayload

Code that catches errors should catch a category (RetryableError, PoisonError), never a
library's own exception deep inside business logic: the edges translate those into these.
"""

from __future__ import annotations


class IngestError(Exception):
    """Base of every error this project raises on purpose."""


class ConfigError(IngestError):
    """Configuration is missing or malformed; the message names the variable."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable
        self.problem = problem


class RetryableError(IngestError):
    """A dependency is down or slow; the same work may succeed later."""


class BrokerUnavailable(RetryableError):
    """RabbitMQ is unreachable, refused (nacked) a publish, or did not confirm in time."""


class DatabaseUnavailable(RetryableError):
    """PostgreSQL is unreachable or the connection broke mid-transaction."""


class PoisonError(IngestError):
    """This input can never be stored as it is. Dead-letter it with `reason`."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InvalidPayload(PoisonError):
    """The body is not JSON, or not a shape any event can be made of."""

"""ingestctl's configuration: the same variables as the services, read once at start.

Each command asks only for what it uses, so `dlq list` works in a pod without DATABASE_URL and
`schema wait` in an init container with nothing but DATABASE_URL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from shared.broker import Topology
from shared.settings import Env, redact_url


@dataclass(frozen=True)
class CtlSettings:
    database_url: str = ""
    amqp_url: str = ""
    business_number_id: str = ""
    management_url: str = ""
    topology: Topology = field(default_factory=Topology)

    @classmethod
    def from_env(
        cls, env: Env, *, database: bool = False, broker: bool = False, number: bool = False
    ) -> CtlSettings:
        amqp_url = env.amqp_url() if broker else ""
        return cls(
            database_url=env.database_url() if database else "",
            amqp_url=amqp_url,
            business_number_id=env.required("BUSINESS_NUMBER_ID") if number else "",
            management_url=(env.raw("RABBITMQ_MANAGEMENT_URL") or management_url_for(amqp_url))
            if broker
            else "",
            topology=Topology(prefix=env.raw("AMQP_QUEUE_PREFIX") or "turnio"),
        )

    @property
    def vhost(self) -> str:
        """The AMQP URL's virtual host ("/" when the path is empty)."""
        path = urlsplit(self.amqp_url).path
        return unquote(path[1:]) if len(path) > 1 else "/"

    def __repr__(self) -> str:
        return (
            f"CtlSettings(database_url={redact_url(self.database_url)!r}, "
            f"amqp_url={redact_url(self.amqp_url)!r}, "
            f"management_url={redact_url(self.management_url)!r}, "
            f"business_number_id={self.business_number_id!r})"
        )


def management_url_for(amqp_url: str) -> str:
    """The management API beside the broker: same host and credentials, port 15672 (15671 TLS)."""
    parts = urlsplit(amqp_url)
    scheme, port = ("https", 15671) if parts.scheme == "amqps" else ("http", 15672)
    user = quote(unquote(parts.username or "guest"), safe="")
    password = quote(unquote(parts.password or "guest"), safe="")
    host = parts.hostname or "localhost"
    if ":" in host:
        host = f"[{host}]"
    return urlunsplit((scheme, f"{user}:{password}@{host}:{port}", "/", "", ""))

"""Queue depths from RabbitMQ's management API (what operators also see in its UI)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import httpx

from shared.errors import BrokerUnavailable


@dataclass(frozen=True)
class QueueDepth:
    name: str
    exists: bool
    messages: int = 0
    ready: int = 0
    unacked: int = 0
    consumers: int = 0


def _client(management_url: str, timeout: float) -> httpx.AsyncClient:
    parts = urlsplit(management_url)
    port = f":{parts.port}" if parts.port else ""
    base = urlunsplit((parts.scheme, f"{parts.hostname}{port}", "/api/", "", ""))
    auth = (unquote(parts.username or "guest"), unquote(parts.password or "guest"))
    return httpx.AsyncClient(base_url=base, auth=auth, timeout=timeout)


def where(management_url: str) -> str:
    parts = urlsplit(management_url)
    return f"{parts.hostname}:{parts.port}"


async def depths(
    management_url: str, vhost: str, queues: list[str], *, http_timeout: float = 5.0
) -> list[QueueDepth]:
    """Depth of each queue; a queue nobody declared yet is reported as missing, not an error.

    The API's counts are refreshed every few seconds (its statistics interval).
    """
    out = []
    try:
        async with _client(management_url, http_timeout) as client:
            for name in queues:
                response = await client.get(
                    f"queues/{quote(vhost, safe='')}/{quote(name, safe='')}"
                )
                if response.status_code == 404:
                    out.append(QueueDepth(name, exists=False))
                    continue
                if response.status_code == 401:
                    raise BrokerUnavailable(
                        f"RabbitMQ management API at {where(management_url)} refused the "
                        "credentials (set RABBITMQ_MANAGEMENT_URL=http://user:pass@host:15672/)"
                    )
                response.raise_for_status()
                body = response.json()
                out.append(
                    QueueDepth(
                        name,
                        exists=True,
                        messages=int(body.get("messages", 0)),
                        ready=int(body.get("messages_ready", 0)),
                        unacked=int(body.get("messages_unacknowledged", 0)),
                        consumers=int(body.get("consumers", 0)),
                    )
                )
    except httpx.HTTPError as exc:
        raise BrokerUnavailable(
            f"RabbitMQ management API at {where(management_url)} is unreachable: "
            f"{str(exc) or type(exc).__name__}"
        ) from exc
    return out

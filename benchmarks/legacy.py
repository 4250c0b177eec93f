"""The system being replaced, as a baseline: one Starlette process that verifies the
signature, parses the body and INSERTs it into PostgreSQL inside the request, answering 200
after the commit.

Both it and our gateway are loaded by the same wrk script at the same concurrency
(benchmarks/gateway.py's), served by uvicorn with the same options; our gateway's accepted
req/s divided by the legacy process's is the figure. Afterwards the legacy table is counted:
it holds a row for every 200 it answered.

    python -m benchmarks legacy         (through `make bench`)
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from benchmarks import gateway as bench_gateway
from benchmarks.environment import fresh_database, fresh_vhost
from benchmarks.figures import Figure, record
from services.webhook_gateway.app import WEBHOOK_PATH, serve, server_options
from services.webhook_gateway.signature import SignatureVerifier, sign
from tests.processes import ROOT
from tests.servers import free_port, port_open
from tests.waiting import eventually_sync

POOL_SIZE = 10  # asyncpg's default pool size, as a straightforward service would run

TABLE = """
CREATE TABLE IF NOT EXISTS legacy_webhooks (
    id          bigserial PRIMARY KEY,
    payload     jsonb       NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
)
"""


def legacy_app(database_url: str, secret: str) -> Starlette:
    verifier = SignatureVerifier((secret,))
    pool: asyncpg.Pool | None = None

    async def webhook(request: Request) -> Response:
        body = await request.body()
        signature = request.headers.get("x-turn-hook-signature")
        if verifier.failure(body, signature.encode() if signature else None) is not None:
            return Response(status_code=401)
        try:
            orjson.loads(body)
        except orjson.JSONDecodeError:
            return Response(status_code=400)
        assert pool is not None
        await pool.execute(
            "INSERT INTO legacy_webhooks (payload) VALUES ($1::jsonb)", body.decode()
        )
        return Response(status_code=200)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        nonlocal pool
        pool = await asyncpg.create_pool(database_url, min_size=POOL_SIZE, max_size=POOL_SIZE)
        await pool.execute(TABLE)
        yield
        await pool.close()

    return Starlette(routes=[Route(WEBHOOK_PATH, webhook, methods=["POST"])], lifespan=lifespan)


def measure_legacy(script: Path, database_url: str) -> tuple[bench_gateway.Load, int]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.legacy", "serve", str(port), database_url],
        cwd=ROOT,
        stderr=subprocess.DEVNULL,
    )
    try:
        eventually_sync(lambda: port_open(port), timeout=30, what="legacy app")
        print("-- legacy: verify, parse, INSERT ... inside the request", flush=True)
        load = bench_gateway.wrk(f"http://127.0.0.1:{port}", script)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    rows = asyncio.run(_count(database_url))
    return load, rows


async def _durability(database_url: str) -> str:
    """How durable a commit is on this server: the legacy figure depends on it."""
    conn = await asyncpg.connect(database_url)
    try:
        fsync = await conn.fetchval("SHOW fsync")
        sync = await conn.fetchval("SHOW synchronous_commit")
        return f"fsync={fsync}, synchronous_commit={sync}"
    finally:
        await conn.close()


async def _count(database_url: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM legacy_webhooks"))
    finally:
        await conn.close()


def run() -> str:
    body = bench_gateway.BODY_FILE.read_bytes()
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "webhook.lua"
        script.write_text(
            bench_gateway.WRK_SCRIPT.format(
                path=str(bench_gateway.BODY_FILE), signature=sign(body, bench_gateway.SECRET)
            )
        )
        with fresh_database() as database_url:
            legacy, rows = measure_legacy(script, database_url)
            durability = asyncio.run(_durability(database_url))
        with fresh_vhost() as amqp_url:
            ours, accepted, depth = bench_gateway.measure_gateway(script, amqp_url)
    ratio = ours.rps / legacy.rps if legacy.rps else 0.0
    record(
        Figure(
            "legacy (insert in request)",
            throughput=legacy.rps,
            p50_ms=legacy.p50_ms,
            p99_ms=legacy.p99_ms,
        )
    )
    # The gateway's own figure (beside the bare ceiling) comes from benchmarks.gateway.
    print(f"   gateway / legacy: {ratio:.2f}x; legacy rows {rows}, wrk 2xx {legacy.ok}")
    return "\n".join(
        [
            "## Against the system being replaced",
            "",
            "The legacy shape reproduced: one Starlette process (same uvicorn options) that "
            "verifies the signature, parses the JSON and INSERTs it into PostgreSQL "
            f"(asyncpg pool of {POOL_SIZE}) before answering. Same wrk script, "
            f"`-t{bench_gateway.THREADS} -c{bench_gateway.CONNECTIONS} "
            f"-d{bench_gateway.DURATION}`, in the same run.",
            "",
            "| server | req/s | p50 | p99 | requests | non-2xx | socket errors |",
            "|---|---:|---:|---:|---:|---:|---:|",
            bench_gateway._row("legacy: insert inside the request", legacy),
            bench_gateway._row("gateway: HMAC + confirmed publish", ours),
            "",
            f"Our gateway's accepted req/s / the legacy process's: **{ratio:.2f}x**. "
            f"PostgreSQL here runs with {durability}: each legacy request waits for a WAL "
            "flush, cheap on this machine's local disk and shared by group commit; on a "
            "networked volume (milliseconds per flush) the legacy rate falls with it, and "
            "a slow or restarting PostgreSQL refuses webhooks, which our gateway never touches. "
            f"Legacy rows stored: {rows} for {legacy.ok} 2xx counted by wrk; the gateway's "
            f"queue held {depth} for its {accepted} 200s.",
        ]
    )


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "serve":
        serve(
            legacy_app(sys.argv[3], bench_gateway.SECRET),
            server_options("127.0.0.1", int(sys.argv[2]), 5.0),
        )
    else:
        print(run())

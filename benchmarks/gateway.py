"""Gateway throughput beside its ceiling: a bare Starlette endpoint that only reads the body.

Both run as one uvicorn process with the same options (uvloop, httptools, no access log) and
are loaded by wrk with the same signed webhook at the same concurrency. The gateway's figure
includes what the ceiling does not: the HMAC, and a persistent publish to a quorum queue that
RabbitMQ has confirmed before the answer. wrk, the server and RabbitMQ share the machine's
cores, so the ratio is the honest figure, not the absolute rate.

Afterwards the queue is counted: it must hold exactly as many messages as the gateway answered
200 to (its own counter), and at least as many as wrk saw 200s (wrk stops counting with up to
one request per connection still in flight, which the gateway still answers).

    python -m benchmarks gateway        (through `make bench`, which sets AMQP_URL)
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aio_pika
import httpx
import uvloop
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from benchmarks.environment import fresh_vhost
from benchmarks.figures import Figure, record
from services.webhook_gateway.app import WEBHOOK_PATH, serve, server_options
from services.webhook_gateway.signature import sign
from shared.broker import Publisher, Topology
from tests.processes import ROOT, ServiceProcess
from tests.servers import free_port, port_open
from tests.waiting import eventually_sync

CONNECTIONS = 50
THREADS = 2
DURATION = "10s"
SECRET = "bench-webhook-secret"
BODY_FILE = ROOT / "tests" / "fixtures" / "turn" / "webhook_inbound_text.json"
TARGET_RATIO = 0.35
TARGET_P99_MS = 50.0

WRK_SCRIPT = """
local f = assert(io.open({path!r}, "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Turn-Hook-Subscription"] = "whatsapp"
wrk.headers["X-Turn-Hook-Signature"] = {signature!r}
"""


async def _read_body(request: Request) -> Response:
    await request.body()
    return Response(status_code=200)


def ceiling_app() -> Starlette:
    return Starlette(routes=[Route(WEBHOOK_PATH, _read_body, methods=["POST"])])


@dataclass
class Load:
    requests: int
    non_2xx: int
    socket_errors: int
    rps: float
    p50_ms: float
    p99_ms: float

    @property
    def ok(self) -> int:
        return self.requests - self.non_2xx


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise RuntimeError(f"not a wrk duration: {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_wrk(output: str) -> Load:
    def find(pattern: str, default: str | None = None) -> str:
        match = re.search(pattern, output, re.MULTILINE)
        if match is None:
            if default is None:
                raise RuntimeError(f"wrk output lacks {pattern!r}:\n{output}")
            return default
        return match.group(1)

    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    return Load(
        requests=int(find(r"(\d+) requests in")),
        non_2xx=int(find(r"Non-2xx or 3xx responses: (\d+)", "0")),
        socket_errors=sum(int(n) for n in errors.groups()) if errors else 0,
        rps=float(find(r"Requests/sec:\s+([\d.]+)")),
        # Anchored: "+/- Stdev" columns like "75.50%" must not be taken for the 50th percentile.
        p50_ms=_ms(find(r"^\s+50%\s+(\S+)\s*$")),
        p99_ms=_ms(find(r"^\s+99%\s+(\S+)\s*$")),
    )


def wrk(url: str, script: Path) -> Load:
    command = [
        "wrk",
        f"-t{THREADS}",
        f"-c{CONNECTIONS}",
        f"-d{DURATION}",
        "--latency",
        "-s",
        str(script),
        url + WEBHOOK_PATH,
    ]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    load = parse_wrk(output)
    print(
        f"   {load.rps:8.0f} req/s  p50 {load.p50_ms:6.2f} ms  p99 {load.p99_ms:6.2f} ms  "
        f"({load.requests} requests, {load.non_2xx} non-2xx, {load.socket_errors} socket errors)",
        flush=True,
    )
    return load


def measure_ceiling(script: Path) -> Load:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.gateway", "ceiling", str(port)],
        cwd=ROOT,
        stderr=subprocess.DEVNULL,
    )
    try:
        eventually_sync(lambda: port_open(port), timeout=30, what="ceiling app")
        print("-- ceiling: bare Starlette endpoint reading the body", flush=True)
        return wrk(f"http://127.0.0.1:{port}", script)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def accepted_counter(url: str) -> int:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    match = re.search(
        r'^turnio_gateway_requests_total\{outcome="accepted"\} ([\d.e+]+)$', text, re.M
    )
    return int(float(match.group(1))) if match else 0


async def queue_depth(amqp_url: str) -> int:
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(Topology().webhook_queue, passive=True)
        return int(queue.declaration_result.message_count or 0)
    finally:
        await connection.close()


def measure_gateway(script: Path, amqp_url: str) -> tuple[Load, int, int]:
    env = {
        "AMQP_URL": amqp_url,
        "BUSINESS_NUMBER_ID": "27600000000",
        "TURNIO_WEBHOOK_SECRET": SECRET,
        "HOST": "127.0.0.1",
        "LOG_LEVEL": "WARNING",
    }
    with ServiceProcess("services.webhook_gateway", env) as service:
        asyncio.run(service.ready())
        print("-- gateway: verify, publish, confirm, answer", flush=True)
        load = wrk(service.url, script)
        # Let the requests wrk abandoned at its deadline finish before counting.
        accepted = eventually_sync(
            lambda: (accepted_counter(service.url), accepted_counter(service.url)),
            until=lambda pair: pair[0] == pair[1],
            interval=0.5,
            what="gateway settled",
        )[0]
        depth = asyncio.run(queue_depth(amqp_url))
        assert service.terminate() == 0, service.log_text()
    return load, accepted, depth


async def _publish_alone(amqp_url: str, body: bytes, seconds: float) -> tuple[float, float]:
    publisher = Publisher(amqp_url, Topology(), name="bench-publisher")
    await publisher.start(wait=True)
    done = 0
    deadline = time.monotonic() + seconds

    async def worker() -> None:
        nonlocal done
        while time.monotonic() < deadline:
            await publisher.publish(body, "webhook.whatsapp", {"x-source": "bench"})
            done += 1

    started, cpu = time.perf_counter(), time.process_time()
    try:
        await asyncio.gather(*(worker() for _ in range(CONNECTIONS)))
    finally:
        await publisher.close()
    elapsed = time.perf_counter() - started
    return done / elapsed, (time.process_time() - cpu) / done * 1e6


def measure_publisher(body: bytes) -> tuple[float, float]:
    """The confirmed publish alone, no HTTP: what the gateway could at best approach."""
    with fresh_vhost() as amqp_url:
        print(f"-- publisher alone: {CONNECTIONS} concurrent confirmed publishes", flush=True)
        rate, cpu_us = uvloop.run(_publish_alone(amqp_url, body, 5.0))
    print(f"   {rate:8.0f} msg/s  {cpu_us:.0f} us of CPU per message in the client", flush=True)
    return rate, cpu_us


def run() -> str:
    body = BODY_FILE.read_bytes()
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "webhook.lua"
        script.write_text(WRK_SCRIPT.format(path=str(BODY_FILE), signature=sign(body, SECRET)))
        ceiling = measure_ceiling(script)
        with fresh_vhost() as amqp_url:
            gateway, accepted, depth = measure_gateway(script, amqp_url)
    publish_rate, publish_cpu_us = measure_publisher(body)

    ratio = gateway.rps / ceiling.rps if ceiling.rps else 0.0
    record(
        Figure(
            "gateway",
            throughput=gateway.rps,
            p50_ms=gateway.p50_ms,
            p99_ms=gateway.p99_ms,
            baseline="bare Starlette (ceiling)",
            baseline_throughput=ceiling.rps,
        )
    )
    exact = depth == accepted and gateway.ok <= depth <= gateway.ok + CONNECTIONS
    verdict = (
        f"ratio {ratio:.0%} (target >= {TARGET_RATIO:.0%}: "
        f"{'met' if ratio >= TARGET_RATIO else 'missed'}), "
        f"p99 {gateway.p99_ms:.1f} ms (target <= {TARGET_P99_MS:.0f} ms: "
        f"{'met' if gateway.p99_ms <= TARGET_P99_MS else 'missed'})"
    )
    print(f"   {verdict}; queue {depth}, gateway 200s {accepted}, wrk 2xx {gateway.ok}")
    return "\n".join(
        [
            "## Gateway",
            "",
            f"`wrk -t{THREADS} -c{CONNECTIONS} -d{DURATION} --latency` POSTing "
            f"`{BODY_FILE.name}` ({len(body)} bytes, signed), one uvicorn process each "
            "(uvloop, httptools, no access log); wrk, server and RabbitMQ share the cores.",
            "",
            "| server | req/s | p50 | p99 | requests | non-2xx | socket errors |",
            "|---|---:|---:|---:|---:|---:|---:|",
            _row("ceiling: Starlette endpoint that only reads the body", ceiling),
            _row("gateway: HMAC + confirmed persistent publish (quorum queue)", gateway),
            "",
            f"Gateway / ceiling: **{verdict}**.",
            "",
            f"For scale, the confirmed publish alone (shared.broker.Publisher, {CONNECTIONS} "
            f"concurrent, no HTTP, no wrk) reached **{publish_rate:,.0f} msg/s** at "
            f"{publish_cpu_us:.0f} µs of client CPU per message: "
            f"{publish_rate / ceiling.rps if ceiling.rps else 0:.0%} of the ceiling by itself.",
            "",
            f"Nothing lost: the queue holds **{depth}** messages; the gateway answered "
            f"**{accepted}** with 200 (its counter); wrk counted **{gateway.ok}** 2xx before "
            f"its deadline (it drops up to {CONNECTIONS} in-flight answers). "
            f"{'Consistent.' if exact else 'INCONSISTENT - investigate.'}",
        ]
    )


def _row(name: str, load: Load) -> str:
    return (
        f"| {name} | {load.rps:,.0f} | {load.p50_ms:.2f} ms | {load.p99_ms:.2f} ms | "
        f"{load.requests:,} | {load.non_2xx} | {load.socket_errors} |"
    )


def _serve_ceiling(port: int) -> None:
    serve(ceiling_app(), server_options("127.0.0.1", port, 5.0))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "ceiling":
        _serve_ceiling(int(sys.argv[2]))
    else:
        print(run())

"""End-to-end latency: from the gateway taking a webhook to its row being visible in
PostgreSQL, at half the maximum rate measured in the same run.

1. The maximum: wrk with benchmarks/gateway.py's script and settings against the gateway while
   one writer consumes (the rate the system's front door accepts).
2. Half of it: wrk again, paced by its `delay()` hook, each request a different signed inbound
   message, for DURATION seconds.
3. Meanwhile this process polls `webhook_events` every POLL seconds for new message rows and
   notes the wall time each first appears; latency = that time - the row's `received_at` (set
   by the gateway when the request arrived, carried in the x-received-at header). That is the
   webhook's answer time plus the broker, batch and commit: an upper bound on "200 -> row
   visible", with POLL of resolution.

    python -m benchmarks latency        (through `make bench`)
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import asyncpg
import orjson

from benchmarks import gateway as bench_gateway
from benchmarks.environment import fresh_database, fresh_vhost
from benchmarks.figures import Figure, record
from services.webhook_gateway.app import WEBHOOK_PATH
from services.webhook_gateway.signature import sign
from tests.processes import ServiceProcess

DURATION = 10
CONNECTIONS = 20
POLL = 0.005

PACED_SCRIPT = """
local bodies, sigs, counter = {{}}, {{}}, 0
local threads = {{}}
function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end
function init(args)
  local n = 0
  for line in io.lines({bodies!r}) do
    if n % {threads} == tid then table.insert(bodies, line) end
    n = n + 1
  end
  n = 0
  for line in io.lines({sigs!r}) do
    if n % {threads} == tid then table.insert(sigs, line) end
    n = n + 1
  end
end
function request()
  counter = counter + 1
  local i = ((counter - 1) % #bodies) + 1
  return wrk.format("POST", nil, {{
    ["Content-Type"] = "application/json",
    ["X-Turn-Hook-Subscription"] = "whatsapp",
    ["X-Turn-Hook-Signature"] = sigs[i],
  }}, bodies[i])
end
function delay()
  return {delay_ms}
end
"""


def bodies(count: int) -> list[bytes]:
    template = orjson.loads(bench_gateway.BODY_FILE.read_bytes())
    out = []
    for n in range(count):
        template["messages"][0]["id"] = f"wamid.latency{n:09d}"
        out.append(orjson.dumps(template))
    return out


class Watcher:
    """Polls for new message rows from a thread; first-seen wall time per row."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.latencies: list[float] = []  # seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._poll()), daemon=True)

    def __enter__(self) -> Watcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    async def _poll(self) -> None:
        conn = await asyncpg.connect(self.database_url)
        last = int(await conn.fetchval("SELECT coalesce(max(id), 0) FROM webhook_events"))
        try:
            while not self._stop.is_set():
                rows = await conn.fetch(
                    "SELECT id, received_at FROM webhook_events "
                    "WHERE id > $1 AND event_type = 'message' ORDER BY id",
                    last,
                )
                seen = time.time()
                for row in rows:
                    self.latencies.append(seen - row["received_at"].timestamp())
                if rows:
                    last = rows[-1]["id"]
                # The poll interval is the resolution of the measurement, not a race fix.
                await asyncio.sleep(POLL)
        finally:
            await conn.close()


def paced(url: str, tmp: Path, rate: float) -> bench_gateway.Load:
    count = int(rate * DURATION * 1.3) + 100
    made = bodies(count)
    (tmp / "bodies.txt").write_bytes(b"\n".join(made) + b"\n")
    (tmp / "sigs.txt").write_text(
        "\n".join(sign(body, bench_gateway.SECRET) for body in made) + "\n"
    )
    script = tmp / "paced.lua"
    script.write_text(
        PACED_SCRIPT.format(
            bodies=str(tmp / "bodies.txt"),
            sigs=str(tmp / "sigs.txt"),
            threads=bench_gateway.THREADS,
            # wrk's delay() comes on top of each answer (~5 ms here): subtract it.
            delay_ms=max(1, round(1000 * CONNECTIONS / rate) - 5),
        )
    )
    command = [
        "wrk",
        f"-t{bench_gateway.THREADS}",
        f"-c{CONNECTIONS}",
        f"-d{DURATION}s",
        "--latency",
        "-s",
        str(script),
        url + WEBHOOK_PATH,
    ]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return bench_gateway.parse_wrk(output)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def run() -> str:
    with (
        tempfile.TemporaryDirectory() as tmp_name,
        fresh_database() as database_url,
        fresh_vhost() as amqp_url,
    ):
        tmp = Path(tmp_name)
        common = {
            "DATABASE_URL": database_url,
            "AMQP_URL": amqp_url,
            "BUSINESS_NUMBER_ID": "27600000000",
            "HOST": "127.0.0.1",
            "LOG_LEVEL": "WARNING",
        }
        gateway_env = common | {"TURNIO_WEBHOOK_SECRET": bench_gateway.SECRET}
        with (
            ServiceProcess("services.webhook_gateway", gateway_env) as gateway,
            ServiceProcess("services.db_writer", common) as writer,
        ):
            asyncio.run(gateway.ready())
            asyncio.run(writer.ready())
            single = tmp / "single.lua"
            body = bench_gateway.BODY_FILE.read_bytes()
            single.write_text(
                bench_gateway.WRK_SCRIPT.format(
                    path=str(bench_gateway.BODY_FILE), signature=sign(body, bench_gateway.SECRET)
                )
            )
            print("-- maximum: the gateway under wrk while the writer consumes", flush=True)
            top = bench_gateway.wrk(gateway.url, single)
            target = top.rps / 2
            print(f"-- paced at half: {target:.0f} req/s, each a new message", flush=True)
            with Watcher(database_url) as watcher:
                load = paced(gateway.url, tmp, target)
                expected = load.ok
                deadline = time.monotonic() + 60
                while len(watcher.latencies) < expected and time.monotonic() < deadline:
                    time.sleep(0.1)  # waiting for the tail of rows; bounded by the deadline
            latencies = [s * 1000 for s in watcher.latencies]
            gateway.terminate()
            writer.terminate()
    if not latencies:
        raise RuntimeError("no row became visible")
    p50, p99 = percentile(latencies, 0.50), percentile(latencies, 0.99)
    print(
        f"   {load.rps:.0f} req/s sent; {len(latencies)} rows seen of {load.ok} 200s; "
        f"received -> visible p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {max(latencies):.1f} ms",
        flush=True,
    )
    record(Figure("end to end (200 -> row)", throughput=load.rps, p50_ms=p50, p99_ms=p99))
    return "\n".join(
        [
            "## End-to-end latency",
            "",
            "From the gateway taking a webhook (its `x-received-at`) to the row being visible "
            "in PostgreSQL, one gateway and one writer (default batch settings: a batch waits "
            "up to 0.2 s to fill, which dominates the figure), at half the "
            f"maximum rate measured in the same run; each request a different signed message; "
            f"rows polled every {POLL * 1000:.0f} ms (the resolution).",
            "",
            "| | req/s | p50 | p99 | mean | max |",
            "|---|---:|---:|---:|---:|---:|",
            f"| maximum (wrk, {bench_gateway.CONNECTIONS} connections, gateway answer) | "
            f"{top.rps:,.0f} | {top.p50_ms:.1f} ms | {top.p99_ms:.1f} ms | | |",
            f"| half rate, gateway answer (wrk) | {load.rps:,.0f} | {load.p50_ms:.1f} ms | "
            f"{load.p99_ms:.1f} ms | | |",
            f"| half rate, received -> row visible | {load.rps:,.0f} | **{p50:.1f} ms** | "
            f"**{p99:.1f} ms** | {statistics.fmean(latencies):.1f} ms | "
            f"{max(latencies):.1f} ms |",
            "",
            f"{len(latencies)} rows seen for {load.ok} answers 200 counted by wrk "
            "(wrk does not count answers still in flight at its deadline).",
        ]
    )


if __name__ == "__main__":
    print(run())

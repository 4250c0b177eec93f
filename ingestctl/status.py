"""`status`: one screen answering "is ingestion healthy, and if not, where is it stuck?"

PostgreSQL and RabbitMQ are asked independently: when one is down the other's half is still
shown, with one plain line saying what is unreachable.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from ingestctl import management, state
from ingestctl.settings import CtlSettings
from shared.errors import IngestError


@dataclass
class Report:
    number: str
    vhost: str
    database: state.DatabaseReport | None = None
    queues: list[management.QueueDepth] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return not self.problems

    def as_json(self) -> dict[str, Any]:
        def plain(value: Any) -> Any:
            if isinstance(value, datetime):
                return value.isoformat()
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items()}
            if isinstance(value, list):
                return [plain(v) for v in value]
            return value

        document: dict[str, Any] = plain(
            {
                "business_number_id": self.number,
                "vhost": self.vhost,
                "database": asdict(self.database) if self.database else None,
                "queues": [asdict(q) for q in self.queues],
                "problems": self.problems,
            }
        )
        return document


async def gather(settings: CtlSettings) -> Report:
    report = Report(settings.business_number_id, settings.vhost)
    try:
        async with state.connect(settings.database_url) as pool:
            report.database = await state.read(pool, settings.business_number_id)
    except IngestError as exc:
        report.problems.append(str(exc))
    for stream in report.database.streams if report.database else []:
        if stream.lease_holder is None or stream.lease_expired:
            report.problems.append(f"{stream.stream}: no puller holds the lease (is it running?)")
    topology = settings.topology
    names = [*topology.bindings(), topology.dead_queue]
    try:
        report.queues = await management.depths(settings.management_url, settings.vhost, names)
    except IngestError as exc:
        report.problems.append(str(exc))
    dead = [q for q in report.queues if q.name == topology.dead_queue and q.messages]
    if dead:
        report.problems.append(
            f"{dead[0].messages} dead letter(s) in {topology.dead_queue}: ingestctl dlq list"
        )
    missing = [q.name for q in report.queues if not q.exists]
    if missing:
        report.problems.append(f"queues not declared yet: {', '.join(missing)}")
    return report


def _ts(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value else "-"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def render(report: Report) -> str:
    lines = [f"turnio-ingest  number {report.number}  vhost {report.vhost}"]
    db = report.database
    if db is not None:
        lines += ["", f"STREAMS (database time {_ts(db.now)})"]
        lines.append(f"  {'stream':<10} {'checkpoint':<26} {'lag':>7}  lease")
        for s in db.streams:
            if s.lease_holder is None:
                lease = "NO HOLDER"
            elif s.lease_expired:
                lease = f"EXPIRED {s.lease_holder} (at {_ts(s.lease_expires_at)})"
            else:
                assert s.lease_expires_at is not None
                left = (s.lease_expires_at - db.now).total_seconds()
                lease = f"{s.lease_holder} (renew within {duration(left)})"
            lines.append(
                f"  {s.stream:<10} {_ts(s.checkpoint):<26} {duration(s.lag_seconds):>7}  {lease}"
            )
        lines += ["", "SWEEPS"]
        if not db.sweeps:
            lines.append("  none recorded yet")
        for w in db.sweeps:
            running = w.last_started_at and (
                w.last_finished_at is None or w.last_finished_at < w.last_started_at
            )
            tail = (
                f"RUNNING, at {_ts(w.position)}"
                if running
                else f"finished {_ts(w.last_finished_at)}"
            )
            lines.append(f"  {w.stream:<10} {w.sweep:<10} started {_ts(w.last_started_at)}  {tail}")
        lines += ["", "BACK-FILLS PENDING"]
        if not db.backfills:
            lines.append("  none")
        for b in db.backfills:
            progress = (
                f"started {_ts(b.started_at)}, at {_ts(b.position)}" if b.started_at else "queued"
            )
            lines.append(
                f"  #{b.id:<5} {b.stream:<10} {_ts(b.from_ts)} .. {_ts(b.until_ts)}  {progress}"
            )
    if report.queues:
        lines += ["", "QUEUES"]
        lines.append(
            f"  {'queue':<24} {'messages':>9} {'ready':>9} {'unacked':>9} {'consumers':>9}"
        )
        for q in report.queues:
            if not q.exists:
                lines.append(f"  {q.name:<24} (not declared)")
                continue
            lines.append(
                f"  {q.name:<24} {q.messages:>9} {q.ready:>9} {q.unacked:>9} {q.consumers:>9}"
            )
    lines.append("")
    if report.problems:
        lines += [f"PROBLEM: {p}" for p in report.problems]
    else:
        lines.append("OK")
    return "\n".join(lines)

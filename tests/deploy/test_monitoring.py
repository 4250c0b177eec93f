"""deploy/monitoring: rules and dashboard name only metrics that exist, and pass promtool.

promtool comes from Debian's `prometheus` package; without it those checks skip (with the
reason), the name checks still run.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import re
import shutil
import subprocess
from asyncio.subprocess import PIPE, STDOUT

import httpx
import pytest
import yaml
from starlette.applications import Starlette

from shared.probes import probe_routes
from tests.deploy.conftest import ROOT

MONITORING = ROOT / "deploy" / "monitoring"
ALERTS = MONITORING / "alerts.yaml"
DASHBOARD = MONITORING / "grafana-dashboard.json"
METRIC_MODULES = sorted(ROOT.glob("services/*/metrics.py"))
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (Debian package `prometheus`)"
)
# Series that come from RabbitMQ's prometheus plugin (per-object metrics), not from us.
RABBITMQ_SERIES = frozenset(
    {"rabbitmq_queue_messages", "rabbitmq_queue_messages_ready", "rabbitmq_queue_messages_unacked"}
    | {"rabbitmq_queue_consumers", "rabbitmq_alarms_memory_used_watermark"}
    | {"rabbitmq_alarms_free_disk_space_watermark"}
)


def _defined_metric_names() -> set[str]:
    """Sample names the services can expose, from each services/*/metrics.py."""
    names: set[str] = set()
    for path in METRIC_MODULES:
        source = path.read_text()
        for kind, name in re.findall(r"\b(Counter|Gauge|Histogram|Summary)\(\s*\"(\w+)\"", source):
            base = name.removesuffix("_total")
            if kind == "Counter":
                names |= {f"{base}_total", f"{base}_created"}
            elif kind == "Histogram":
                names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
            else:
                names.add(name)
    return names


def _referenced(expression: str) -> set[str]:
    return set(re.findall(r"\b(turnio_\w+|rabbitmq_\w+)", expression))


def _alert_expressions() -> dict[str, str]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return {rule["alert"]: rule["expr"] for group in groups for rule in group["rules"]}


def _dashboard_expressions() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [t["expr"] for p in panels for t in p.get("targets", [])]


def test_alerts_cover_the_failures_operators_must_hear_about() -> None:
    expressions = _alert_expressions()
    wanted = {
        "lag": "turnio_message_puller_lag_seconds",
        "no lease holder": "turnio_message_puller_lease_held",
        "dead letters": 'rabbitmq_queue_messages{queue="turnio.dead"}',
        "503s": 'turnio_gateway_requests_total{outcome="unavailable"}',
        "signature failures": "turnio_gateway_signature_failures_total",
        "writer not ready": "turnio_writer_database_up",
    }
    for what, needle in wanted.items():
        assert any(needle in e for e in expressions.values()), what
    for group in yaml.safe_load(ALERTS.read_text())["groups"]:
        for rule in group["rules"]:
            assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
            assert rule["annotations"]["runbook"].startswith("docs/operations.md#")


def test_runbook_anchors_exist_in_the_operations_doc() -> None:
    doc = (ROOT / "docs" / "operations.md").read_text()
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", heading.lower()).replace(" ", "-")
        for heading in re.findall(r"^#+ (.+)$", doc, re.MULTILINE)
    }
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    for rule in (r for g in groups for r in g["rules"]):
        assert rule["annotations"]["runbook"].split("#")[1] in anchors, rule["alert"]


@pytest.mark.parametrize("source", ["alerts", "dashboard"])
def test_every_metric_named_exists(source: str) -> None:
    expressions = (
        list(_alert_expressions().values()) if source == "alerts" else _dashboard_expressions()
    )
    known = _defined_metric_names() | RABBITMQ_SERIES
    unknown = {name for e in expressions for name in _referenced(e)} - known
    assert unknown == set()


def test_dashboard_panels_query_prometheus() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len(panels) >= 12
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], panel["title"]
    titles = " ".join(p["title"].lower() for p in panels)
    for topic in ("outcome", "latency", "backlog", "rows", "dead letters", "lag", "budget"):
        assert topic in titles


@needs_promtool
def test_promtool_accepts_the_rules() -> None:
    assert PROMTOOL is not None
    run = subprocess.run(
        [PROMTOOL, "check", "rules", str(ALERTS)], capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stdout + run.stderr


async def _scrape_metrics() -> bytes:
    """The services' /metrics, served by the same route they use (shared.probes)."""
    for path in METRIC_MODULES:
        importlib.import_module(".".join(path.relative_to(ROOT).with_suffix("").parts))
    app = Starlette(routes=probe_routes(lambda: {}))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://probe"
    ) as client:
        response = await client.get("/metrics")
    assert response.status_code == 200
    return response.content


@needs_promtool
async def test_promtool_accepts_the_exposed_metrics() -> None:
    assert PROMTOOL is not None
    exposition = await _scrape_metrics()
    names = set(re.findall(rb"^# TYPE (turnio_\w+)", exposition, re.MULTILINE))
    assert len(names) >= len(METRIC_MODULES) * 3
    process = await asyncio.create_subprocess_exec(
        PROMTOOL, "check", "metrics", stdin=PIPE, stdout=PIPE, stderr=STDOUT
    )
    output, _ = await process.communicate(exposition)
    # promtool prints lint problems and exits 1; clean output is the contract.
    assert process.returncode == 0, output.decode()
    assert output.strip() == b""


def test_metric_modules_are_found() -> None:
    found = {p.parent.name for p in METRIC_MODULES}
    assert found >= {"webhook_gateway", "db_writer", "message_puller", "contact_puller"}

"""Figures the benchmarks measured, kept beside docs/benchmarks.md for the plot.

Each module's `run()` returns Markdown for people; numbers for the plot go through here, one
record per component, merged into docs/benchmark-figures.json (the last run of a component
wins, so running one module alone keeps the others' figures).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

FILE = Path(__file__).resolve().parent.parent / "docs" / "benchmark-figures.json"


@dataclass(frozen=True)
class Figure:
    component: str
    throughput: float | None = None  # per second, in `unit`
    unit: str = "req/s"
    p50_ms: float | None = None
    p99_ms: float | None = None
    baseline: str | None = None  # the name of the same-run baseline it is compared with
    baseline_throughput: float | None = None


def record(figure: Figure, path: Path = FILE) -> None:
    figures = {f.component: f for f in load(path)}
    figures[figure.component] = figure
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps([asdict(f) for f in figures.values()], indent=2) + "\n")


def load(path: Path = FILE) -> list[Figure]:
    try:
        return [Figure(**item) for item in json.loads(path.read_text())]
    except FileNotFoundError:
        return []

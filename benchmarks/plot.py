"""A PNG of throughput and latency per component, from the figures the benchmarks recorded
(benchmarks/figures.py, docs/benchmark-figures.json), into docs/benchmarks.png.

Run last, after the modules that measure: `python -m benchmarks plot` or `python -m
benchmarks.plot`. Components that recorded no figures are left out, not drawn as zero.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display here; a file is the product

import matplotlib.pyplot as plt
from matplotlib import ticker

from benchmarks.figures import FILE, Figure, load

PNG = FILE.parent / "benchmarks.png"


def draw(figures: list[Figure], path: Path = PNG) -> Path:
    rated = [f for f in figures if f.throughput is not None and f.unit != "MB"]
    timed = [f for f in figures if f.p50_ms is not None]
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5), constrained_layout=True)

    names = [f"{f.component}\n({f.unit})" for f in rated]
    left.barh(names, [f.throughput or 0 for f in rated], color="#4878a8", label="measured")
    baselines = [f.baseline_throughput or 0 for f in rated]
    if any(baselines):
        left.barh(
            names,
            baselines,
            color="none",
            edgecolor="#c44e52",
            hatch="//",
            label="same-run baseline",
        )
    left.set_title("Throughput per component (per second)")
    left.invert_yaxis()
    left.legend(loc="lower right")
    for y, f in enumerate(rated):
        left.text(f.throughput or 0, y, f" {f.throughput:,.0f}", va="center", fontsize=8)

    labels = [f.component for f in timed]
    ys = range(len(timed))
    right.barh(
        [y - 0.2 for y in ys],
        [f.p50_ms or 0 for f in timed],
        height=0.4,
        color="#55a868",
        label="p50",
    )
    right.barh(
        [y + 0.2 for y in ys],
        [f.p99_ms or 0 for f in timed],
        height=0.4,
        color="#dd8452",
        label="p99",
    )
    right.set_yticks(list(ys), labels)
    right.set_xscale("log")
    right.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    right.xaxis.set_minor_formatter(ticker.NullFormatter())
    right.set_xlabel("milliseconds (log scale)")
    right.set_title("Latency per component")
    right.invert_yaxis()
    right.legend(loc="lower right")

    path.parent.mkdir(exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def run() -> str:
    figures = load()
    if not figures:
        return "## Plot\n\nNo figures recorded yet: run the benchmarks first."
    path = draw(figures)
    print(f"   plotted {len(figures)} components into {path}", flush=True)
    return f"## Plot\n\n![Throughput and latency per component]({path.name})"


if __name__ == "__main__":
    print(run())

"""Run every benchmark in one process, print the figures, write docs/benchmarks.md.

Each benchmark module exposes `run() -> str`: it measures, prints as it goes, and returns a
Markdown section with its figures beside its baseline's.
"""

from __future__ import annotations

import importlib
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

MODULES = [
    "benchmarks.gateway",
    "benchmarks.writer",
    "benchmarks.puller",
    "benchmarks.contacts",
    "benchmarks.latency",
    "benchmarks.memory",
    "benchmarks.legacy",
    "benchmarks.plot",  # last: draws what the others recorded
]
DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    return f"{cpu}, {cores} cores, Python {platform.python_version()}, {platform.platform()}"


def command() -> str:
    """The command as run, with any BENCH_* sizes that were set, so the run can be repeated."""
    sizes = sorted(f"{k}={v}" for k, v in os.environ.items() if k.startswith("BENCH_"))
    return " ".join([*sizes, "make bench"])


def main() -> None:
    only = sys.argv[1:]
    sections = []
    for name in MODULES:
        if only and name.rsplit(".", 1)[1] not in only:
            continue
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError:
            print(f"(skipping {name}: not written yet)")
            continue
        print(f"== {name}", flush=True)
        sections.append(module.run())
    if only:
        # A partial run prints its sections; docs/benchmarks.md holds only full runs.
        print("\n\n".join(sections))
        return
    header = (
        "# Benchmarks\n\n"
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} with `{command()}` "
        f"on {machine()}.\n"
        "Every figure is beside a baseline measured in the same run on the same machine; "
        "compare ratios, not absolute numbers, across machines.\n"
    )
    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text(header + "\n" + "\n\n".join(sections) + "\n")
    print(f"written {DOC}")


if __name__ == "__main__":
    main()

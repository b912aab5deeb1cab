#!/usr/bin/env python3
"""Plot the budget runs of bench/delivery.py: the share of the usable budget turned into work,
against HubSpot's latency, for each workload and each run given (before / after a change).

usage: bench/plot_budget.py LABEL=RUN.json [LABEL=RUN.json ...] --out docs/img/budget.png
       (RUN.json: what `bench/delivery.py --only budget` prints; several files per label are merged)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def share(run: dict[str, Any]) -> float:
    """The time the work needs at the usable budget over the time it took (see delivery.py)."""
    return run["minimum_calls"] / (run["usable_per_10s"] / 10) / run["span_s"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="LABEL=FILE.json")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: dict[tuple[str, str], dict[int, float]] = {}
    for spec in args.runs:
        label, _, path = spec.partition("=")
        for run in json.loads(Path(path).read_text())["budget"]:
            series.setdefault((label, run["workload"]), {})[run["latency_ms"]] = share(run)
    fig, ax = plt.subplots(figsize=(7.5, 4))
    for (label, workload), points in sorted(series.items()):
        xs = sorted(points)
        ax.plot(
            xs,
            [100 * points[x] for x in xs],
            marker="o",
            linestyle="-" if label != "before" else "--",
            label=f"{label}: {workload}",
        )
    ax.axhline(90, color="grey", linewidth=0.8, linestyle=":")
    ax.axhline(80, color="grey", linewidth=0.8, linestyle=":")
    ax.set_xlabel("HubSpot's latency per call (ms)")
    ax.set_ylabel("% of the usable budget turned into work")
    ax.set_title("Professional portal (190 calls / 10 s, 10% left for others)", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Plot bench/scale.py's results: ingest (messages per second stored) and delivery (share of the
usable budget) for one process on SQLite and 1, 2, 3 processes on one Redis.

usage: bench/plot_scale.py RESULTS.json --out docs/img/scale.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = json.loads(args.results.read_text())
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    ingest = data.get("ingest", {})
    labels = list(ingest)
    left.bar(labels, [ingest[k]["messages_per_s"] / 1000 for k in labels], color="#4c72b0")
    for i, k in enumerate(labels):
        left.annotate(
            f"{ingest[k]['vs_sqlite_1']:.2f}x",
            (i, ingest[k]["messages_per_s"] / 1000),
            ha="center",
            va="bottom",
        )
    left.set_ylabel("thousand messages stored per second")
    left.set_title("Ingest, all processes on one 2-core machine", fontsize=10)
    runs = data.get("delivery", [])
    workloads = sorted({r["workload"] for r in runs})
    setups = list(dict.fromkeys(r["setup"] for r in runs))
    width = 0.8 / max(1, len(workloads))
    for j, w in enumerate(workloads):
        shares = [
            next((100 * r["share_of_ceiling"] for r in runs if r["setup"] == s and r["workload"] == w), 0)
            for s in setups
        ]
        right.bar([i + j * width for i in range(len(setups))], shares, width, label=w)
    if "scenario" in data:
        scenario = 100 * data["scenario"]["share_of_ceiling"]
        right.axhline(scenario, color="black", linewidth=0.8, linestyle="--", label="3 processes, kill -9")
    right.axhline(90, color="grey", linewidth=0.8, linestyle=":")
    right.set_xticks([i + width * (len(workloads) - 1) / 2 for i in range(len(setups))], setups)
    right.set_ylabel("% of the usable budget (171 calls / 10 s)")
    right.set_title("Delivery at 300 ms a call, one shared budget", fontsize=10)
    right.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)


if __name__ == "__main__":
    main()

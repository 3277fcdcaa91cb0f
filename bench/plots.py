"""Draws the figures of docs/benchmarks.md (run by report.py in the bench venv, which has
matplotlib). Reads a JSON spec on stdin: per scenario, rows of
[label, [median, min, max] per metric]."""
import json
import os
import sys

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def bars(ax, rows, index, title, unit, log=False, highlight="ours"):
    labels = [r[0] for r in rows]
    med = [r[index][0] for r in rows]
    err = [[r[index][0] - r[index][1] for r in rows], [r[index][2] - r[index][0] for r in rows]]
    colors = ["tab:red" if lbl == highlight else "tab:gray" if "memcpy" in lbl else "tab:blue"
              for lbl in labels]
    y = range(len(rows))
    ax.barh(y, med, xerr=err, color=colors, capsize=3)
    ax.set_yticks(list(y), labels)
    ax.invert_yaxis()
    ax.set_xlabel(unit)
    ax.set_title(title)
    if log:
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    for i, (v, hi) in enumerate(zip(med, [r[index][2] for r in rows])):
        ax.annotate(f"{v:,.0f}" if v >= 100 else f"{v:.3g}", (max(v, hi), i), xytext=(4, 0), textcoords="offset points",
                    va="center", fontsize=8)


def main():
    spec = json.load(sys.stdin)
    out = spec["dir"]
    series = spec["series"]
    if series.get("s1"):
        fig, axes = plt.subplots(1, 2, figsize=(11, 3.2))
        bars(axes[0], series["s1"], 1, "put + get, p50", "µs (log)", log=True)
        bars(axes[1], series["s1"], 2, "put + get, p99", "µs (log)", log=True)
        axes[1].set_yticks([])
        fig.suptitle("Scenario 1: small array (8 int64), latency per put + get")
        fig.tight_layout()
        fig.savefig(os.path.join(out, spec["files"]["s1"]), dpi=100)
    if series.get("s2"):
        rows = series["s2"]
        fig, axes = plt.subplots(1, 2, figsize=(11, 3.2))
        refs = spec["refs"]
        mem = [r for r in rows if "memcpy" in r[0]]
        systems_ = [r for r in rows if "memcpy" not in r[0]]
        if refs:
            systems_ += [["memcpy, fresh", [refs["fresh"]] * 3],
                         ["memcpy, resident", [refs["resident"]] * 3]]
        bars(axes[0], systems_, 1, "put throughput", "GB/s")
        get_rows = [r for r in rows if r not in mem]
        bars(axes[1], get_rows, 3, "get latency", "ms (log)", log=True)
        fig.suptitle(f"Scenario 2: {spec['s2_size']} float64 array")
        fig.tight_layout()
        fig.savefig(os.path.join(out, spec["files"]["s2"]), dpi=100)
    if series.get("s7"):
        fig, ax = plt.subplots(figsize=(7, 3.2))
        bars(ax, series["s7"], 1, f"{spec['s7_clients']} concurrent clients: small put + get",
             "operations per second (log)", log=True)
        fig.tight_layout()
        fig.savefig(os.path.join(out, spec["files"]["s7"]), dpi=100)


if __name__ == "__main__":
    main()

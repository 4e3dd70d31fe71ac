"""Reports of one simulated run: plain CSV files a spreadsheet opens, and a per-layer cycles plot.

``write_run_report(result, out_dir)`` writes

* ``summary.csv``: one row of headline numbers (``Result.summary()``);
* ``layers.csv``: one row per layer (``Result.layers()``);
* ``units.csv``: busy/idle cycles per hardware unit (``Result.units()``);
* ``layer_cycles.png``: cycles per layer as a bar chart, coloured by where the layer ran;

and returns the paths written. Files are written to a temporary name and renamed, so an interrupted
run leaves no half-written file behind.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

__all__ = ["write_run_report", "plot_layer_cycles"]


class _RunResult(Protocol):
    def summary(self) -> dict[str, object]: ...
    def layers(self) -> pd.DataFrame: ...
    def units(self) -> pd.DataFrame: ...


def write_run_report(result: _RunResult, out_dir: str | Path) -> dict[str, Path]:
    """Write the CSVs and the plot for ``result`` into ``out_dir`` (created if missing)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    layers = result.layers()
    written = {
        "summary": _write_csv(pd.DataFrame([result.summary()]), out / "summary.csv"),
        "layers": _write_csv(layers, out / "layers.csv"),
        "units": _write_csv(result.units(), out / "units.csv"),
    }
    figure = plot_layer_cycles(layers, title=f"{result.summary()['workload']} on {result.summary()['arch']}")
    written["layer_cycles"] = _save_figure(figure, out / "layer_cycles.png")
    return written


def plot_layer_cycles(layers: pd.DataFrame, *, title: str = "") -> plt.Figure:
    """Bar chart of each layer's cycles (its span from first to last command)."""
    shown = layers[layers["cycles"] > 0]
    colours = {"conv": "tab:blue", "gemm": "tab:orange", "matmul": "tab:purple"}
    fig, ax = plt.subplots(figsize=(max(6.0, 0.18 * len(shown) + 2), 4.0), layout="constrained")
    ax.bar(range(len(shown)), shown["cycles"], color=[colours.get(op, "tab:green") for op in shown["op"]])
    ax.set_xticks(range(len(shown)), shown["layer"], rotation=90, fontsize=6 if len(shown) > 30 else 8)
    ax.set_ylabel("cycles")
    ax.set_title(title or "cycles per layer")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in (*colours.values(), "tab:green")]
    ax.legend(handles, [*colours, "vector"], fontsize=8)
    return fig


def _write_csv(frame: pd.DataFrame, path: Path) -> Path:
    tmp = path.with_name(path.name + ".tmp")
    frame.to_csv(tmp, index=False)
    os.replace(tmp, path)
    return path


def _save_figure(fig: plt.Figure, path: Path) -> Path:
    tmp = path.with_name(path.stem + ".tmp" + path.suffix)
    try:
        fig.savefig(tmp, dpi=120)
    finally:
        plt.close(fig)
    os.replace(tmp, path)
    return path

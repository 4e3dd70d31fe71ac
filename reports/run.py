"""Reports of one simulated run: plain CSV files a spreadsheet opens, plots, and the trace.

``write_run_report(result, out_dir)`` writes

* ``summary.csv``: one row of headline numbers (``Result.summary()``);
* ``layers.csv``: one row per layer (``Result.layers()``);
* ``units.csv``: busy/idle cycles per hardware unit (``Result.units()``);
* ``layer_cycles.png``: cycles per layer as a bar chart, coloured by where the layer ran;
* ``energy.csv``: energy by component (dynamic, static, total);
* ``power.csv`` and ``power.png``: power over time in windows of ``power_window_cycles`` cycles
  (default: the run in about 200 windows);
* ``trace.json``: the Chrome/Perfetto trace of every command (open it in ui.perfetto.dev);

and returns the paths written. Files are written to a temporary name and renamed, so an interrupted
run leaves no half-written file behind.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

__all__ = ["write_run_report", "plot_layer_cycles", "plot_power"]


class _Energy(Protocol):
    dynamic_by_component: Mapping[str, float]
    static_by_component: Mapping[str, float]

    def timeline(self, window_cycles: int) -> pd.DataFrame: ...


class _RunResult(Protocol):
    total_cycles: int
    energy: _Energy

    def summary(self) -> dict[str, object]: ...
    def layers(self) -> pd.DataFrame: ...
    def units(self) -> pd.DataFrame: ...
    def write_trace(self, path: Path, *, power_window_cycles: int | None = None) -> Path: ...


def write_run_report(result: _RunResult, out_dir: str | Path, *,
                     power_window_cycles: int | None = None) -> dict[str, Path]:
    """Write the CSVs, the plots and the trace for ``result`` into ``out_dir`` (created if missing)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = result.summary()
    window = power_window_cycles or max(1, result.total_cycles // 200)
    layers = result.layers()
    flat_summary = {k: v for k, v in summary.items() if not isinstance(v, dict)}
    energy = result.energy
    components = sorted(set(energy.dynamic_by_component) | set(energy.static_by_component))
    energy_rows = [{"component": c, "dynamic_pj": energy.dynamic_by_component.get(c, 0.0),
                    "static_pj": energy.static_by_component.get(c, 0.0)} for c in components]
    energy_frame = pd.DataFrame(energy_rows)
    energy_frame["total_pj"] = energy_frame["dynamic_pj"] + energy_frame["static_pj"]
    timeline = energy.timeline(window)
    title = f"{summary['workload']} on {summary['arch']}"
    return {
        "summary": _write_csv(pd.DataFrame([flat_summary]), out / "summary.csv"),
        "layers": _write_csv(layers, out / "layers.csv"),
        "units": _write_csv(result.units(), out / "units.csv"),
        "energy": _write_csv(energy_frame, out / "energy.csv"),
        "power": _write_csv(timeline, out / "power.csv"),
        "layer_cycles": _save_figure(plot_layer_cycles(layers, title=title), out / "layer_cycles.png"),
        "power_plot": _save_figure(plot_power(timeline, title=title), out / "power.png"),
        "trace": result.write_trace(out / "trace.json", power_window_cycles=window),
    }


def plot_power(timeline: pd.DataFrame, *, title: str = "") -> plt.Figure:
    """Power over time (W) from an energy timeline with ``start_cycle``, ``end_cycle``, ``power_w``."""
    fig, ax = plt.subplots(figsize=(8.0, 3.5), layout="constrained")
    edges = list(timeline["start_cycle"]) + [int(timeline["end_cycle"].iloc[-1])] if len(timeline) else [0, 1]
    values = list(timeline["power_w"]) if len(timeline) else [0.0]
    ax.stairs(values, edges, fill=True, alpha=0.6)
    ax.set_xlabel("cycle")
    ax.set_ylabel("power (W)")
    ax.set_title(f"power over time: {title}" if title else "power over time")
    return fig


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

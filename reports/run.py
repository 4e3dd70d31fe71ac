"""Reports of one simulated run: plain CSV files a spreadsheet opens, plots, and the trace.

``write_run_report(result, out_dir)`` writes

* ``summary.csv``: one row of headline numbers (``Result.summary()``);
* ``layers.csv``: one row per layer (``Result.layers()``);
* ``units.csv``: busy/idle cycles per hardware unit (``Result.units()``);
* ``layer_cycles.png``: cycles per layer as horizontal bars, longest first (the 30 longest and the
  rest summed, for big models), coloured by the unit the layer ran on;
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

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from reports.units import new_figure, si_formatter, si_text, top_rows

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
        "power_plot": _save_figure(plot_power(timeline, title=title, clock_hz=_clock_hz(result)), out / "power.png"),
        "trace": result.write_trace(out / "trace.json", power_window_cycles=window),
    }


def plot_power(timeline: pd.DataFrame, *, title: str = "", clock_hz: float | None = None) -> Figure:
    """Power over time from an energy timeline with ``start_cycle``, ``end_cycle``, ``power_w``: one
    filled step per window, the average drawn across. With ``clock_hz`` the time axis is in seconds
    (ms, us), else in cycles; power is in W or mW as it fits."""
    fig = new_figure(8.0, 3.5)
    ax = fig.add_subplot()
    if len(timeline):
        edges = np.append(timeline["start_cycle"].to_numpy(float), float(timeline["end_cycle"].iloc[-1]))
        values = timeline["power_w"].to_numpy(float)
    else:
        edges, values = np.array([0.0, 1.0]), np.array([0.0])
    scale = 1.0 / clock_hz if clock_hz else 1.0
    # one polygon, no edge: adjacent windows meet without the hairline gaps of separate bars
    ax.stairs(values, edges * scale, fill=True, color="tab:blue", alpha=0.55, linewidth=0, antialiased=False)
    ax.stairs(values, edges * scale, color="tab:blue", linewidth=0.8)
    lengths = np.diff(edges)
    if lengths.sum() > 0:
        mean = float((values * lengths).sum() / lengths.sum())
        ax.axhline(mean, color="black", linestyle="--", linewidth=0.8, label=f"average {si_text(mean, 'W', places=3)}")
        ax.legend(fontsize=8, loc="upper right")
    ax.set_xlim(edges[0] * scale, edges[-1] * scale)
    ax.set_ylim(0, max(float(values.max()) * 1.15, 1e-12))
    ax.xaxis.set_major_formatter(si_formatter("s") if clock_hz else si_formatter(""))
    ax.yaxis.set_major_formatter(si_formatter("W"))
    ax.set_xlabel("time" if clock_hz else "cycle")
    ax.set_ylabel("power")
    ax.set_title(f"power over time: {title}" if title else "power over time", fontsize=10)
    return fig


#: How many layers a per-layer bar chart shows by name; the rest are summed into one bar.
TOP_LAYERS = 30

_WHERE_COLOURS = {"array": "tab:blue", "vector": "tab:green", "DMA only": "tab:orange"}


def plot_layer_cycles(layers: pd.DataFrame, *, title: str = "", top: int = TOP_LAYERS) -> Figure:
    """Horizontal bars of the layers' spans (first to last command), longest first: every layer when
    there are at most ``top + 1``, else the ``top`` longest and one bar summing the rest. A bar is
    coloured by the unit the layer ran on (array, vector unit, or only DMA: a pure data movement)."""
    shown = layers[layers["cycles"] > 0].copy()
    shown["where"] = np.where(shown["array_cycles"] > 0, "array",
                              np.where(shown["vector_cycles"] > 0, "vector", "DMA only"))
    rows = top_rows(shown[["layer", "cycles", "where"]], "cycles", top)
    height = 0.24 * len(rows) + 1.4
    fig = new_figure(8.0, max(3.0, height))
    ax = fig.add_subplot()
    positions = np.arange(len(rows))
    colours = [_WHERE_COLOURS.get(w, "0.6") for w in rows["where"]]
    ax.barh(positions, rows["cycles"].to_numpy(float), color=colours, height=0.75)
    ax.set_yticks(positions, rows["layer"], fontsize=8)
    ax.invert_yaxis()
    ax.xaxis.set_major_formatter(si_formatter(""))
    ax.set_xlabel("cycles (layer span)")
    present = [w for w in _WHERE_COLOURS if (rows["where"] == w).any()]
    handles = [Patch(color=_WHERE_COLOURS[w]) for w in present]
    if len(rows) < len(shown):
        handles.append(Patch(color="0.6"))
        present.append("other layers (sum)")
    ax.legend(handles, present, fontsize=8, loc="upper right")
    ax.set_title(title or "cycles per layer", fontsize=10)
    return fig


def _clock_hz(result: _RunResult) -> float | None:
    arch = getattr(result, "arch", None)
    return getattr(arch, "clock_hz", None)


def _write_csv(frame: pd.DataFrame, path: Path) -> Path:
    tmp = path.with_name(path.name + ".tmp")
    frame.to_csv(tmp, index=False)
    os.replace(tmp, path)
    return path


def _save_figure(fig: Figure, path: Path) -> Path:
    tmp = path.with_name(path.stem + ".tmp" + path.suffix)
    fig.savefig(tmp, dpi=120)
    os.replace(tmp, path)
    return path

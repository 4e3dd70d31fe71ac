"""Plots of a sweep and of one run in it. Every function returns a matplotlib Figure; the caller saves
it (``fig.savefig("x.png")`` or ``"x.svg"``) and closes it.

Of a sweep (its DataFrame, see :mod:`reports.pareto`):

* :func:`plot_pareto`: two objectives as a scatter of every ``ok`` row with the front drawn as a
  staircase, three as a scatter of the first two coloured by the third (front rows outlined); one
  panel per workload; log axes where the values span more than a factor 100;
* :func:`plot_sensitivity`: per swept parameter, the objective relative to the best value of that
  parameter with the others fixed (the table of :func:`reports.pareto.sensitivity`).

Of one run (a :class:`sim.Result`):

* :func:`plot_roofline`: each layer's operational intensity (MACs per DRAM byte) against the MACs
  per cycle it attained over its span, under the compute roof (``peak_macs_per_cycle``) and the
  bandwidth roof (what DMA can move from DRAM per cycle);
* :func:`plot_layer_latency`, :func:`plot_layer_energy`: per layer, its span split into array
  busy, vector busy, DMA only and waiting (:func:`layer_time_breakdown`), and its dynamic energy
  per component, as stacked bars;
* :func:`plot_unit_utilization`: per unit, the share of the run it was busy, stalled (by cause)
  and idle;
* :func:`plot_power_timeline`: :func:`reports.run.plot_power` of the run's energy timeline;
* :func:`plot_memory_map` is :func:`reports.memory_map.plot_memory_map`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from reports.memory_map import plot_memory_map
from reports.pareto import ok_rows, pareto_front
from reports.run import TOP_LAYERS, plot_power
from reports.units import bytes_formatter, new_figure, si_formatter, top_rows, value_text

if TYPE_CHECKING:
    from sim.engine import Result

__all__ = ["label", "layer_time_breakdown", "plot_layer_energy", "plot_layer_latency", "plot_memory_map", "plot_pareto",
           "plot_power_timeline", "plot_roofline", "plot_sensitivity", "plot_unit_utilization"]

_LABELS = {
    "total_cycles": "cycles", "latency_s": "latency", "throughput_per_s": "throughput (inferences/s)",
    "macs": "MACs", "energy_j": "energy", "average_power_w": "average power",
    "edp_js": "energy-delay product", "dram_bytes": "DRAM traffic",
    "array_utilization": "array utilisation", "peak_macs_per_cycle": "peak MAC/cycle", "clock_hz": "clock",
    "luts": "LUTs", "flip_flops": "flip-flops", "dsp": "DSP blocks", "bram": "BRAM blocks", "fmax_mhz": "Fmax (MHz)",
    "area_mm2": "area (mm²)",
}

#: The unit of a metric column, for SI-prefixed ticks (``None``: plain numbers; ``"bytes"``: KiB/MiB).
_UNITS = {"latency_s": "s", "energy_j": "J", "average_power_w": "W", "edp_js": "J·s", "clock_hz": "Hz",
          "dram_bytes": "bytes", "total_cycles": "", "macs": ""}

#: Colours of the units and energy components, the same in every plot.
_COMPONENT_COLOURS = {"array": "tab:blue", "scratchpad": "tab:cyan", "accumulator": "tab:purple",
                      "dram": "tab:red", "dma": "tab:orange", "vector": "tab:green"}
_STALL_COLOURS = {"busy": "tab:blue", "stall_on_dma": "tab:orange", "stall_on_array": "tab:purple",
                  "stall_on_vector": "tab:green", "stall_on_dram": "tab:red", "stall (other)": "tab:brown",
                  "idle": "0.85"}


def label(column: str) -> str:
    """A readable axis label for a metric column (its name if unknown)."""
    return _LABELS.get(column, column)


def _format_axis(axis: object, column: str) -> None:
    """Engineering units on one axis for a metric column (linear axes; log axes keep plain decades)."""
    unit = _UNITS.get(column)
    if unit is None or axis.get_scale() == "log":  # type: ignore[attr-defined]
        return
    axis.set_major_locator(MaxNLocator(nbins=5))  # type: ignore[attr-defined]  # prefixed labels are wide
    axis.set_major_formatter(bytes_formatter() if unit == "bytes" else si_formatter(unit))  # type: ignore[attr-defined]


def _wide(values: np.ndarray) -> bool:
    """Whether ``values`` are all positive and span more than a factor 100 (then a log axis reads better)."""
    values = values[np.isfinite(values)]
    return len(values) > 0 and bool((values > 0).all()) and values.max() > 100 * values.min()


def _panels(count: int, *, width: float = 5.2, height: float = 4.2) -> tuple[Figure, list[Axes]]:
    columns = min(count, 3)
    rows = math.ceil(count / columns)
    fig = new_figure(width * columns, height * rows)
    flat = list(fig.subplots(rows, columns, squeeze=False).ravel())
    for ax in flat[count:]:
        ax.set_visible(False)
    return fig, flat[:count]


def plot_pareto(df: pd.DataFrame, objectives: Sequence[str], *, maximize: Sequence[str] = (),
                highlight: Mapping[object, str] | None = None, title: str = "") -> Figure:
    """Every ``ok`` row on ``objectives`` (two or three), the Pareto front highlighted, one panel per
    workload. ``highlight`` maps index labels of rows to short labels written next to them."""
    objectives = list(objectives)
    rows = ok_rows(df, objectives)
    front = pareto_front(df, objectives, maximize=maximize, by=["workload"] if "workload" in df.columns else [])
    workloads = list(dict.fromkeys(rows["workload"])) if "workload" in rows.columns else [None]
    fig, axes = _panels(max(1, len(workloads)), width=5.6 if len(objectives) == 3 else 5.2)
    x_name, y_name = objectives[0], objectives[1]
    for ax, workload in zip(axes, workloads, strict=False):
        here = rows if workload is None else rows[rows["workload"] == workload]
        best = front if workload is None else front[front["workload"] == workload]
        x, y = here[x_name].to_numpy(float), here[y_name].to_numpy(float)
        if len(objectives) == 2:
            ax.scatter(x, y, s=22, color="0.65", label="design points", zorder=2)
            ax.scatter(best[x_name], best[y_name], s=40, color="tab:red", edgecolor="black", linewidth=0.6,
                       label=f"Pareto front ({len(best)})", zorder=3)
            where = "post" if x_name not in maximize else "pre"
            ax.step(best[x_name], best[y_name], where=where, color="tab:red", linewidth=1.0, alpha=0.7, zorder=2)
        else:
            z = here[objectives[2]].to_numpy(float)
            norm = LogNorm(z.min(), z.max()) if _wide(z) else Normalize(z.min(), z.max())
            points = ax.scatter(x, y, c=z, cmap="viridis", norm=norm, s=26, zorder=2, label="design points")
            ax.scatter(best[x_name], best[y_name], s=70, facecolor="none", edgecolor="tab:red", linewidth=1.2,
                       label=f"Pareto front ({len(best)})", zorder=3)
            fig.colorbar(points, ax=ax, label=label(objectives[2]))
        for index, text in (highlight or {}).items():
            if index in here.index:
                ax.annotate(text, (here.at[index, x_name], here.at[index, y_name]), xytext=(6, 6),
                            textcoords="offset points", fontsize=10, fontweight="bold", zorder=4)
        if _wide(x):
            ax.set_xscale("log")
        if _wide(y):
            ax.set_yscale("log")
        ax.set_xlabel(label(x_name))
        ax.set_ylabel(label(y_name))
        _format_axis(ax.xaxis, x_name)
        _format_axis(ax.yaxis, y_name)
        ax.grid(True, which="major", alpha=0.3)
        ax.set_title(str(workload) if workload is not None else "design points", fontsize=10)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


def plot_sensitivity(table: pd.DataFrame, *, objective: str, title: str = "") -> Figure:
    """One panel per parameter of a :func:`reports.pareto.sensitivity` table: per value, the median
    ratio of ``objective`` to the best value with the other parameters fixed (bars), and the range over
    those contexts (whiskers). 1 is the best; the panel title gives the parameter's spread."""
    params = list(dict.fromkeys(table["param"]))
    fig, axes = _panels(max(1, len(params)), width=4.2, height=3.4)
    if not params:
        axes[0].text(0.5, 0.5, "no parameter varies alone", ha="center", va="center", transform=axes[0].transAxes)
        axes[0].set_axis_off()
    for ax, param in zip(axes, params, strict=False):
        rows = table[table["param"] == param]
        positions = np.arange(len(rows))
        median = rows["median_ratio"].to_numpy(float)
        errors = np.vstack([median - rows["min_ratio"].to_numpy(float), rows["max_ratio"].to_numpy(float) - median])
        colours = ["tab:green" if m == median.min() else "tab:blue" for m in median]
        ax.bar(positions, median, color=colours, yerr=errors, capsize=3, error_kw={"linewidth": 0.8})
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_xticks(positions, [value_text(param, v) for v in rows["value"]], rotation=30 if len(rows) > 4 else 0,
                      fontsize=8)
        ax.set_xlabel(param)
        ax.set_ylabel(f"{label(objective)}, relative to best (x)")
        ax.set_ylim(0, max(1.05, float(rows["max_ratio"].max()) * 1.08))
        ax.set_title(f"{param}: spread x{rows['spread'].iloc[0]:.3g}", fontsize=10)
    fig.suptitle(title or f"sensitivity of {label(objective)}: ratio to the best value of each parameter, "
                          "the others fixed (1 = best)", fontsize=11)
    return fig


def plot_roofline(result: Result, *, title: str = "") -> Figure:
    """Per layer with MACs: MACs per DRAM byte (x) against MACs per cycle of its span (y), log-log, under
    the compute roof and the DRAM bandwidth roof. MACs are the dense layer's; a layer the array runs
    N:M sparse does ``N/M`` of them, so its roof is ``M/N`` times higher (drawn dashed per pattern).
    Layers moving no DRAM byte sit at the right edge (hollow markers)."""
    arch = result.arch
    layers = result.layers()
    layers = layers[(layers["macs"] > 0) & (layers["cycles"] > 0)]
    sparsity = {m.layer: m.sparsity for m in result.plan.layers}
    dram = (layers["dram_read_bytes"] + layers["dram_write_bytes"]).to_numpy(float)
    macs = layers["macs"].to_numpy(float)
    attained = macs / layers["cycles"].to_numpy(float)
    peak = float(arch.peak_macs_per_cycle)
    bandwidth = float(arch.dram_bandwidth_bytes_per_cycle)
    patterns = sorted({p for p in (sparsity.get(name) for name in layers["layer"]) if p is not None},
                      key=lambda p: p.m / p.n)
    roofs = [peak * p.m / p.n for p in patterns]
    ridge = peak / bandwidth
    with np.errstate(divide="ignore"):
        intensity = np.where(dram > 0, macs / np.maximum(dram, 1), np.inf)
    finite = intensity[np.isfinite(intensity)]
    low = min([ridge, *finite]) / 4
    high = max([ridge * max([1.0, *[r / peak for r in roofs]]), *finite]) * 4
    intensity = np.where(np.isfinite(intensity), intensity, high / 1.5)
    fig = new_figure(7.5, 4.8)
    ax = fig.add_subplot()
    xs = np.geomspace(low, high, 200)
    ax.plot(xs, np.minimum(peak, bandwidth * xs), color="black", linewidth=1.5,
            label=f"roofline: {peak:g} MAC/cycle, DRAM {bandwidth:g} B/cycle")
    for pattern, roof in zip(patterns, roofs, strict=True):
        ax.plot(xs, np.minimum(roof, bandwidth * xs), color="tab:red", linestyle="--", linewidth=1.0,
                label=f"{pattern.n}:{pattern.m} sparse roof: {roof:g} dense MAC/cycle")
    if arch.dram.bandwidth_bytes_per_cycle > bandwidth:
        ax.plot(xs, np.minimum(peak, arch.dram.bandwidth_bytes_per_cycle * xs), color="0.5", linestyle=":",
                linewidth=0.8, label=f"DRAM alone {arch.dram.bandwidth_bytes_per_cycle:g} B/cycle (DMA limits)")
    colours = {"conv": "tab:blue", "gemm": "tab:orange", "matmul": "tab:purple"}
    for op in dict.fromkeys(layers["op"]):
        mask = (layers["op"] == op).to_numpy()
        solid = mask & (dram > 0)
        hollow = mask & (dram == 0)
        colour = colours.get(op, "tab:green")
        if solid.any():
            ax.scatter(intensity[solid], attained[solid], s=30, color=colour, edgecolor="black", linewidth=0.4,
                       label=op, zorder=3)
        if hollow.any():
            ax.scatter(intensity[hollow], attained[hollow], s=30, facecolor="none", edgecolor=colour, zorder=3,
                       label=f"{op} (no DRAM traffic)")
    if len(layers) <= 12:
        for name, x, y in zip(layers["layer"], intensity, attained, strict=True):
            ax.annotate(str(name), (x, y), xytext=(4, -10), textcoords="offset points", fontsize=7)
    ax.set_xscale("log")
    ax.set_yscale("log")
    bottom, top = max(min([peak, *attained]) / 4, 1e-3), max([peak, *roofs]) * 2
    plain = FuncFormatter(lambda value, _: f"{value:g}")
    for axis, (lo, hi) in ((ax.xaxis, (low, high)), (ax.yaxis, (bottom, top))):
        # 1-3-10 ticks on short spans (one tick per decade alone leaves an axis with one label)
        axis.set_major_locator(LogLocator(base=10, subs=(1.0, 3.0) if math.log10(hi / lo) <= 4 else (1.0,)))
        axis.set_major_formatter(plain)
        axis.set_minor_formatter(NullFormatter())
    ax.set_xlim(low, high)
    ax.set_ylim(bottom, top)
    ax.set_xlabel("operational intensity (MAC per DRAM byte)")
    ax.set_ylabel("attained MAC/cycle (layer span)")
    ax.grid(True, which="both", alpha=0.2)
    ax.set_title(title or f"roofline: {result.plan.graph_name} on {arch.name}", fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    return fig


def _bar_height(count: int) -> float:
    return max(3.0, 0.24 * count + 1.6)


def layer_time_breakdown(result: Result) -> pd.DataFrame:
    """Where each layer's span went, as cycles that add up to it: ``array`` (the array busy),
    ``vector`` (the vector unit busy, the array not), ``dma_only`` (only DMA busy: waiting on memory)
    and ``waiting`` (no unit busy on this layer, e.g. held up by another layer's commands). One row per
    layer of :meth:`sim.Result.layers` (``layer``, ``cycles`` and those four columns)."""
    layers = result.layers()
    parts = {name: dict.fromkeys(layers["layer"], 0) for name in ("array", "vector", "dma_only")}
    events: dict[str, list] = {}
    for event in result.trace:
        events.setdefault(event.layer, []).append(event)
    for layer, mine in events.items():
        starts = np.array([e.start for e in mine])
        ends = np.array([e.end for e in mine])
        edges = np.unique(np.concatenate([starts, ends]))
        lengths = np.diff(edges)
        active = {}
        for unit in ("array", "vector", "dma"):
            chosen = np.array([e.unit == unit for e in mine])
            delta = np.zeros(len(edges))
            np.add.at(delta, np.searchsorted(edges, starts[chosen]), 1)
            np.add.at(delta, np.searchsorted(edges, ends[chosen]), -1)
            active[unit] = np.cumsum(delta)[:-1] > 0
        parts["array"][layer] = int(lengths[active["array"]].sum())
        parts["vector"][layer] = int(lengths[active["vector"] & ~active["array"]].sum())
        parts["dma_only"][layer] = int(lengths[active["dma"] & ~active["array"] & ~active["vector"]].sum())
    frame = layers[["layer", "cycles"]].copy()
    for name, values in parts.items():
        frame[name] = frame["layer"].map(values).astype("int64")
    frame["waiting"] = frame["cycles"] - frame["array"] - frame["vector"] - frame["dma_only"]
    return frame


def plot_layer_latency(result: Result, *, title: str = "", top: int = TOP_LAYERS) -> Figure:
    """Per layer (those that ran commands), its span split as :func:`layer_time_breakdown` does:
    array busy, vector busy, DMA only (memory-bound time) and waiting, as horizontal stacked bars,
    longest first: the ``top`` longest layers by name and the rest summed into one bar."""
    breakdown = layer_time_breakdown(result)
    breakdown = top_rows(breakdown[breakdown["cycles"] > 0], "cycles", top)
    names = {"array": "array busy", "vector": "vector busy", "dma_only": "DMA only (memory-bound)",
             "waiting": "waiting"}
    colours = {"array": "tab:blue", "vector": "tab:green", "dma_only": "tab:orange", "waiting": "0.8"}
    fig = _stacked_bars(breakdown, {names[p]: (breakdown[p].to_numpy(float), colours[p]) for p in names})
    ax = fig.axes[0]
    ax.xaxis.set_major_formatter(si_formatter(""))
    ax.set_xlabel("cycles (layer span)")
    ax.set_title(title or f"where each layer's cycles went: {result.plan.graph_name} on {result.arch.name}",
                 fontsize=10)
    return fig


def plot_layer_energy(result: Result, *, title: str = "", top: int = TOP_LAYERS) -> Figure:
    """Per layer: dynamic energy by component, as horizontal stacked bars, largest first (the ``top``
    largest by name, the rest summed). Static energy belongs to the whole run and is not split over
    layers (see :mod:`sim.power`)."""
    by_layer = result.energy.by_layer
    by_layer = top_rows(by_layer[by_layer["dynamic_pj"] > 0], "dynamic_pj", top)
    components = [c.removesuffix("_pj") for c in by_layer.columns if c.endswith("_pj") and c != "dynamic_pj"]
    parts = {c: (by_layer[f"{c}_pj"].to_numpy(float) * 1e-12, _COMPONENT_COLOURS.get(c, "0.5"))
             for c in components if by_layer[f"{c}_pj"].to_numpy(float).any()}
    fig = _stacked_bars(by_layer, parts)
    ax = fig.axes[0]
    ax.xaxis.set_major_formatter(si_formatter("J"))
    ax.set_xlabel("dynamic energy")
    static_share = result.energy.static_pj / result.energy.total_pj if result.energy.total_pj else 0.0
    ax.set_title(title or f"dynamic energy per layer: {result.plan.graph_name} on {result.arch.name}\n"
                          f"(static energy, {static_share:.0%} of the run's, is not split over layers)", fontsize=10)
    return fig


def _stacked_bars(rows: pd.DataFrame, parts: Mapping[str, tuple[np.ndarray, str]]) -> Figure:
    """Horizontal bars, one per row of ``rows`` (its ``layer`` names top to bottom), stacked from
    ``parts`` (legend label -> (values, colour)); only parts with a non-zero value are listed."""
    fig = new_figure(8.5, _bar_height(len(rows)))
    ax = fig.add_subplot()
    positions = np.arange(len(rows))
    left = np.zeros(len(rows))
    for text, (values, colour) in parts.items():
        if not values.any():
            continue
        ax.barh(positions, values, left=left, color=colour, label=text, height=0.75)
        left += values
    ax.set_yticks(positions, rows["layer"], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, max(float(left.max()) if len(left) else 0.0, 1e-30) * 1.05)
    ax.legend(fontsize=8, loc="lower right")
    return fig


def plot_unit_utilization(result: Result, *, title: str = "") -> Figure:
    """Per unit (DMA load and store queues apart): busy, stalled by cause, and idle, as shares of the
    run's cycles times the unit's channels."""
    units = result.units()
    busy = units["busy_cycles"].to_numpy(float)
    capacity = busy / units["busy_fraction"].where(units["busy_fraction"] > 0).to_numpy(float)
    capacity = np.where(np.isfinite(capacity), capacity, busy + units["stall_cycles"] + units["idle_cycles"])
    capacity = np.maximum(capacity, 1.0)
    causes = [c for c in _STALL_COLOURS if c.startswith("stall_on")]
    other = np.maximum(units["stall_cycles"].to_numpy(float) - units[causes].sum(axis=1).to_numpy(float), 0.0)
    parts = {"busy": busy, **{c: units[c].to_numpy(float) for c in causes}, "stall (other)": other,
             "idle": units["idle_cycles"].to_numpy(float)}
    fig = new_figure(7.5, 0.5 * len(units) + 1.8)
    ax = fig.add_subplot()
    left = np.zeros(len(units))
    positions = np.arange(len(units))
    for name, values in parts.items():
        share = values / capacity
        if not share.any() and name != "busy":
            continue
        ax.barh(positions, share, left=left, color=_STALL_COLOURS[name], label=name.replace("_", " "), height=0.6)
        left += share
    for y, fraction in zip(positions, busy / capacity, strict=True):
        ax.text(0.005, y, f"{fraction:.0%}", va="center", fontsize=8, color="white" if fraction > 0.06 else "black")
    ax.set_yticks(positions, units["unit"])
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:.0%}"))
    ax.set_xlabel("share of the run (cycles x channels)")
    ax.set_title(title or f"unit utilisation: {result.plan.graph_name} on {result.arch.name}", fontsize=10)
    ax.legend(fontsize=7, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.25 if len(units) < 6 else -0.15))
    return fig


def plot_power_timeline(result: Result, *, windows: int = 200, title: str = "") -> Figure:
    """Power over time in about ``windows`` windows (:func:`reports.run.plot_power`, as ``accel run`` draws it)."""
    window = max(1, result.total_cycles // windows)
    return plot_power(result.energy.timeline(window), clock_hz=result.arch.clock_hz,
                      title=title or f"{result.plan.graph_name} on {result.arch.name}")

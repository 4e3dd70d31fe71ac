"""The HTML report of a sweep: one self-contained ``index.html`` (images inline, no external files).

``write_html_report(df, out_dir)`` takes a sweep's DataFrame (one row per design point and workload;
see :mod:`reports.pareto`) and writes ``out_dir/index.html`` with

* the sweep's setup: base design, workloads, swept parameters and their values, point and row counts,
  ``ok`` / ``invalid`` / ``error`` counts and the reasons rows failed, grouped;
* the Pareto plot of ``objectives`` and the Pareto-optimal rows;
* the sensitivity of each objective to each swept parameter;
* the best row per objective;
* a drill-down into up to ``drill_down`` rows (the best per objective, then the knee of the front):
  each is rebuilt with ``rebuild(row) -> (Accelerator, Graph, MapOptions)`` (by default
  :func:`sim.sweep.materialize`), mapped and simulated again, and shown as a roofline, per-layer
  cycles and energy, unit utilisation, the scratchpad memory map (when its allocator is not
  ``none``), power over time and a per-layer table.

The page is built in memory and written through a temporary file, so an error leaves no report or
the previous one, never half of one. All text is HTML-escaped.
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from accel.errors import AccelError
from reports.pareto import (
    ReportError,
    best_points,
    directions,
    knee_point,
    ok_rows,
    pareto_front,
    sensitivity,
    swept_params,
)
from reports.units import value_text

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from accel.hardware import Accelerator
    from mapper.options import MapOptions
    from workloads.graph import Graph

__all__ = ["Rebuild", "check_results", "write_html_report"]

_log = logging.getLogger(__name__)

#: Rebuilds one row's design, workload graph and mapper options, to map and simulate it again.
Rebuild = Callable[[pd.Series], "tuple[Accelerator, Graph, MapOptions]"]

_REQUIRED = ("status",)
_SHOWN_METRICS = ("latency_s", "energy_j", "throughput_per_s", "edp_js", "average_power_w", "dram_bytes",
                  "array_utilization", "total_cycles")


def check_results(df: pd.DataFrame, objectives: Sequence[str]) -> None:
    """Raise :class:`ReportError` unless ``df`` can be reported on ``objectives``: it has rows, a
    ``status`` column, every objective as a column, and at least one ``ok`` row with finite objectives."""
    objectives = list(objectives)
    if len(objectives) not in (2, 3):
        raise ReportError(f"objectives must be two or three columns, not {len(objectives)} "
                          f"({', '.join(objectives) or 'none'})")
    if df.empty:
        raise ReportError("holds no rows")
    missing = [c for c in _REQUIRED if c not in df.columns]
    if missing:
        raise ReportError(f"is not a sweep result: no column {', '.join(map(repr, missing))}")
    unknown = [o for o in objectives if o not in df.columns]
    if unknown:
        numeric = [str(c) for c in df.columns if pd.api.types.is_numeric_dtype(df[c]) and c != "point"]
        raise ReportError(f"has no column {', '.join(map(repr, unknown))} to use as an objective; numeric "
                          f"columns are: {', '.join(numeric)}")
    if ok_rows(df, objectives).empty:
        counts = df["status"].fillna("missing").value_counts()
        listed = ", ".join(f"{n} {s}" for s, n in counts.items())
        raise ReportError(f"has no ok row with finite {' and '.join(objectives)} ({listed}); nothing to report")


def write_html_report(df: pd.DataFrame, out_dir: str | Path, *, objectives: Sequence[str] = ("latency_s", "energy_j"),
                      title: str | None = None, spec: Mapping[str, Any] | str | None = None,
                      rebuild: Rebuild | None = None, drill_down: int = 3) -> Path:
    """Write ``out_dir/index.html`` for the sweep ``df`` and return its path (see the module docstring).

    ``spec`` (the sweep's specification, a mapping or text) is shown verbatim under the setup.
    ``drill_down`` is how many rows to map and simulate again (0: none).
    """
    objectives = list(objectives)
    check_results(df, objectives)
    if not (isinstance(drill_down, int) and drill_down >= 0):
        raise ReportError(f"drill_down must be a non-negative integer, not {drill_down!r}")
    maximize = directions(objectives)
    by = ["workload"] if "workload" in df.columns else []
    params = [p for p in swept_params(df) if p in df.columns]
    chosen = _choose(df, objectives, maximize, by, drill_down)
    labels = {index: chr(ord("A") + i) for i, (index, _) in enumerate(chosen)}
    page_title = title or _default_title(df)

    from reports.sweep_plots import plot_pareto, plot_sensitivity

    body = [f"<h1>{_esc(page_title)}</h1>", _setup_section(df, params, spec)]
    front = pareto_front(df, objectives, maximize=maximize, by=by)
    body.append(_section("Pareto front", [
        f"<p>Objectives: {_esc(', '.join(f'{o} ({_sense(o, maximize)})' for o in objectives))}. "
        f"{len(front)} of {len(ok_rows(df, objectives))} ok rows are Pareto-optimal"
        f"{' (per workload)' if by and df['workload'].nunique() > 1 else ''}; lettered points are drilled "
        "into below.</p>",
        _image(plot_pareto(df, objectives, maximize=maximize, highlight=labels), "Pareto plot"),
        _details(f"Pareto-optimal rows ({len(front)})", _rows_table(front, params, objectives, labels)),
    ]))
    sensitivity_parts = []
    for objective in objectives:
        table = sensitivity(df, objective, params, maximize=objective in maximize)
        sensitivity_parts.append(_image(plot_sensitivity(table, objective=objective), f"sensitivity of {objective}"))
    body.append(_section("Sensitivity", [
        "<p>For each swept parameter: the objective divided by its best value over that parameter, the "
        "other parameters (and the workload) held fixed; bars are medians over those contexts, whiskers "
        "their range. The spread is the median of worst / best: what choosing the parameter badly costs.</p>",
        *sensitivity_parts,
    ]))
    best = best_points(df, objectives, maximize=maximize, by=by)
    body.append(_section("Best points", [_rows_table(best, params, objectives, labels, lead=["objective"])]))
    if chosen:
        rebuild = rebuild or _default_rebuild
        for index, why in chosen:
            body.append(_drill_down(df.loc[index], labels[index], why, params, rebuild))
    page = _page(page_title, "\n".join(body))
    return _write_atomically(Path(out_dir), page)


# -- choosing and drilling down --------------------------------------------------------------------

def _choose(df: pd.DataFrame, objectives: list[str], maximize: Sequence[str], by: list[str],
            count: int) -> list[tuple[object, str]]:
    """Up to ``count`` distinct rows: the best per objective (per workload), then the knee of each front."""
    if count == 0:
        return []
    reasons: dict[object, list[str]] = {}
    best = best_points(df, objectives, maximize=maximize, by=by)
    for index, objective in zip(best.index, best["objective"], strict=True):
        reasons.setdefault(index, []).append(f"best {objective}")
    front = pareto_front(df, objectives, maximize=maximize, by=by)
    groups = front.groupby(by, sort=False) if by else [(None, front)]
    for _, group in groups:
        knee = knee_point(group, objectives, maximize=maximize)
        if knee is not None:
            reasons.setdefault(knee, []).append("knee of the Pareto front")
    return [(index, ", ".join(why)) for index, why in list(reasons.items())[:count]]


def _default_rebuild(row: pd.Series) -> tuple[Accelerator, Graph, MapOptions]:
    from sim.sweep import materialize  # not at the top: the sweep module is optional for reports

    return materialize(row)


def _drill_down(row: pd.Series, letter: str, why: str, params: list[str], rebuild: Rebuild) -> str:
    import mapper
    import sim
    from reports.sweep_plots import (
        plot_layer_energy,
        plot_layer_latency,
        plot_power_timeline,
        plot_roofline,
        plot_unit_utilization,
    )

    where = f"point {_cell(row.get('point', row.name))}" + (f" on {row['workload']}" if "workload" in row else "")
    heading = f"{letter}: {where} ({why})"
    setting = ", ".join(f"{p} = {_cell(row[p])}" for p in params) or "the base design"
    parts = [f"<p>{_esc(setting)}</p>"]
    try:
        arch, graph, options = rebuild(row)
        plan = mapper.map_graph(graph, arch, options)
        result = sim.simulate(plan)
    except (AccelError, ImportError) as exc:
        _log.warning("drill-down %s: %s", heading, exc)
        parts.append(f"<p class=note>Could not map and simulate this point again: {_esc(str(exc))}</p>")
        return _section(heading, parts, level=2)
    summary = result.summary()
    swept_cycles = row.get("total_cycles")
    agree = (swept_cycles is not None and not pd.isna(swept_cycles)
             and int(swept_cycles) == int(summary["total_cycles"]))
    check = ("matches the sweep" if agree else
             f"<strong>differs from the sweep's {_esc(_cell(swept_cycles))}</strong>")
    cycles, dram = int(summary["total_cycles"]), int(summary["dram_bytes"])
    utilisation = float(summary["array_utilization"])
    parts.append(
        f"<p>Re-run: {cycles:,} cycles ({check}), {_esc(_cell(summary['latency_s']))} s, "
        f"{_esc(_cell(summary['energy_pj'] * 1e-12))} J, array utilisation {utilisation:.1%}, {dram:,} DRAM bytes; "
        f"mapper allocator {_esc(options.allocator)}.</p>")
    parts.append(_image(plot_roofline(result), "roofline"))
    parts.append(_image(plot_layer_latency(result), "cycles per layer"))
    parts.append(_image(plot_layer_energy(result), "energy per layer"))
    parts.append(_image(plot_unit_utilization(result), "unit utilisation"))
    if plan.allocation is not None and plan.problem is not None:
        parts.append(_memory_map(plan))
    parts.append(_image(plot_power_timeline(result), "power over time"))
    parts.append(_details("Per-layer table", _layer_table(result)))
    return _section(heading, parts, level=2)


def _memory_map(plan: Any) -> str:
    """The plan's scratchpad allocation: address against schedule step, one rectangle per tensor."""
    from reports.sweep_plots import plot_memory_map

    allocation = plan.allocation
    title = (f"memory map: {allocation.method}, {allocation.non_compulsory_bytes:,} B non-compulsory tensor traffic")
    note = ("<p class=caption>Tensors the allocator keeps on chip between layers (spills marked); each layer tiles "
            "in the scratchpad above them. The plan's DRAM bytes above also count the tiles' re-reads.</p>")
    return _image(plot_memory_map(plan.problem, allocation, title=title), "memory map") + note


def _layer_table(result: Any) -> str:
    layers = result.layers()
    energy = result.energy.by_layer.set_index("layer")["dynamic_pj"]
    layers["dynamic_pj"] = layers["layer"].map(energy).fillna(0.0)
    dram = layers["dram_read_bytes"] + layers["dram_write_bytes"]
    layers["mac_per_dram_byte"] = (layers["macs"] / dram.where(dram > 0)).replace([np.inf], np.nan)
    columns = ["layer", "op", "dataflow", "macs", "cycles", "utilization", "dram_read_bytes", "dram_write_bytes",
               "mac_per_dram_byte", "dynamic_pj"]
    return _table(layers, columns)


# -- page sections ----------------------------------------------------------------------------------

def _setup_section(df: pd.DataFrame, params: list[str], spec: Mapping[str, Any] | str | None) -> str:
    status = df["status"].fillna("missing")
    counts = status.value_counts()
    points = df["point"].nunique() if "point" in df.columns else len(df)
    facts = [
        ("base design", ", ".join(map(str, dict.fromkeys(df["arch"].dropna()))) if "arch" in df.columns else "?"),
        ("workloads", ", ".join(map(str, dict.fromkeys(df["workload"].dropna()))) if "workload" in df.columns
         else "?"),
        ("design points", f"{points:,} ({len(df):,} rows)"),
        ("status", ", ".join(f"{counts.get(s, 0):,} {s}" for s in
                             dict.fromkeys(["ok", "invalid", "error", *counts.index]))),
    ]
    parts = ["<table class=facts>" + "".join(f"<tr><th>{_esc(k)}</th><td>{_esc(v)}</td></tr>" for k, v in facts)
             + "</table>"]
    if params:
        rows = [{"parameter": p, "values": ", ".join(value_text(p, v) for v in _sorted_values(df[p])),
                 "count": int(df[p].nunique(dropna=False))} for p in params]
        parts.append("<h3>Swept parameters</h3>" + _table(pd.DataFrame(rows), ["parameter", "count", "values"]))
    failed = df[status != "ok"]
    if not failed.empty:
        reasons = failed.assign(reason=failed.get("reason", pd.Series("", index=failed.index)).fillna(""),
                                status=status[failed.index])
        point_column = "point" if "point" in df.columns else None
        grouped = []
        for (state, reason), group in reasons.groupby(["status", "reason"], sort=False):
            ids = list(dict.fromkeys(group[point_column] if point_column else group.index))
            shown = ", ".join(map(str, ids[:12])) + (f", ... ({len(ids)} points)" if len(ids) > 12 else "")
            grouped.append({"status": state, "rows": len(group), "reason": reason or "(none given)", "points": shown})
        parts.append("<h3>Rows that did not run</h3>" + _table(pd.DataFrame(grouped),
                                                                 ["status", "rows", "reason", "points"]))
    if spec is not None:
        text = spec if isinstance(spec, str) else json.dumps(spec, indent=2, default=str)
        parts.append(_details("Sweep specification", f"<pre>{_esc(text)}</pre>"))
    return _section("Setup", parts)


def _rows_table(rows: pd.DataFrame, params: list[str], objectives: list[str], labels: Mapping[object, str], *,
                lead: Sequence[str] = ()) -> str:
    rows = rows.copy()
    rows.insert(0, "drill-down", [labels.get(i, "") for i in rows.index])
    metrics = list(dict.fromkeys([*objectives, *(m for m in _SHOWN_METRICS if m in rows.columns)]))
    identity = [c for c in ("point", "workload") if c in rows.columns]
    return _table(rows, [*lead, "drill-down", *identity, *params, *metrics])


def _section(heading: str, parts: Sequence[str], *, level: int = 1) -> str:
    tag = "h2" if level == 1 else "h3"
    klass = "section" if level == 1 else "section drill"
    return f"<section class='{klass}'><{tag}>{_esc(heading)}</{tag}>\n" + "\n".join(parts) + "</section>"


def _details(summary: str, inner: str) -> str:
    return f"<details><summary>{_esc(summary)}</summary>{inner}</details>"


def _image(fig: Figure, alt: str) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f"<figure><img alt='{_esc(alt)}' src='data:image/png;base64,{data}'></figure>"


def _table(frame: pd.DataFrame, columns: Sequence[str]) -> str:
    columns = [c for c in columns if c in frame.columns]
    types = pd.api.types
    numeric = {c for c in columns if types.is_numeric_dtype(frame[c]) and not types.is_bool_dtype(frame[c])}
    head = "".join(f"<th{' class=num' if c in numeric else ''}>{_esc(str(c))}</th>" for c in columns)
    body = []
    for record in frame[columns].itertuples(index=False, name=None):
        cells = "".join(f"<td{' class=num' if c in numeric else ''}>{_esc(_cell(v))}</td>"
                        for c, v in zip(columns, record, strict=True))
        body.append(f"<tr>{cells}</tr>")
    return f"<div class=scroll><table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"


def _cell(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return ""
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, int | np.integer):
        return f"{int(value):,}"
    if isinstance(value, float | np.floating):
        value = float(value)
        if value.is_integer() and abs(value) < 1e15:
            return f"{int(value):,}"
        return f"{value:.4g}"
    return str(value)


def _sorted_values(column: pd.Series) -> list[object]:
    values = list(dict.fromkeys(column.dropna().tolist()))
    try:
        values.sort()
    except TypeError:
        values.sort(key=str)
    return values + ([float("nan")] if column.isna().any() else [])


def _sense(objective: str, maximize: Sequence[str]) -> str:
    return "higher is better" if objective in maximize else "lower is better"


def _default_title(df: pd.DataFrame) -> str:
    archs = ", ".join(map(str, dict.fromkeys(df["arch"].dropna()))) if "arch" in df.columns else "a design"
    works = ", ".join(map(str, dict.fromkeys(df["workload"].dropna()))) if "workload" in df.columns else ""
    return f"Sweep of {archs}" + (f" on {works}" if works else "")


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


_CSS = """
:root { color-scheme: light; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       margin: 0 auto; max-width: 1200px; padding: 1.5rem 2rem 4rem; color: #1d2430; background: #fff;
       line-height: 1.45; }
h1 { font-size: 1.7rem; margin: 0.5rem 0 1rem; }
h2 { font-size: 1.3rem; margin: 0 0 0.6rem; border-bottom: 2px solid #d8dee9; padding-bottom: 0.25rem; }
h3 { font-size: 1.1rem; margin: 1rem 0 0.5rem; }
section.section { margin: 2rem 0; }
section.drill { margin: 1.5rem 0; padding: 0.8rem 1.2rem; border: 1px solid #d8dee9; border-radius: 6px;
                background: #fafbfc; }
figure { margin: 0.8rem 0; }
img { max-width: 100%; height: auto; display: block; }
table { border-collapse: collapse; font-size: 0.85rem; margin: 0.4rem 0; }
th, td { padding: 0.25rem 0.6rem; border-bottom: 1px solid #e5e9f0; text-align: left; vertical-align: top; }
th { background: #eef1f5; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tbody tr:nth-child(even) { background: #f6f8fa; }
table.facts th { width: 11rem; }
div.scroll { overflow-x: auto; }
details { margin: 0.6rem 0; }
summary { cursor: pointer; font-weight: 600; }
pre { background: #f6f8fa; padding: 0.8rem; overflow-x: auto; font-size: 0.85rem; }
p.note { color: #9a3412; }
p.caption { color: #4c566a; font-size: 0.85rem; margin-top: -0.4rem; }
"""


def _page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html>\n<html lang=en>\n<head>\n<meta charset=utf-8>\n"
            f"<meta name=viewport content='width=device-width, initial-scale=1'>\n<title>{_esc(title)}</title>\n"
            f"<style>{_CSS}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n")


def _write_atomically(out_dir: Path, page: str) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "index.html"
    tmp = out_dir / "index.html.tmp"
    try:
        tmp.write_text(page, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path

"""SCALE-Sim v3's ``COMPUTE_REPORT.csv``, written from a simulated run, for side-by-side comparison.

Columns and conventions are SCALE-Sim v3's, so its users' scripts and spreadsheets read the file:

``LayerID``                      0-based layer index (array layers of the topology, in order)
``Total Cycles (incl. prefetch)``  the layer's span, first command to last, **minus one**
``Total Cycles``                 the span from the layer's first compute to its last command, minus one
``Stall Cycles``                 ``Total Cycles`` - (compute cycles - 1): cycles the array waited
``Overall Util %``               100 x MACs the array performs / (``Total Cycles`` x rows x cols)
``Mapping Efficiency %``         100 x Sr x Sc / (folded rows x folded cols): how much of each fold is used
``Compute Util %``               mapping efficiency x streaming / SCALE-Sim's per-fold cycles

SCALE-Sim reports the 0-based index of the last cycle, one less than a count (its users noted this
in its issue #125); this file reproduces that so ``Total Cycles - Stall Cycles`` equals SCALE-Sim's
compute cycles. This project's own reports (``layers.csv``) count cycles. Stalls differ from
SCALE-Sim's by design: they come from this simulator's DMA/DRAM model (latency, bursts, double
buffering), not from SCALE-Sim's SRAM-fill model; compute cycles are identical.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pandas as pd

from sim import Result

__all__ = ["compute_report", "write_compute_report", "COLUMNS"]

COLUMNS = ("LayerID", "Total Cycles (incl. prefetch)", "Total Cycles", "Stall Cycles", "Overall Util %",
           "Mapping Efficiency %", "Compute Util %")


def compute_report(result: Result) -> pd.DataFrame:
    """One row per array layer of ``result`` in SCALE-Sim's layout."""
    rows, cols = result.arch.array.rows, result.arch.array.cols
    mappings = {m.layer: m for m in result.plan.layers}
    first_compute: dict[str, int] = {}
    for ev in result.trace:
        if ev.kind == "Compute":
            first_compute[ev.layer] = min(ev.start, first_compute.get(ev.layer, ev.start))
    report = []
    for layer in result.layers().itertuples():
        mapping = mappings[layer.layer]
        if mapping.gemm is None or mapping.dataflow is None:
            continue
        g, df = mapping.gemm, mapping.dataflow.value
        sr, sc, t = {"ws": (g.k, g.n, g.m), "os": (g.m, g.n, g.k), "is": (g.k, g.m, g.n)}[df]
        efficiency = 100.0 * sr * sc / (math.ceil(sr / rows) * rows * math.ceil(sc / cols) * cols)
        per_fold = rows + cols + t - 2 if df == "os" else 2 * rows + 2 * cols + t - 3
        total = layer.end_cycle - first_compute[layer.layer] - 1
        report.append({
            "LayerID": len(report),
            "Total Cycles (incl. prefetch)": layer.end_cycle - layer.start_cycle - 1,
            "Total Cycles": total,
            "Stall Cycles": total - (layer.array_cycles - 1),
            "Overall Util %": 100.0 * layer.array_macs / (max(total, 1) * rows * cols),
            "Mapping Efficiency %": efficiency,
            "Compute Util %": efficiency * t / per_fold,
        })
    return pd.DataFrame(report, columns=list(COLUMNS))


def write_compute_report(result: Result, path: str | Path) -> Path:
    """Write ``COMPUTE_REPORT.csv`` as SCALE-Sim does (``, ``-separated, a trailing comma per line)."""
    frame = compute_report(result)
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    lines = [", ".join(COLUMNS) + ","]
    lines += [", ".join(str(v) for v in row) + "," for row in frame.itertuples(index=False)]
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, path)
    return path

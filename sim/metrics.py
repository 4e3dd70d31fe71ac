"""The metric columns of a sweep row: one table of what each metric is, and the one function that fills them.

:data:`METRIC_TABLE` lists every metric a sweep (:mod:`sim.sweep`) writes per (design point,
workload): its name (with its unit), whether it is a count (an integer column, ``Int64`` with ``<NA>``
where the row is not ``ok``, written without a decimal point) or a measure (``float64``, NaN where
the row is not ``ok``), and whether more is better. :func:`metric_row` computes them from a design,
a simulated run's summary and the FPGA family of the resource estimate. Adding a metric is one entry
in the table and one value in :func:`metric_row`.

This module is light (standard library only at import) so that :mod:`reports` can learn the metric
directions without importing the mapper or the simulator.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from accel.hardware import Accelerator

__all__ = ["INTEGER_METRICS", "MAXIMIZED", "METRICS", "METRIC_TABLE", "Metric", "metric_dtype", "metric_row"]


@dataclass(frozen=True)
class Metric:
    """One metric column: ``name`` (with its unit), ``integer`` (a count) and ``maximize`` (more is better)."""

    name: str
    description: str
    integer: bool = False
    maximize: bool = False


METRIC_TABLE: tuple[Metric, ...] = (
    Metric("total_cycles", "cycles from the first command to the last", integer=True),
    Metric("latency_s", "total_cycles / clock_hz"),
    Metric("throughput_per_s", "inferences per second, 1 / latency_s", maximize=True),
    Metric("macs", "multiply-accumulates the workload needs", integer=True),
    Metric("energy_j", "energy of the run"),
    Metric("average_power_w", "energy_j / latency_s"),
    Metric("edp_js", "energy-delay product, energy_j * latency_s"),
    Metric("dram_bytes", "bytes moved to and from DRAM", integer=True),
    Metric("array_utilization", "MACs the array performs (N/M of macs for N:M layers) / (total_cycles * "
                                "peak_macs_per_cycle), in [0, 1]", maximize=True),
    Metric("peak_macs_per_cycle", "MACs the array can do per cycle", integer=True, maximize=True),
    Metric("clock_hz", "the design's clock", maximize=True),
    Metric("luts", "FPGA LUTs of the array (accel.resources estimate)", integer=True),
    Metric("flip_flops", "FPGA flip-flops of the array", integer=True),
    Metric("dsp", "FPGA DSP blocks of the array", integer=True),
    Metric("bram", "FPGA block RAMs of the array", integer=True),
    Metric("fmax_mhz", "the array's predicted Fmax on the FPGA family", maximize=True),
    Metric("area_mm2", "silicon area of the design at 45 nm (accel.area: PEs, SRAMs, vector unit, DMA, control)"),
)
"""Every metric column, in column order."""

METRICS: tuple[str, ...] = tuple(m.name for m in METRIC_TABLE)
"""The metric column names, in column order."""

MAXIMIZED: frozenset[str] = frozenset(m.name for m in METRIC_TABLE if m.maximize)
"""Metrics where more is better (every other metric is better smaller)."""

INTEGER_METRICS: frozenset[str] = frozenset(m.name for m in METRIC_TABLE if m.integer)
"""Metrics that are counts: ``Int64`` columns."""

_FPGA = ("luts", "flip_flops", "dsp", "bram", "fmax_mhz")


def metric_dtype(name: str) -> str:
    """The pandas dtype of metric ``name``: ``"Int64"`` for counts, ``"float64"`` otherwise."""
    return "Int64" if name in INTEGER_METRICS else "float64"


def metric_row(arch: Accelerator, summary: Mapping[str, Any], family: str) -> dict[str, int | float]:
    """Every metric of one ``ok`` row: from ``arch``, the run's ``summary`` (:meth:`sim.Result.summary`)
    and the FPGA resource estimate of ``arch``'s array on ``family`` (NaN where the model has no data)."""
    from accel.area import area_mm2
    from accel.errors import ConfigError
    from accel.resources import estimate_array

    latency = float(summary["latency_s"])
    energy = float(summary["energy_pj"]) * 1e-12
    row: dict[str, int | float] = {
        "total_cycles": int(summary["total_cycles"]), "latency_s": latency,
        "throughput_per_s": 1.0 / latency if latency > 0 else math.nan, "macs": int(summary["macs"]),
        "energy_j": energy, "average_power_w": float(summary["average_power_w"]), "edp_js": energy * latency,
        "dram_bytes": int(summary["dram_bytes"]), "array_utilization": float(summary["array_utilization"]),
        "peak_macs_per_cycle": int(arch.peak_macs_per_cycle), "clock_hz": float(arch.clock_hz),
        "area_mm2": area_mm2(arch).total_mm2,
    }
    try:
        fpga = estimate_array(arch.array, family=family)
    except ConfigError:
        row.update(dict.fromkeys(_FPGA, math.nan))
    else:
        row.update(luts=int(fpga.luts), flip_flops=int(fpga.flip_flops), dsp=int(fpga.dsp), bram=int(fpga.bram),
                   fmax_mhz=math.nan if fpga.fmax_mhz is None else float(fpga.fmax_mhz))
    return {m: row[m] for m in METRICS}  # in column order; a table entry without its value is a KeyError

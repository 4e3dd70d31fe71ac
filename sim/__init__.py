"""sim: the SimPy event simulator of the accelerator, the bit-exact functional model, and sweeps.

``sim.numerics`` (the integer reference that RTL tests import) and ``sim.metrics`` (the metric
columns of a sweep row) are light; the simulator itself (``simulate``, ``Result``, ``EnergyReport``)
and the design-space sweep package :mod:`sim.sweep` (``run_sweep``, ``Space``, ``materialize``) pull
in SimPy, pandas and the mapper, so they are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sim.engine import Result, TraceEvent, simulate
    from sim.power import EnergyReport
    from sim.sweep import Space, materialize, run_sweep

__all__ = ["EnergyReport", "Result", "Space", "TraceEvent", "materialize", "run_sweep", "simulate"]

_LAZY = {"Result": "sim.engine", "TraceEvent": "sim.engine", "simulate": "sim.engine", "EnergyReport": "sim.power",
         "materialize": "sim.sweep", "Space": "sim.sweep", "run_sweep": "sim.sweep"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sim' has no attribute {name!r}")

"""sim: the SimPy event simulator of the accelerator and the bit-exact functional model.

``sim.numerics`` (the integer reference that RTL tests import) is light; the simulator itself
(``simulate``, ``Result``, ``EnergyReport``) and the design-space sweep (``sweep``, ``Space``,
``materialize``) pull in SimPy and pandas, so they are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sim import sweep
    from sim.engine import Result, TraceEvent, simulate
    from sim.power import EnergyReport
    from sim.sweep import materialize
    from sim.sweep_space import Space

__all__ = ["EnergyReport", "Result", "Space", "TraceEvent", "materialize", "simulate", "sweep"]

_LAZY = {"Result": "sim.engine", "TraceEvent": "sim.engine", "simulate": "sim.engine", "EnergyReport": "sim.power",
         "materialize": "sim.sweep", "Space": "sim.sweep_space"}


def __getattr__(name: str) -> Any:
    if name == "sweep":  # the module, which is callable: sim.sweep(space, workloads) is sim.sweep.sweep(...)
        return importlib.import_module("sim.sweep")
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sim' has no attribute {name!r}")

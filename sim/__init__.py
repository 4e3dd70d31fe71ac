"""sim: the SimPy event simulator of the accelerator and the bit-exact functional model.

``sim.numerics`` (the integer reference that RTL tests import) is light; the simulator itself
(``simulate``, ``Result``, ``EnergyReport``) pulls in SimPy and pandas, so it is imported on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sim.engine import Result, TraceEvent, simulate
    from sim.power import EnergyReport

__all__ = ["EnergyReport", "Result", "TraceEvent", "simulate"]

_LAZY = {"Result": "sim.engine", "TraceEvent": "sim.engine", "simulate": "sim.engine", "EnergyReport": "sim.power"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sim' has no attribute {name!r}")

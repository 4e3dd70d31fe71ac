"""Energy and power of a simulated run: dynamic energy per executed command, static energy over time.

:func:`energy` takes a :class:`sim.Result` and charges every executed command (every event of its
``trace``) the dynamic energy the datasheet gives for it (:func:`accel.energy.command_energy_pj`, so
the simulator and the mapper never disagree about one command), and every unit its static power
(:func:`accel.energy.static_power_mw`) for the whole run, ``result.total_cycles`` at
``arch.clock_hz``. The :class:`EnergyReport` it returns conserves energy exactly as reported:

* ``total_pj == sum(by_component.values())``, ``by_component[c]`` being the dynamic plus the static
  energy of component ``c``;
* ``by_layer`` holds dynamic energy only (static energy belongs to the run, not to a layer; layers
  overlap in time), so ``by_layer["dynamic_pj"].sum() == dynamic_pj`` (to float rounding);
* ``timeline(w)["energy_pj"].sum() == total_pj`` (to float rounding) for every window size ``w``:
  each command's dynamic energy is spread uniformly over its cycles ``[start, end)`` (a command of
  zero cycles puts it all in the window of its start), and static energy evenly over
  ``[0, total_cycles)``.

Energies are in pJ, power in W, time in accelerator cycles.
"""

from __future__ import annotations

import functools
import logging
import operator
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from accel.energy import COMPONENTS, STATIC_COMPONENTS, static_power_mw
from accel.errors import AccelError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from sim.engine import Result

__all__ = ["EnergyReport", "energy"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class EnergyReport:
    """Where a run's energy went: by component, by layer and over time.

    ``by_layer`` has one row per layer of the plan, in program order, with columns ``layer``, ``op``,
    ``<component>_pj`` for each of :data:`accel.energy.COMPONENTS`, and ``dynamic_pj``.
    """

    clock_hz: float
    total_cycles: int
    dynamic_by_component: Mapping[str, float]  # pJ, every key of accel.energy.COMPONENTS
    static_by_component: Mapping[str, float]  # pJ, every key of accel.energy.STATIC_COMPONENTS
    by_layer: pd.DataFrame = field(repr=False)
    # Per executed command (trace order): start and end cycle, dynamic energy in pJ.
    command_start_cycles: np.ndarray = field(repr=False)
    command_end_cycles: np.ndarray = field(repr=False)
    command_energy_pj: np.ndarray = field(repr=False)

    @property
    def by_component(self) -> dict[str, float]:
        """Dynamic plus static energy per component, in pJ."""
        names = list(self.dynamic_by_component) + [c for c in self.static_by_component
                                                    if c not in self.dynamic_by_component]
        return {c: self.dynamic_by_component.get(c, 0.0) + self.static_by_component.get(c, 0.0) for c in names}

    @property
    def dynamic_pj(self) -> float:
        return sum(self.dynamic_by_component.values())

    @property
    def static_pj(self) -> float:
        return sum(self.static_by_component.values())

    @property
    def total_pj(self) -> float:
        return sum(self.by_component.values())

    @property
    def latency_s(self) -> float:
        return self.total_cycles / self.clock_hz

    @property
    def average_power_w(self) -> float:
        """Total energy over the run's wall-clock time (0 for a run of no cycles)."""
        return self.total_pj * 1e-12 / self.latency_s if self.total_cycles else 0.0

    def timeline(self, window_cycles: int) -> pd.DataFrame:
        """Energy and average power per window of ``window_cycles`` cycles.

        Columns ``start_cycle``, ``end_cycle`` (exclusive; the last window ends at the run's end and
        may be shorter), ``dynamic_pj``, ``static_pj``, ``energy_pj`` and ``power_w`` (the window's
        energy over its own length). A run of no cycles has one empty window.
        """
        if not (isinstance(window_cycles, int) and not isinstance(window_cycles, bool) and window_cycles > 0):
            raise AccelError(f"window_cycles must be a positive integer, not {window_cycles!r}")
        total = self.total_cycles
        windows = max(1, -(-total // window_cycles))
        edges = np.minimum(np.arange(windows + 1, dtype=np.int64) * window_cycles, total)
        dynamic = _spread(self.command_start_cycles, self.command_end_cycles, self.command_energy_pj,
                          edges, window_cycles)
        lengths = np.diff(edges)
        static = self.static_pj * lengths / total if total else np.zeros(windows)
        energy_pj = dynamic + static
        with np.errstate(divide="ignore", invalid="ignore"):
            power_w = np.where(lengths > 0, energy_pj * 1e-12 * self.clock_hz / np.maximum(lengths, 1), 0.0)
        return pd.DataFrame({
            "start_cycle": edges[:-1], "end_cycle": edges[1:], "dynamic_pj": dynamic, "static_pj": static,
            "energy_pj": energy_pj, "power_w": power_w,
        })

    def summary(self) -> dict[str, object]:
        """The headline numbers, JSON-ready."""
        return {
            "total_pj": self.total_pj,
            "dynamic_pj": self.dynamic_pj,
            "static_pj": self.static_pj,
            "average_power_w": self.average_power_w,
            "by_component_pj": self.by_component,
        }


def _spread(starts: np.ndarray, ends: np.ndarray, energy_pj: np.ndarray, edges: np.ndarray,
            window_cycles: int) -> np.ndarray:
    """Energy per window when each command's energy is uniform over ``[start, end)``.

    The cumulative energy up to time ``t`` is piecewise linear with breakpoints at command starts and
    ends; it is evaluated exactly at the breakpoints, interpolated at the window edges and differenced.
    """
    windows = len(edges) - 1
    out = np.zeros(windows)
    durations = ends - starts
    instant = durations <= 0
    if instant.any():
        index = np.minimum(starts[instant] // window_cycles, windows - 1)
        out += np.bincount(index, weights=energy_pj[instant], minlength=windows)
    spread = ~instant
    if spread.any():
        rate = energy_pj[spread] / durations[spread]
        points, inverse = np.unique(np.concatenate([starts[spread], ends[spread]]), return_inverse=True)
        slope_change = np.bincount(inverse, weights=np.concatenate([rate, -rate]), minlength=len(points))
        slope = np.cumsum(slope_change)[:-1]  # energy per cycle between consecutive points
        cumulative = np.concatenate([[0.0], np.cumsum(slope * np.diff(points))])
        out += np.diff(np.interp(edges, points, cumulative))
    return out


def energy(result: Result) -> EnergyReport:
    """Charge every executed command its datasheet energy and every unit its static power."""
    arch = result.arch
    timing, table = result.timing, result.table  # the commands priced once per distinct form (sim.program)
    form = table.form[timing.command]
    per_command = table.energy_pj[form]
    dynamic_by_component = dict(zip(COMPONENTS, per_command.sum(axis=0).tolist(), strict=True))

    seconds = result.total_cycles / arch.clock_hz
    power_mw = static_power_mw(arch)
    static_by_component = {c: power_mw[c] * 1e-3 * seconds * 1e12 for c in STATIC_COMPONENTS}

    layer = table.layer[timing.command]
    count = len(table.layer_names)
    sums = np.stack([np.bincount(layer, weights=per_command[:, i], minlength=count)
                     for i in range(len(COMPONENTS))], axis=1) if len(COMPONENTS) else np.zeros((count, 0))
    ran = np.bincount(layer, minlength=count) > 0
    by_name = {name: i for i, name in enumerate(table.layer_names)}
    layers = result.plan.layers
    rows = [by_name[m.layer] for m in layers]
    columns: dict[str, object] = {"layer": [m.layer for m in layers], "op": [m.op.value for m in layers]}
    for i, c in enumerate(COMPONENTS):
        columns[f"{c}_pj"] = np.where(ran[rows], sums[rows, i], 0.0) if rows else np.zeros(0)
    parts = [columns[f"{c}_pj"] for c in COMPONENTS]
    columns["dynamic_pj"] = functools.reduce(operator.add, parts) if parts else np.zeros(len(rows))  # in order
    by_layer = pd.DataFrame(columns)

    starts = timing.start.copy()
    ends = timing.end.copy()
    energies = per_command.sum(axis=1)
    report = EnergyReport(
        clock_hz=arch.clock_hz,
        total_cycles=result.total_cycles,
        dynamic_by_component=MappingProxyType(dynamic_by_component),
        static_by_component=MappingProxyType(static_by_component),
        by_layer=by_layer,
        command_start_cycles=starts,
        command_end_cycles=ends,
        command_energy_pj=energies,
    )
    _log.debug("energy of %s on %s: %.3g pJ over %d cycles", result.plan.graph_name, arch.name,
               report.total_pj, result.total_cycles)
    return report

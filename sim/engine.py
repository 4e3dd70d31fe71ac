"""The event simulator: executes a plan's command program on SimPy processes, one per unit.

Each hardware unit is a SimPy process that takes its own commands in program order, waits for the
commands they depend on, then holds the unit for the cycles the datasheet (:mod:`accel.timing`)
gives. DMA loads and stores have separate in-order queues and share DRAM: a resource with one slot
per DMA channel that DRAM can feed at full rate, so transfers never move more bytes per cycle than
the hardware can. Time is in accelerator cycles. Events are per command (tile granularity), never per cycle.

The result is a :class:`Result`: total cycles, per-layer and per-unit figures as pandas DataFrames,
the executed command trace (exportable as Perfetto JSON) and its energy and power over time.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pandas as pd
import simpy

from accel.commands import Command, Load, Move, Store, Unit
from accel.hardware import Accelerator
from accel.timing import bank_conflict_cycles, command_cycles, issue_cycles, late_start_cycles
from accel.traffic import command_bytes
from mapper.plan import Plan
from sim.power import EnergyReport
from sim.power import energy as _energy
from sim.trace import write_perfetto

__all__ = ["simulate", "Result", "TraceEvent", "command_cycles"]


@dataclass(frozen=True)
class TraceEvent:
    """One executed command: which unit ran it and when (cycles, end exclusive).

    ``stall`` is how long its unit sat waiting before ``start`` (from the end of the unit's previous
    command), and ``stall_on`` why: the kind of the dependency that finished last (``Load``,
    ``Store``, ``Compute``, ``Vector``) or ``dram`` when DMA waited for DRAM bandwidth.
    """

    command: int
    unit: str
    layer: str
    kind: str
    start: int
    end: int
    stall: int = 0
    stall_on: str = ""


@dataclass(frozen=True)
class Result:
    """What a simulation measured. DataFrames are built on demand from the trace."""

    arch: Accelerator
    plan: Plan
    total_cycles: int
    trace: tuple[TraceEvent, ...]

    @property
    def latency_s(self) -> float:
        return self.total_cycles / self.arch.clock_hz

    @property
    def macs(self) -> int:
        return self.plan.macs

    @property
    def dram_bytes(self) -> int:
        return self.plan.dram_bytes

    @cached_property
    def energy(self) -> EnergyReport:
        """Energy by component, by layer and over time (:func:`sim.power.energy`)."""
        return _energy(self)

    def write_trace(self, path: str | Path, *, power_window_cycles: int | None = None) -> Path:
        """A Chrome/Perfetto trace-event JSON: one track per unit, one slice per command."""
        return write_perfetto(self, path, power_window_cycles=power_window_cycles)

    def layers(self) -> pd.DataFrame:
        """One row per layer in program order: start/end cycle, span, busy cycles per unit, MACs, and
        bytes moved per level (DRAM reads and writes, scratchpad, accumulator, array; see
        :mod:`accel.traffic`)."""
        by_id = self.plan.commands
        rows: dict[str, dict[str, object]] = {}
        for m in self.plan.layers:
            rows[m.layer] = {
                "layer": m.layer, "op": m.op.value, "dataflow": m.dataflow.value if m.dataflow else "",
                "start_cycle": None, "end_cycle": None, "macs": m.macs, "dram_read_bytes": 0,
                "dram_write_bytes": 0, "scratchpad_bytes": 0, "accumulator_bytes": 0, "array_bytes": 0,
                "array_cycles": 0, "vector_cycles": 0, "dma_cycles": 0,
            }
        for ev in self.trace:
            row = rows[ev.layer]
            row["start_cycle"] = ev.start if row["start_cycle"] is None else min(row["start_cycle"], ev.start)
            row["end_cycle"] = ev.end if row["end_cycle"] is None else max(row["end_cycle"], ev.end)
            row[f"{ev.unit}_cycles"] += ev.end - ev.start
            cmd = by_id[ev.command]
            for level, size in command_bytes(self.arch, cmd).items():
                if level != "dram":
                    row[f"{level}_bytes"] += size
            if isinstance(cmd, Load):
                row["dram_read_bytes"] += cmd.size_bytes
            elif isinstance(cmd, Store):
                row["dram_write_bytes"] += cmd.size_bytes
        frame = pd.DataFrame(list(rows.values()))
        frame["start_cycle"] = frame["start_cycle"].fillna(0).astype("int64")
        frame["end_cycle"] = frame["end_cycle"].fillna(0).astype("int64")
        frame["cycles"] = frame["end_cycle"] - frame["start_cycle"]
        peak = self.arch.peak_macs_per_cycle
        busy = frame["array_cycles"].where(frame["array_cycles"] > 0)
        frame["utilization"] = (frame["macs"] / (busy * peak)).fillna(0.0)
        return frame

    def units(self) -> pd.DataFrame:
        """One row per unit (``dma.load`` and ``dma.store`` being the DMA's two queues): busy, stalled
        (by cause) and idle cycles over the whole run, per channel of the unit.

        ``busy + stall + idle = total cycles x channels``: ``stall`` is time the unit had its next
        command in hand but waited, ``idle`` the rest (before its first and after its last command).
        Stall causes: ``stall_on_dma`` (waiting for a load or store), ``stall_on_array``,
        ``stall_on_vector`` (waiting for a compute to free a buffer or produce data), ``stall_on_dram``
        (a transfer waiting for DRAM bandwidth). ``bank_conflict_cycles`` is the part of the array's
        busy cycles lost to scratchpad bank conflicts.
        """
        causes = {"Load": "stall_on_dma", "Store": "stall_on_dma", "Move": "stall_on_dma", "Compute": "stall_on_array",
                  "Vector": "stall_on_vector", "dram": "stall_on_dram"}
        channels = {"dma.load": self.arch.dma.channels, "dma.store": self.arch.dma.channels, "array": 1, "vector": 1}
        rows = {u: {"unit": u, "busy_cycles": 0, "stall_cycles": 0, **{c: 0 for c in dict.fromkeys(causes.values())},
                    "bank_conflict_cycles": 0} for u in channels}
        for ev in self.trace:
            row = rows[{"Load": "dma.load", "Store": "dma.store", "Move": "dma.store"}.get(ev.kind, ev.unit)]
            row["busy_cycles"] += ev.end - ev.start
            row["stall_cycles"] += ev.stall
            if ev.stall:
                row[causes[ev.stall_on]] += ev.stall
            if ev.kind == "Compute":
                row["bank_conflict_cycles"] += bank_conflict_cycles(self.arch, self.plan.commands[ev.command])
        total = max(self.total_cycles, 1)
        for name, row in rows.items():
            row["idle_cycles"] = max(total * channels[name] - row["busy_cycles"] - row["stall_cycles"], 0)
            row["busy_fraction"] = row["busy_cycles"] / (total * channels[name])
        return pd.DataFrame(list(rows.values()))

    def _level_totals(self) -> dict[str, int]:
        totals = {"scratchpad": 0, "accumulator": 0, "array": 0}
        for cmd in self.plan.commands:
            for level, size in command_bytes(self.arch, cmd).items():
                if level in totals:
                    totals[level] += size
        return totals

    def summary(self) -> dict[str, object]:
        """The headline numbers, JSON-ready."""
        return {
            "arch": self.arch.name,
            "workload": self.plan.graph_name,
            "total_cycles": self.total_cycles,
            "latency_s": self.latency_s,
            "macs": self.macs,
            "dram_bytes": self.dram_bytes,
            "dram_read_bytes": self.plan.dram_read_bytes,
            "dram_write_bytes": self.plan.dram_write_bytes,
            **{f"{level}_bytes": int(total) for level, total in self._level_totals().items()},
            "array_utilization": self.macs / (max(self.total_cycles, 1) * self.arch.peak_macs_per_cycle),
            "energy_pj": self.energy.total_pj,
            "average_power_w": self.energy.average_power_w,
            "commands": len(self.plan.commands),
        }


def simulate(plan: Plan) -> Result:
    """Run ``plan``'s command program and return what happened."""
    return _Machine(plan).run()


class _Machine:
    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.arch = plan.arch
        self.env = simpy.Environment()
        self.done = [self.env.event() for _ in plan.commands]
        self.finished = [0.0] * len(plan.commands)  # end cycle of each command, once it has run
        self.trace: list[TraceEvent] = []
        queues: dict[Unit, list[Command]] = {u: [] for u in Unit}
        for cmd in plan.commands:
            queues[cmd.unit].append(cmd)
        channels = self.arch.dma.channels
        feedable = int(self.arch.dram.bandwidth_bytes_per_cycle // self.arch.dma.bandwidth_bytes_per_cycle)
        # Transfers at full rate at once: the DMA channels, or fewer when DRAM cannot feed them all.
        self.dram = simpy.Resource(self.env, capacity=max(1, min(channels, feedable)))
        # Loads and stores have queues of their own (like Gemmini's load and store controllers), so a
        # store waiting for its compute never holds up the prefetch of the next tile; the channels of a
        # queue take its commands in program order.
        loads = iter([c for c in queues[Unit.DMA] if isinstance(c, Load)])
        stores = iter([c for c in queues[Unit.DMA] if not isinstance(c, Load)])
        for _ in range(channels):
            self.env.process(self._dma_channel(loads))
            self.env.process(self._dma_channel(stores))
        self.env.process(self._unit(Unit.ARRAY, queues[Unit.ARRAY]))
        self.env.process(self._unit(Unit.VECTOR, queues[Unit.VECTOR]))
        # A host issuing the program (arch.control), only when the design has one.
        self.issued: list[simpy.Event] | None = None
        if self.arch.control.host_issued:
            self.issued = [self.env.event() for _ in plan.commands]
            self.env.process(self._host())

    def run(self) -> Result:
        self.env.run()
        unfinished = [i for i, ev in enumerate(self.done) if not ev.triggered]
        if unfinished:
            raise RuntimeError(f"deadlock: commands {unfinished[:5]} never ran (a dependency cycle in the plan)")
        self.trace.sort(key=lambda ev: (ev.start, ev.command))
        total = max((ev.end for ev in self.trace), default=0)
        return Result(self.arch, self.plan, int(total), tuple(self.trace))

    def _host(self) -> Generator[simpy.Event, object, None]:
        """The host-issue stage: commands in program order, each after ``issue_cycles``, and only once
        the command ``queue_depth`` places earlier has finished (a full queue)."""
        depth = self.arch.control.queue_depth
        assert self.issued is not None
        for cmd in self.plan.commands:
            cycles = issue_cycles(self.arch, cmd)
            if cycles:
                yield self.env.timeout(cycles)
            if depth and cmd.id >= depth and not self.done[cmd.id - depth].processed:
                yield self.done[cmd.id - depth]
            self.issued[cmd.id].succeed()

    def _wait_for_deps(self, cmd: Command) -> Generator[simpy.Event, object, None]:
        if self.issued is not None and not self.issued[cmd.id].processed:
            yield self.issued[cmd.id]
        pending = [self.done[d] for d in cmd.deps if not self.done[d].processed]
        if len(pending) == 1:
            yield pending[0]
        elif pending:
            yield self.env.all_of(pending)

    def _last_dependency(self, cmd: Command) -> str:
        if not cmd.deps:
            return ""
        last = max(cmd.deps, key=lambda d: self.finished[d])
        return type(self.plan.commands[last]).__name__

    def _execute(self, cmd: Command, unit: Unit, free_at: float,
                 stall_on: str, extra: int = 0) -> Generator[simpy.Event, object, float]:
        start = self.env.now
        yield self.env.timeout(command_cycles(self.arch, cmd) + extra)
        self.finished[cmd.id] = self.env.now
        self.trace.append(TraceEvent(cmd.id, unit.value, cmd.layer, type(cmd).__name__, int(start),
                                     int(self.env.now), int(start - free_at), stall_on if start > free_at else ""))
        self.done[cmd.id].succeed()
        return self.env.now

    def _unit(self, unit: Unit, queue: list[Command]) -> Generator[simpy.Event, object, None]:
        free_at: float | None = None
        for cmd in queue:
            yield from self._wait_for_deps(cmd)
            late = 0 if free_at is None else self._late_start(cmd, free_at)
            free_at = yield from self._execute(cmd, unit, self.env.now if free_at is None else free_at,
                                               self._last_dependency(cmd), late)

    def _late_start(self, cmd: Command, free_at: float) -> int:
        """Fold overlap lost to late operands (:func:`accel.timing.late_start_cycles`; 0 unless the
        array double-buffers its weights and ``cmd`` follows the previous compute)."""
        if not getattr(cmd, "follows", 0):
            return 0
        commands = self.plan.commands
        ready = max((self.finished[d] for d in cmd.deps if commands[d].unit is not cmd.unit), default=0.0)
        return late_start_cycles(self.arch, cmd, ready, free_at)

    def _dma_channel(self, queue: Iterator[Command]) -> Generator[simpy.Event, object, None]:
        free_at: float | None = None
        for cmd in queue:
            yield from self._wait_for_deps(cmd)
            began = self.env.now if free_at is None else free_at
            cause = self._last_dependency(cmd)
            if isinstance(cmd, Move):  # on chip: no DRAM slot
                free_at = yield from self._execute(cmd, Unit.DMA, began, cause)
                continue
            ready = self.env.now
            with self.dram.request() as slot:
                yield slot
                if self.env.now > ready:
                    cause = "dram"
                free_at = yield from self._execute(cmd, Unit.DMA, began, cause)

"""The event simulator: executes a plan's command program on SimPy processes, one per unit.

Each hardware unit is a SimPy process that takes its own commands in program order, waits for the
commands they depend on, then holds the unit for the cycles the datasheet (:mod:`accel.timing`)
gives. DMA loads and stores have separate in-order queues and share DRAM: a resource with one slot
per DMA channel that DRAM can feed at full rate, so transfers never move more bytes per cycle than
the hardware can. Time is in accelerator cycles. Events are per command (tile granularity), never per cycle:
a command's timeout, its completion only when another command already waits for it (a completion nobody
waits for is marked done at once), and a DRAM slot's grant and release only when a transfer had to queue
for it.

**Coalescing** (the default; ``simulate(plan, fine=True)`` turns it off). Most of a large layer is a
run of identical blocks of commands (the double-buffered tiles of a GEMM: loads, computes, stores,
with the same cycles and the same dependencies shifted by one block). Once such a run reaches a steady
state the simulator lets one step stand for many blocks, and the answer is the fine simulation's,
exactly. The method and its proof:

1. *Runs* are found in the program (:func:`_runs`): within a layer, a range ``[a, b)`` of commands
   whose signatures repeat with a period of ``L`` commands: the same kind, the same datasheet cycles,
   the same dependency offsets inside the layer and the same dependencies outside it. Addresses and
   other fields that no timing depends on may differ. A command of a kind or with fields the
   simulator does not know ends every run (it is always simulated one by one).
2. The fine simulation runs as usual. Whenever a run's *anchor* (its first array command of a block,
   or first command) starts, the simulator waits until every other event of that cycle has been
   processed and takes a *snapshot*: for every process its phase (waiting for dependencies, for
   DRAM, executing, finished), the command it holds as an offset from the anchor, its times relative
   to now, the commands it waits for; each queue's next command; the DRAM resource's holders and
   waiting line in order; the pending events in SimPy's order; which commands of the window the
   coming commands can depend on have completed, and who waits on each that has not. A process
   holding a command outside the run is allowed only if it waits for a command after the run (it
   cannot move before the run ends) or has finished; any other state rejects the snapshot.
3. If the snapshot at anchor ``j`` equals the one at an earlier anchor ``j - m`` (``m <= 4`` blocks)
   with every command shifted by ``S = m L`` and every time by ``P`` (the cycles between the two), the
   machine's state at ``j`` is the state at ``j - m`` moved by ``(S, P)``. A SimPy simulation is a
   deterministic function of its state and the program ahead; the program ahead is the same up to the
   shift as long as it stays in the run; and every rule of the machine (dependencies, in-order queues,
   the FIFO DRAM resource, SimPy's order of equal-time events by insertion) is invariant under a
   shift of all times. So, by induction, the next ``K`` periods repeat the last one: the commands that
   completed in the last period complete again, shifted by ``k S`` and ``k P`` for ``k = 1..K``, where
   ``K`` is as large as keeps every command the state refers to inside the run. The simulator records
   those ``K`` periods at once (their stall causes are recomputed from the shifted finish times, as the
   fine path computes them), moves the state by ``(K S, K P)`` (commands held, pending events, the
   clock) and continues the fine simulation from there: the run's last blocks and whatever follows.
   Before moving anything it checks that the completed commands it would record are exactly the ones
   the moved state says are complete; if not, it does not coalesce.

So coalescing changes nothing measurable: cycles, the trace, per-layer and per-unit figures, DRAM bytes
and energy are those of ``fine=True`` (``tests/test_coalescing.py`` checks it on every zoo model, the
shared ONNX graphs and the SCALE-Sim fixtures, with every allocator). ``Result.coalesced_commands``
says how many commands were recorded by coalescing, ``Result.events`` how many SimPy events ran.

The result is a :class:`Result`: total cycles, per-layer and per-unit figures as pandas DataFrames,
the executed command trace (exportable as Perfetto JSON) and its energy and power over time. The trace
is kept as numpy arrays (one entry per command); :class:`TraceEvent` objects are made only when
``Result.trace`` is read.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
from array import array
from collections.abc import Generator
from dataclasses import dataclass
from functools import cache, cached_property
from heapq import heapify, heappop, heappush
from pathlib import Path

import numpy as np
import pandas as pd
import simpy
from simpy.events import NORMAL, PENDING, Timeout
from simpy.resources.resource import Release, Request

from accel.commands import Command, Compute, Load, Move, Store, Vector
from accel.errors import MappingError
from accel.gcpause import gc_paused
from accel.hardware import Accelerator
from accel.timing import command_cycles, issue_cycles, late_start_cycles
from accel.traffic import LEVELS
from mapper.plan import Plan
from sim.power import EnergyReport
from sim.power import energy as _energy
from sim.program import KINDS, QUEUES, ProgramTable, program_table
from sim.trace import write_perfetto

__all__ = ["simulate", "Result", "TraceEvent", "Timing", "command_cycles"]

_log = logging.getLogger(__name__)

# Stall causes, as recorded: index 0 is "no stall".
CAUSES = ("", "Load", "Store", "Move", "Compute", "Vector", "dram")
_CAUSE = {name: i for i, name in enumerate(CAUSES)}
_UNIT_OF_KIND = ("dma", "dma", "dma", "array", "vector")


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


@dataclass(frozen=True, eq=False)
class Timing:
    """The executed commands as arrays, in trace order (by start cycle, then command id).

    ``command`` (ids), ``start``, ``end`` (cycles, end exclusive), ``stall`` (cycles) and ``stall_on``
    (index into :data:`CAUSES`), and ``coalesced`` (recorded by coalescing, not one by one).
    """

    command: np.ndarray
    start: np.ndarray
    end: np.ndarray
    stall: np.ndarray
    stall_on: np.ndarray
    coalesced: np.ndarray

    @staticmethod
    def from_events(events: tuple[TraceEvent, ...]) -> Timing:
        n = len(events)
        return Timing(np.fromiter((e.command for e in events), np.int64, n),
                      np.fromiter((e.start for e in events), np.int64, n),
                      np.fromiter((e.end for e in events), np.int64, n),
                      np.fromiter((e.stall for e in events), np.int64, n),
                      np.fromiter((_CAUSE[e.stall_on] for e in events), np.int8, n),
                      np.zeros(n, dtype=bool))

    def __len__(self) -> int:
        return len(self.command)


@dataclass(frozen=True)
class Result:
    """What a simulation measured. DataFrames are built on demand from the timing arrays.

    ``timing`` may also be given as a tuple of :class:`TraceEvent` (a trace placed by hand).
    """

    arch: Accelerator
    plan: Plan
    total_cycles: int
    timing: Timing
    events: int = dataclasses.field(default=0, compare=False)  # SimPy events processed

    def __post_init__(self) -> None:
        if isinstance(self.timing, tuple | list):
            object.__setattr__(self, "timing", Timing.from_events(tuple(self.timing)))

    @property
    def latency_s(self) -> float:
        return self.total_cycles / self.arch.clock_hz

    @property
    def macs(self) -> int:
        return self.plan.macs

    @property
    def dram_bytes(self) -> int:
        return self.dram_read_bytes + self.dram_write_bytes

    @property
    def dram_read_bytes(self) -> int:
        """The plan's loads' bytes (:attr:`mapper.plan.Plan.dram_read_bytes`), summed per form."""
        return int(self.table.dram_read_bytes @ self._form_counts)

    @property
    def dram_write_bytes(self) -> int:
        return int(self.table.dram_write_bytes @ self._form_counts)

    @cached_property
    def _form_counts(self) -> np.ndarray:
        return self.table.form_counts()

    @cached_property
    def array_macs(self) -> int:
        """Multiply-accumulates the array performs: for N:M layers ``N/M`` of their dense :attr:`macs`."""
        return int(self._array_macs_per_layer.sum())

    @cached_property
    def _array_macs_per_layer(self) -> np.ndarray:
        table = self.table  # a compute's MACs are its shape's, so one figure per form
        per_form = np.array([c.macs if isinstance(c, Compute) else 0 for c in table.forms], dtype=np.int64)
        return np.bincount(table.layer, weights=per_form[table.form], minlength=len(table.layer_names)).astype(np.int64)

    @property
    def coalesced_commands(self) -> int:
        """Commands recorded by coalescing (see the module docstring) rather than one by one."""
        return int(self.timing.coalesced.sum())

    @cached_property
    def table(self) -> ProgramTable:
        """The plan's commands priced once per distinct form (:mod:`sim.program`)."""
        return program_table(self.arch, self.plan.commands, tuple(m.layer for m in self.plan.layers))

    @cached_property
    def trace(self) -> tuple[TraceEvent, ...]:
        """Every executed command as a :class:`TraceEvent`, by start cycle then command id."""
        t, table = self.timing, self.table
        kinds = table.kind[t.command].tolist()
        layers = table.layer[t.command].tolist()
        names = table.layer_names
        return tuple(TraceEvent(c, _UNIT_OF_KIND[k], names[ly], KINDS[k], s, e, st, CAUSES[on])
                     for c, k, ly, s, e, st, on in zip(t.command.tolist(), kinds, layers, t.start.tolist(),
                                                       t.end.tolist(), t.stall.tolist(), t.stall_on.tolist(),
                                                       strict=True))

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
        :mod:`accel.traffic`).

        ``macs`` are the layer's dense MACs (the workload's), ``array_macs`` what the array performs
        (``N/M`` of them for an N:M layer, 0 for a layer on the vector unit). Both utilisations are
        ``array_macs`` over the array's peak and lie in [0, 1]: ``utilization`` over the layer's span
        (``cycles``), ``array_busy_utilization`` over the cycles the array was busy with it."""
        t, table = self.timing, self.table
        count = len(table.layer_names)
        layer = table.layer[t.command]
        form = table.form[t.command]
        kind = table.kind[t.command]
        busy = t.end - t.start
        ran = np.bincount(layer, minlength=count) > 0
        start = np.full(count, np.iinfo(np.int64).max)
        np.minimum.at(start, layer, t.start)
        end = np.zeros(count, dtype=np.int64)
        np.maximum.at(end, layer, t.end)
        start = np.where(ran, start, 0)

        def per_layer(weights: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
            if mask is not None:
                return np.bincount(layer[mask], weights=weights[mask], minlength=count).astype(np.int64)
            return np.bincount(layer, weights=weights, minlength=count).astype(np.int64)

        unit_cycles = {
            "array": per_layer(busy, kind == 3), "vector": per_layer(busy, kind == 4),
            "dma": per_layer(busy, kind <= 2),
        }
        level_bytes = table.level_bytes[form]
        position = {name: i for i, name in enumerate(table.layer_names)}
        mappings = self.plan.layers
        rows = np.array([position[m.layer] for m in mappings], dtype=np.int64)
        level = {lv: per_layer(level_bytes[:, i]) for i, lv in enumerate(LEVELS) if lv != "dram"}
        start, end = start[rows], end[rows]
        cycles = end - start
        array_cycles = unit_cycles["array"][rows]
        array_macs = self._array_macs_per_layer[rows]
        peak = self.arch.peak_macs_per_cycle
        with np.errstate(divide="ignore", invalid="ignore"):
            utilization = np.where(cycles > 0, array_macs / (cycles * peak), 0.0)
            busy_utilization = np.where(array_cycles > 0, array_macs / (array_cycles * peak), 0.0)
        return pd.DataFrame({
            "layer": [m.layer for m in mappings], "op": [m.op.value for m in mappings],
            "dataflow": [m.dataflow.value if m.dataflow else "" for m in mappings],
            "start_cycle": start, "end_cycle": end, "macs": [m.macs for m in mappings],
            "dram_read_bytes": per_layer(table.dram_read_bytes[form])[rows],
            "dram_write_bytes": per_layer(table.dram_write_bytes[form])[rows],
            "scratchpad_bytes": level["scratchpad"][rows], "accumulator_bytes": level["accumulator"][rows],
            "array_bytes": level["array"][rows], "array_cycles": array_cycles,
            "vector_cycles": unit_cycles["vector"][rows], "dma_cycles": unit_cycles["dma"][rows],
            "cycles": cycles, "array_macs": array_macs, "utilization": utilization,
            "array_busy_utilization": busy_utilization,
        })

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
        column_of_cause = ("", "stall_on_dma", "stall_on_dma", "stall_on_dma", "stall_on_array", "stall_on_vector",
                           "stall_on_dram")
        channels = {"dma.load": self.arch.dma.channels, "dma.store": self.arch.dma.channels, "array": 1, "vector": 1}
        t, table = self.timing, self.table
        queue = table.queue[t.command]
        form = table.form[t.command]
        busy = t.end - t.start
        rows = []
        total = max(self.total_cycles, 1)
        for q, name in enumerate(QUEUES):
            mine = queue == q
            row: dict[str, object] = {"unit": name, "busy_cycles": int(busy[mine].sum()),
                                      "stall_cycles": int(t.stall[mine].sum())}
            for cause_column in dict.fromkeys(column_of_cause[1:]):
                row[cause_column] = 0
            by_cause = np.bincount(t.stall_on[mine], weights=t.stall[mine], minlength=len(CAUSES))
            for cause, cycles in enumerate(by_cause.tolist()[1:], start=1):
                row[column_of_cause[cause]] += int(cycles)
            row["bank_conflict_cycles"] = int(table.bank_conflict_cycles[form[mine]].sum())
            row["idle_cycles"] = max(total * channels[name] - row["busy_cycles"] - row["stall_cycles"], 0)
            row["busy_fraction"] = row["busy_cycles"] / (total * channels[name])
            rows.append(row)
        return pd.DataFrame(rows)

    def _level_totals(self) -> dict[str, int]:
        table = self.table
        sums = (table.level_bytes * self._form_counts[:, None]).sum(axis=0)
        return {level: int(sums[i]) for i, level in enumerate(LEVELS) if level != "dram"}

    def summary(self) -> dict[str, object]:
        """The headline numbers, JSON-ready."""
        return {
            "arch": self.arch.name,
            "workload": self.plan.graph_name,
            "total_cycles": self.total_cycles,
            "latency_s": self.latency_s,
            "macs": self.macs,
            "dram_bytes": self.dram_bytes,
            "dram_read_bytes": self.dram_read_bytes,
            "dram_write_bytes": self.dram_write_bytes,
            **{f"{level}_bytes": int(total) for level, total in self._level_totals().items()},
            "array_macs": self.array_macs,
            "array_utilization": self.array_macs / (max(self.total_cycles, 1) * self.arch.peak_macs_per_cycle),
            "effective_macs_per_cycle": self.macs / max(self.total_cycles, 1),
            "energy_pj": self.energy.total_pj,
            "energy_j": self.energy.total_pj * 1e-12,
            "average_power_w": self.energy.average_power_w,
            "commands": len(self.plan.commands),
        }


@gc_paused()  # per-command state and events, no cycles to collect (accel.gcpause)
def simulate(plan: Plan, *, fine: bool = False) -> Result:
    """Run ``plan``'s command program and return what happened.

    ``fine=True`` simulates every command one by one; the default coalesces steady runs of identical
    blocks (see the module docstring), with the same result.
    """
    if not isinstance(plan, Plan):
        raise MappingError(f"simulate's plan must be a mapper.Plan (see mapper.map_graph), not "
                           f"{type(plan).__name__} {plan!r:.60}")
    return _Machine(plan, coalesce=not fine).run()


# Process phases.
_DEPS, _DRAM, _EXEC, _DONE = 1, 2, 3, 4
_HISTORY = 4  # snapshots kept per run: periods of up to 4 blocks are found
_ATTEMPTS = 48  # snapshots tried per run before it is left to the fine simulation
_MIN_BLOCKS = 8  # runs shorter than this are not worth a snapshot
_MAX_PERIOD = 512  # longest block (commands) looked for
_MAX_WINDOW = 4096  # most commands a snapshot compares
# The fields of each command kind whose effect on timing the simulator knows (all through command_cycles);
# a command with any other field is never coalesced
# (blocks, origins and chunks say which bytes a command touches; the datasheet times its size only)
_KNOWN_FIELDS = {
    Load: {"id", "layer", "deps", "tensor", "size_bytes", "buffer", "addr", "dram_addr", "dram"},
    Store: {"id", "layer", "deps", "tensor", "size_bytes", "buffer", "addr", "dram_addr", "activation", "dram",
            "raw"},
    Move: {"id", "layer", "deps", "tensor", "size_bytes", "src_addr", "addr", "activation", "dst"},
    # follows: the late-start cycles it adds depend on times relative to each other only (shift-invariant)
    Compute: {"id", "layer", "deps", "m", "k", "n", "dataflow", "batch", "input_addr", "weight_addr",
              "output_addr", "accumulate", "fill", "drain", "sparsity", "follows", "origin", "input_block",
              "weight_block"},
    Vector: {"id", "layer", "deps", "op", "elements", "macs", "input_addr", "output_addr", "second_addr", "origin",
             "extent", "input_block", "second_block", "output_block", "part"},
}


@cache
def _known_kind(kind: type) -> bool:
    """Whether coalescing knows every field of command class ``kind`` (a field the table above does not
    list, in a subclass or a new field, makes its commands end every run)."""
    return kind in _KNOWN_FIELDS and {f.name for f in dataclasses.fields(kind)} <= _KNOWN_FIELDS[kind]


class _Proc:
    """One SimPy process's state, kept outside the generator so that coalescing can move it."""

    __slots__ = ("index", "cursor", "phase", "cmd", "since", "end", "free_at", "ready", "began", "cause",
                 "wait", "wait_ids", "request", "timeout", "process")

    def __init__(self, index: int, cursor: _Cursor) -> None:
        self.index = index
        self.cursor = cursor
        self.phase = 0
        self.cmd = -1
        self.since = self.end = self.ready = self.began = 0
        self.free_at: int | None = None
        self.cause: str | None = ""
        self.wait: simpy.Event | None = None
        self.wait_ids: tuple[int, ...] = ()
        self.request: simpy.Event | None = None
        self.timeout: simpy.Event | None = None
        self.process: simpy.Process | None = None


class _Cursor:
    """A queue's commands (ids in program order) and the position of the next one to take."""

    __slots__ = ("ids", "pos", "queue")

    def __init__(self, ids: list[int], queue: int) -> None:
        self.ids = ids
        self.pos = 0
        self.queue = queue


@dataclass
class _Run:
    """Commands ``[a, b)`` of one layer whose signatures repeat every ``period`` commands."""

    a: int
    b: int
    period: int
    reach: int  # the farthest back a dependency inside the layer reaches, in commands
    per_queue: tuple[int, ...]  # commands per block in each queue
    history: list[tuple[tuple, tuple]] = dataclasses.field(default_factory=list)
    attempts: int = 0
    finished: bool = False


def _processed_event(env: simpy.Environment) -> simpy.Event:
    """An event that has happened and been processed (stands for every command recorded by coalescing)."""
    return _as_processed(simpy.Event(env))


def _as_processed(event: simpy.Event) -> simpy.Event:
    """``event`` marked as succeeded and processed, never scheduled (nothing waits for it)."""
    event._ok = True
    event._value = None
    event.callbacks = None
    return event


class _AllDone(simpy.Event):
    """``env.all_of(events)`` of pending events, as the simulator waits for a command's dependencies:
    it counts them done (``_count``, as SimPy's condition does) through the same callback on each, in
    the same order, and is scheduled when the last is processed; no condition value is built (the
    process does not read it) and none of the events can fail."""

    def __init__(self, env: simpy.Environment, events: list[simpy.Event]) -> None:
        self.env = env
        self.callbacks = []
        self._value = PENDING
        self._count = 0
        self._total = len(events)
        check = self._check
        for event in events:
            event.callbacks.append(check)

    def _check(self, event: simpy.Event) -> None:
        self._count += 1
        if self._count == self._total:
            self._ok = True
            self._value = None
            self.env.schedule(self)


class _Slots(simpy.Resource):
    """A :class:`simpy.Resource` whose :meth:`take` and :meth:`give` do what ``request()`` and the
    end of its ``with`` block do, the same slots granted in the same order, through fewer calls and
    events: a request finding a free slot and nobody queued is granted at once and returned processed
    (no event: its process goes straight on to the transfer); otherwise it is queued and the first
    waiting one granted if a slot is free (SimPy's ``Resource`` looks at the head of its queue only).
    A release frees the slot at once; with requests queued it schedules a
    :class:`simpy.resources.resource.Release` event that, when processed, grants the head of the
    queue. (SimPy's own path builds each event through a bound class and three ``__init__``, walks
    its queues through general loops, and schedules an event per request and per release.)"""

    def take(self) -> Request:
        """``self.request()``; a request granted at once is returned processed (not scheduled: the
        caller goes on without waiting for it)."""
        env = self._env
        request = Request.__new__(Request)
        simpy.Event.__init__(request, env)
        request.resource = self
        request.proc = env.active_process
        queue = self.put_queue
        if not queue and len(self.users) < self._capacity:
            self.users.append(request)
            request.usage_since = env._now
            return _as_processed(request)
        request.callbacks.append(self._trigger_get)
        queue.append(request)
        if len(self.users) < self._capacity:  # BaseResource._trigger_put: the head of the queue only
            head = queue.pop(0)
            self.users.append(head)
            head.usage_since = env._now
            head.succeed()
        return request

    def give(self, request: Request) -> None:
        """The end of ``with self.request() as request:`` for a granted ``request`` (its release).
        With nobody queued it only frees the slot (a request made later finds it free in :meth:`take`)."""
        if self.get_queue:  # (never: every release completes at once) SimPy's own path
            self.release(request)
            return
        if not self.put_queue:
            self.users.remove(request)
            return
        env = self._env
        release = Release.__new__(Release)
        simpy.Event.__init__(release, env)
        release.request = request
        release.resource = self
        release.proc = env.active_process
        release.callbacks.append(self._trigger_put)
        if request in self.users:  # Resource._do_get
            self.users.remove(request)
        release.succeed()


class _Machine:
    def __init__(self, plan: Plan, *, coalesce: bool) -> None:
        self.plan = plan
        self.arch = plan.arch
        commands = plan.commands
        self.table = program_table(self.arch, commands, tuple(m.layer for m in plan.layers))
        n = len(commands)
        self.env = simpy.Environment()
        # Each command's completion event, made when something first waits for it or it completes (None
        # before: not complete, nobody waiting); commands recorded by coalescing share one processed event.
        self.done: list[simpy.Event | None] = [None] * n
        self.completed = _processed_event(self.env)
        self.deps = [c.deps for c in commands]
        # per-command figures in machine-word arrays (8 bytes a command, not a Python int object each)
        self.cycles = array("q", self.table.command_cycles.astype(np.int64).tobytes())
        kind = self.table.kind.tolist()
        self.kind = kind
        self.is_move = [k == 2 for k in kind]
        self.start = np.full(n, -1, dtype=np.int64)
        self.end_at = np.zeros(n, dtype=np.int64)
        self.stall = np.zeros(n, dtype=np.int64)
        self.stall_on = np.zeros(n, dtype=np.int8)
        self.coalesced = np.zeros(n, dtype=bool)
        self.log = array("q")  # ids in the order they finished
        queues = self.table.queue
        self.cursors = [_Cursor(np.flatnonzero(queues == q).tolist(), q) for q in range(len(QUEUES))]
        channels = self.arch.dma.channels
        feedable = int(self.arch.dram.bandwidth_bytes_per_cycle // self.arch.dma.bandwidth_bytes_per_cycle)
        # Transfers at full rate at once: the DMA channels, or fewer when DRAM cannot feed them all.
        self.dram = _Slots(self.env, capacity=max(1, min(channels, feedable)))
        # Loads and stores have queues of their own (like Gemmini's load and store controllers), so a
        # store waiting for its compute never holds up the prefetch of the next tile; the channels of a
        # queue take its commands in program order.
        self.procs: list[_Proc] = []
        for _ in range(channels):
            for q in (0, 1):
                p = _Proc(len(self.procs), self.cursors[q])
                self.procs.append(p)
                p.process = self.env.process(self._process(p, True))
        for q in (2, 3):
            p = _Proc(len(self.procs), self.cursors[q])
            self.procs.append(p)
            p.process = self.env.process(self._process(p, False))
        # A host issuing the program (arch.control), only when the design has one; coalescing does not
        # model it (its snapshots would not hold the host's state), so such a design runs one by one.
        self.issued: list[simpy.Event] | None = None
        if self.arch.control.host_issued:
            self.issued = [self.env.event() for _ in commands]
            self.env.process(self._host())
            coalesce = False
        self.anchors: dict[int, _Run] = {}
        self.checks: set[int] = set()  # pending snapshot events (ids)
        self.runs: list[_Run] = []
        if coalesce and n:
            counts = np.fromiter((len(d) for d in self.deps), np.int64, n)
            self.dep_offsets = np.concatenate([[0], np.cumsum(counts)])
            self.dep_flat = np.fromiter(itertools.chain.from_iterable(self.deps), np.int64, int(self.dep_offsets[-1]))
            self.runs = _runs(commands, self.table, self.dep_offsets, self.dep_flat)
            for run in self.runs:
                self._set_anchors(run, commands)
        self.events = 0

    def _set_anchors(self, run: _Run, commands: tuple[Command, ...]) -> None:
        block = range(run.a, run.a + run.period)
        first = next((i for i in block if self.kind[i] == 3), run.a)
        for i in range(first, run.b, run.period):
            self.anchors[i] = run

    def run(self) -> Result:
        env = self.env
        queue = env._queue  # (coalescing moves its entries in place: the same list throughout)
        events = 0
        # simpy.Environment.step, inlined: the same pops, callbacks and failure of an event nobody
        # handled, without a call per event (nothing here stops a run early: no StopSimulation)
        while queue:
            env._now, _, _, event = heappop(queue)
            callbacks, event.callbacks = event.callbacks, None
            for callback in callbacks:
                callback(event)
            if not event._ok and not hasattr(event, "_defused"):
                failure = type(event._value)(*event._value.args)
                failure.__cause__ = event._value
                raise failure
            events += 1
        self.events = events
        unfinished = np.flatnonzero(self.start < 0)
        if len(unfinished):
            raise RuntimeError(f"deadlock: commands {unfinished[:5].tolist()} never ran "
                               "(a dependency cycle in the plan)")
        ids = np.arange(len(self.start), dtype=np.int64)
        order = np.lexsort((ids, self.start))
        timing = Timing(ids[order], self.start[order], self.end_at[order], self.stall[order], self.stall_on[order],
                        self.coalesced[order])
        for field in dataclasses.fields(timing):  # (astuple would freeze deep copies, not the columns)
            getattr(timing, field.name).setflags(write=False)
        total = int(self.end_at.max()) if len(ids) else 0
        if self.runs:
            _log.debug("%s: %d of %d commands coalesced in %d SimPy events", self.plan.graph_name,
                       int(self.coalesced.sum()), len(ids), events)
        result = Result(self.arch, self.plan, total, timing, events)
        result.__dict__["table"] = self.table  # cached_property: the table is already priced
        return result

    # -- the processes --------------------------------------------------------------------------------

    def _last_dependency(self, i: int) -> str:
        deps = self.deps[i]
        if not deps:
            return ""
        last = max(deps, key=self.end_at.__getitem__)
        return KINDS[self.kind[last]]

    def _event(self, i: int) -> simpy.Event:
        event = self.done[i]
        if event is None:
            event = self.done[i] = simpy.Event(self.env)
        return event

    def _processed(self, i: int) -> bool:
        event = self.done[i]
        return event is not None and event.callbacks is None

    def _host(self) -> Generator[simpy.Event, object, None]:
        """The host-issue stage: commands in program order, each after ``issue_cycles``, and only once
        the command ``queue_depth`` places earlier has finished (a full queue)."""
        depth = self.arch.control.queue_depth
        assert self.issued is not None
        for cmd in self.plan.commands:
            cycles = issue_cycles(self.arch, cmd)
            if cycles:
                yield self.env.timeout(cycles)
            if depth and cmd.id >= depth and not self._processed(cmd.id - depth):
                yield self._event(cmd.id - depth)
            self.issued[cmd.id].succeed()

    def _late_start(self, i: int, free_at: int) -> int:
        """Fold overlap lost to late operands (:func:`accel.timing.late_start_cycles`; 0 unless the
        array double-buffers its weights and command ``i`` follows the previous compute)."""
        command = self.plan.commands[i]
        if not getattr(command, "follows", 0):
            return 0
        unit, kind = command.unit, self.plan.commands
        ready = max((self.end_at[d] for d in command.deps if kind[d].unit is not unit), default=0)
        return late_start_cycles(self.arch, command, ready, free_at)

    def _dependencies(self, p: _Proc, i: int) -> simpy.Event | None:
        """The event command ``i`` on ``p`` waits for before it starts (``p`` set to wait for it), or
        ``None`` when its dependencies have all completed. (A plain call, not a generator the process
        delegates to: the process yields what it returns; a generator per command cost more than the
        rest of taking one.)"""
        done = self.done
        waiting = tuple([d for d in self.deps[i] if done[d] is None or done[d].callbacks is not None])
        if not waiting:
            return None
        p.phase = _DEPS
        p.wait_ids = waiting
        p.wait = self._event(waiting[0]) if len(waiting) == 1 else _AllDone(self.env, [self._event(d) for d in waiting])
        return p.wait

    def _start(self, p: _Proc, i: int, began: int, cause: str | None, extra: int = 0) -> simpy.Event:
        """Start command ``i`` on ``p``'s unit and return the timeout that ends it (the process yields
        it, then calls :meth:`_finish`); a start after ``began`` is a stall on ``cause`` (``None``:
        on the command's last dependency to finish, :meth:`_last_dependency`, looked up only when it
        stalled: its dependencies have all finished before it starts, so their finish times are final)."""
        env = self.env
        now = env._now
        p.phase = _EXEC
        p.since = now
        p.began = began
        p.cause = cause
        cycles = self.cycles[i] + extra
        p.end = now + cycles
        # env.timeout(cycles), without the bound class and the checks (cycles are never negative)
        p.timeout = timeout = Timeout.__new__(Timeout)
        timeout.env, timeout.callbacks, timeout._value, timeout._delay, timeout._ok = env, [], None, cycles, True
        heappush(env._queue, (now + cycles, NORMAL, next(env._eid), timeout))
        if i in self.anchors:
            self._schedule_check(self.anchors[i], i)
        return timeout

    def _finish(self, p: _Proc) -> None:
        """Record the end of ``p``'s command (now) and complete its event."""
        i = p.cmd  # coalescing may have moved this process on
        now = self.env._now
        self.start[i] = p.since
        self.end_at[i] = now
        if p.since > p.began:
            self.stall[i] = p.since - p.began
            self.stall_on[i] = _CAUSE[self._last_dependency(i) if p.cause is None else p.cause]
        self.log.append(i)
        event = self.done[i]
        if event is None:  # nobody waits: done at once (a command that looks later sees it complete)
            self.done[i] = self.completed
        else:
            event.succeed()
        p.free_at = now
        p.phase = 0

    def _process(self, p: _Proc, dma: bool) -> Generator[simpy.Event, object, None]:
        """``p``'s SimPy process: its queue's commands in order, each after its issue (a host-issued
        design) and its dependencies; a DMA channel's (``dma``) Load or Store then waits for a DRAM
        slot, any other command starts at once (an array's or vector's after its late-start cycles).
        One loop of plain calls for every unit: a sub-generator per command cost more than the rest
        of taking one (the hot path of every simulation)."""
        cursor = p.cursor
        ids = cursor.ids
        env = self.env
        issued = self.issued
        take, give = self.dram.take, self.dram.give
        while cursor.pos < len(ids):
            i = ids[cursor.pos]
            cursor.pos += 1
            p.cmd = i
            if issued is not None and not issued[i].processed:
                p.phase = _DEPS
                yield issued[i]
            wait = self._dependencies(p, i)
            if wait is not None:
                yield wait
                p.wait = None
            i = p.cmd
            began = env.now if p.free_at is None else p.free_at
            if dma and not self.is_move[i]:  # a transfer to or from DRAM: a slot first
                p.ready = env.now
                slot = take()
                p.phase = _DRAM
                p.began = began
                p.cause = None
                p.request = slot
                if slot.callbacks is not None:  # not granted at once
                    yield slot
                i = p.cmd
                if env.now > p.ready:
                    p.cause = "dram"
                yield self._start(p, i, p.began, p.cause)
                self._finish(p)
                give(slot)
                p.request = None
            else:  # on chip (a DMA channel's Move: no DRAM slot)
                late = 0 if dma or p.free_at is None else self._late_start(i, p.free_at)
                yield self._start(p, i, began, None, late)
                self._finish(p)
        p.phase = _DONE

    # -- coalescing -----------------------------------------------------------------------------------

    def _schedule_check(self, run: _Run, anchor: int) -> None:
        if run.finished:
            return
        check = self.env.timeout(0)
        self.checks.add(id(check))
        check.callbacks.append(lambda event: self._check(run, anchor, event))

    def _check(self, run: _Run, anchor: int, event: simpy.Event) -> None:
        env = self.env
        self.checks.discard(id(event))
        now = env.now
        # other events of this cycle first (other runs' checks do nothing to the machine: not those)
        if any(when <= now and id(other) not in self.checks for when, _, _, other in env._queue):
            self._schedule_check(run, anchor)
            return
        run.attempts += 1
        if run.attempts > _ATTEMPTS:
            run.finished = True
            return
        snap = self._snapshot(run, anchor)
        if snap is None:
            run.history.clear()
            return
        key, info = snap
        for previous_key, previous in reversed(run.history):
            if previous_key == key:
                if self._coalesce(run, previous, info):
                    run.finished = True
                    run.history.clear()
                    return
                break
        run.history.append((key, info))
        del run.history[:-_HISTORY]

    def _snapshot(self, run: _Run, anchor: int) -> tuple[tuple, tuple] | None:
        """The machine's state relative to ``anchor`` and now (see the module docstring), or ``None``
        when it holds something coalescing cannot move."""
        env = self.env
        now = env.now
        a, b = run.a, run.b
        referenced: list[int] = []
        parked = len(self.done)  # the first command a parked process waits for

        def ref(x: int) -> object:
            if a <= x < b:
                referenced.append(x)
                return x - anchor
            if x < a:
                raise _Reject
            return ("after", x)

        try:
            processes = []
            for p in self.procs:
                if p.phase == _DONE:
                    processes.append(_DONE)
                    continue
                if a <= p.cmd < b:
                    free = None if p.free_at is None else p.free_at - now
                    if p.phase == _EXEC:
                        processes.append((_EXEC, ref(p.cmd), p.since - now, p.end - now, free, p.began - now))
                    elif p.phase == _DRAM:
                        processes.append((_DRAM, ref(p.cmd), p.ready - now, free, p.began - now))
                    elif p.phase == _DEPS:
                        count = getattr(p.wait, "_count", -1)
                        processes.append((_DEPS, ref(p.cmd), free, tuple(ref(d) for d in p.wait_ids), count))
                    else:
                        raise _Reject
                elif p.phase == _DEPS and p.cmd >= b:
                    # Parked: waits for commands that complete only after the coalesced stretch (checked there).
                    waiting = tuple(d for d in p.wait_ids if not self._processed(d))
                    if not waiting or min(waiting) < a:
                        raise _Reject
                    parked = min(parked, min(waiting))
                    processes.append((_DEPS, p.cmd, p.free_at, waiting))
                else:
                    raise _Reject
            cursors = tuple(ref(c.ids[c.pos]) if c.pos < len(c.ids) else "end" for c in self.cursors)
            owner = {id(p.request): p.index for p in self.procs if p.request is not None}
            dram = (tuple(owner[id(r)] for r in self.dram.users), tuple(owner[id(r)] for r in self.dram.queue))
            timeouts = {id(p.timeout): p for p in self.procs if p.phase == _EXEC}
            heap = []
            for when, priority, _eid, event in sorted(env._queue):
                if id(event) in self.checks:
                    continue
                p = timeouts.get(id(event))
                if p is None or not a <= p.cmd < b:
                    raise _Reject
                heap.append((when - now, priority, p.index))
        except (_Reject, KeyError):
            return None
        if not referenced:
            return None
        low, high = min(referenced) - run.reach, max(referenced) + 1
        if high - low > _MAX_WINDOW:
            return None
        waiter = {}
        for p in self.procs:
            if p.process is not None:
                waiter[id(p.process)] = p.index
            if p.wait is not None:
                waiter[id(p.wait)] = p.index
        flags = []
        done = self.done
        for x in range(max(low, 0), high):
            event = done[x]
            if event is None:
                flags.append(())
            elif event.callbacks is None:
                flags.append(True)
            else:
                try:
                    flags.append(tuple(waiter[id(cb.__self__)] for cb in event.callbacks))
                except (KeyError, AttributeError):
                    return None
        key = (tuple(processes), cursors, dram, tuple(heap), low - anchor, tuple(flags))
        info = (now, anchor, low, high, len(self.log), parked)
        return key, info

    def _last_dependency_codes(self, ids: np.ndarray) -> np.ndarray:
        """:meth:`_last_dependency` of every command in ``ids`` (each with dependencies), as cause codes."""
        starts, ends = self.dep_offsets[ids], self.dep_offsets[ids + 1]
        lengths = ends - starts
        first = np.cumsum(lengths) - lengths
        entry = np.arange(int(lengths.sum()), dtype=np.int64) - np.repeat(first, lengths) + np.repeat(starts, lengths)
        deps = self.dep_flat[entry]
        finish = self.end_at[deps]
        latest = np.maximum.reduceat(finish, first)
        segment = np.repeat(np.arange(len(ids)), lengths)
        hits = np.flatnonzero(finish == latest[segment])
        # the first dependency finishing last, as max(): segments ascend, so a command's first hit is
        # where its segment changes
        of = segment[hits]
        first_hit = hits[np.flatnonzero(np.concatenate([[True], of[1:] != of[:-1]]))]
        return (self.table.kind[deps[first_hit]] + 1).astype(np.int8)

    def _coalesce(self, run: _Run, before: tuple, now_info: tuple) -> bool:
        """Record the next ``K`` periods at once and move the state on (see the module docstring)."""
        env = self.env
        t0, anchor0, _low0, _high0, log0, _parked0 = before
        t1, anchor1, low, high, log1, parked = now_info
        shift, period = anchor1 - anchor0, t1 - t0
        if shift <= 0 or period <= 0 or shift % run.period:
            return False
        blocks = (min(run.b, parked) - high) // shift
        if blocks < 1:
            return False
        completed = np.frombuffer(self.log[log0:log1], dtype=np.int64)
        if len(completed) != shift or np.count_nonzero(np.bincount((completed - run.a) % shift)) != shift:
            return False
        k = np.arange(1, blocks + 1, dtype=np.int64)
        copies = (completed[None, :] + shift * k[:, None]).ravel()
        # The moved state's completed commands must be exactly these.
        done = self.done
        low = max(low, 0)
        span = high + blocks * shift - low
        processed_now = np.zeros(span, dtype=bool)
        processed_now[: high - low] = [self._processed(x) for x in range(low, high)]
        processed_new = np.ones(span, dtype=bool)
        moved = blocks * shift
        processed_new[moved:] = processed_now[: span - moved]
        expected = np.flatnonzero(processed_new & ~processed_now) + low
        if len(expected) != len(copies) or not np.array_equal(np.sort(copies), expected):
            return False
        for cursor, per_block in zip(self.cursors, run.per_queue, strict=True):
            if per_block and not (cursor.pos < len(cursor.ids) and run.a <= cursor.ids[cursor.pos] < run.b):
                return False
        # Record: times of the copies are the completed period's, shifted.
        steps = np.repeat(k, len(completed)) * period
        source = np.tile(completed, blocks)
        self.start[copies] = self.start[source] + steps
        self.end_at[copies] = self.end_at[source] + steps
        self.stall[copies] = self.stall[source]
        self.coalesced[copies] = True
        self.stall_on[copies] = self.stall_on[source]
        recompute = copies[(self.stall_on[copies] != 0) & (self.stall_on[copies] != _CAUSE["dram"])]
        if len(recompute):
            self.stall_on[recompute] = self._last_dependency_codes(recompute)
        # Move the state: dependency events not yet complete go up by the shift, the copies are complete.
        pending = [(x, done[x]) for x in range(low, high) if not self._processed(x)]
        completed_event = self.completed
        for x in copies.tolist():
            done[x] = completed_event
        for x, event in pending:
            done[x + moved] = event
        delay = blocks * period
        for p in self.procs:
            if p.phase in (_DONE, 0) or not run.a <= p.cmd < run.b:
                continue
            p.cmd += moved
            p.since += delay
            p.end += delay
            p.ready += delay
            p.began += delay
            if p.free_at is not None:
                p.free_at += delay
            p.wait_ids = tuple(d + moved if run.a <= d < run.b else d for d in p.wait_ids)
            if p.phase == _DRAM or (p.phase == _EXEC and p.cause != "dram"):
                p.cause = self._last_dependency(p.cmd)
        for cursor, per_block in zip(self.cursors, run.per_queue, strict=True):
            cursor.pos += per_block * (moved // run.period)
        env._queue[:] = [(when + delay, priority, eid, event) for when, priority, eid, event in env._queue]
        heapify(env._queue)
        env._now += delay
        self.log.frombytes(copies.astype(np.int64).tobytes())
        _log.debug("coalesced %d commands of %s (%d blocks of %d, period %d cycles)", len(copies),
                   self.plan.commands[run.a].layer, blocks * shift // run.period, run.period, period)
        return True


class _Reject(Exception):
    """A snapshot holds a state that coalescing does not move."""


def _runs(commands: tuple[Command, ...], table: ProgramTable, offsets: np.ndarray, flat: np.ndarray) -> list[_Run]:
    """The runs of each layer (see the module docstring): ranges whose signatures repeat.

    A signature is the command's kind and datasheet cycles and its dependencies in order: inside the
    layer as offsets back from the command, outside it as absolute ids. Candidates are found with a
    64-bit hash of the signature and then checked field by field, so a run is exact.
    """
    runs: list[_Run] = []
    n = len(commands)
    layer = table.layer
    cuts = np.flatnonzero(np.diff(layer)) + 1
    starts = np.concatenate([[0], cuts])
    ends = np.concatenate([cuts, [n]])
    layer_lo = np.repeat(starts, ends - starts)
    counts = np.diff(offsets)
    owner = np.repeat(np.arange(n, dtype=np.int64), counts)
    inside = flat >= layer_lo[owner]
    value = np.where(inside, owner - flat, -1 - flat)  # offset back (>0) inside the layer, else -1 - id
    position = np.arange(len(flat), dtype=np.int64) - np.repeat(offsets[:-1], counts)
    known = np.array([_known_kind(type(f)) for f in table.forms],
                     dtype=bool)[table.form] if n else np.zeros(0, dtype=bool)
    cycles = table.command_cycles
    kind = table.kind.astype(np.int64)
    with np.errstate(over="ignore"):
        mix = np.uint64(0x9E3779B97F4A7C15)
        entry = (value.astype(np.uint64) * mix + position.astype(np.uint64)) * np.uint64(0xBF58476D1CE4E5B9)
        entry ^= entry >> np.uint64(31)
        signature = (cycles.astype(np.uint64) * mix + kind.astype(np.uint64) * np.uint64(0x94D049BB133111EB)
                     + counts.astype(np.uint64))
        np.add.at(signature, owner, entry)
    signature = signature.view(np.int64).copy()
    unknown = np.flatnonzero(~known)
    signature[unknown] = -1 - unknown  # never equal to anything: commands the coalescer does not know
    reach_of = np.zeros(n, dtype=np.int64)
    np.maximum.at(reach_of, owner[inside], value[inside])
    queue = table.queue
    for lo, hi in zip(starts.tolist(), ends.tolist(), strict=True):
        if hi - lo < 2 * _MIN_BLOCKS:
            continue
        sig = signature[lo:hi]
        size = hi - lo
        # Candidate periods: distances from a few commands to the next ones of the same signature
        # (probes at uneven places: a layer of equal rows must not put them all on the rows' first commands)
        # (the first 8 within the longest period a run of this layer can have: the first 8 of each
        # probe's next commands up to _MAX_PERIOD, as far as they are that short; all probes at once)
        probes = np.array([(size * j // 8 + j) % size for j in range(1, 8)], dtype=np.int64)
        reach = np.arange(1, min(_MAX_PERIOD, size // _MIN_BLOCKS) + 1, dtype=np.int64)
        ahead = probes[:, None] + reach[None, :]
        rows, cols = np.nonzero((sig[np.minimum(ahead, size - 1)] == sig[probes][:, None]) & (ahead < size))
        rank = np.arange(len(rows)) - np.searchsorted(rows, rows)  # a match's place among its probe's
        candidates = set(reach[cols[rank < 8]].tolist())
        best: tuple[int, int, np.ndarray, np.ndarray] | None = None  # (coverage, period, starts, ends)
        for period in sorted(candidates):
            if period > size // _MIN_BLOCKS:
                continue
            same = sig[period:] == sig[:-period]
            if np.count_nonzero(same) < (_MIN_BLOCKS - 1) * period:  # no stretch of _MIN_BLOCKS blocks
                continue
            edges = np.diff(np.concatenate([[0], same.view(np.int8), [0]]))
            first, last = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
            lengths = (last - first + period) // period * period
            keep = lengths >= _MIN_BLOCKS * period
            coverage = int(lengths[keep].sum())
            if coverage and (best is None or coverage > best[0]):
                best = (coverage, period, first[keep], first[keep] + lengths[keep])
        if best is None:
            continue
        _, period, run_starts, run_ends = best
        previous_end = lo
        for start, end in zip(run_starts.tolist(), run_ends.tolist(), strict=True):
            a, b = max(lo + start, previous_end), lo + end
            b -= (b - a) % period
            if b - a < _MIN_BLOCKS * period or not _repeats(a, b, period, kind, cycles, counts, offsets, value,
                                                              flat, inside):
                continue
            previous_end = b
            per_queue = tuple(int(np.count_nonzero(queue[a:a + period] == q)) for q in range(len(QUEUES)))
            runs.append(_Run(a, b, period, int(reach_of[a:b].max()), per_queue))
    return runs


def _repeats(a: int, b: int, period: int, kind: np.ndarray, cycles: np.ndarray, counts: np.ndarray,
             offsets: np.ndarray, value: np.ndarray, flat: np.ndarray, inside: np.ndarray) -> bool:
    """Whether commands ``[a + period, b)`` have the signatures of ``[a, b - period)`` exactly."""
    later, earlier = slice(a + period, b), slice(a, b - period)
    if not (np.array_equal(kind[later], kind[earlier]) and np.array_equal(cycles[later], cycles[earlier])
            and np.array_equal(counts[later], counts[earlier])):
        return False
    e_later = slice(offsets[a + period], offsets[b])
    e_earlier = slice(offsets[a], offsets[b - period])
    return bool(np.array_equal(inside[e_later], inside[e_earlier]) and np.array_equal(value[e_later], value[e_earlier]))

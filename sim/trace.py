"""Chrome / Perfetto trace-event JSON of a simulated run: one track per unit, one slice per command.

:func:`to_perfetto` returns the JSON object format of the Trace Event Format
(``{"traceEvents": [...], "displayTimeUnit": "ns", "otherData": {...}}``) that ui.perfetto.dev and
chrome://tracing open; :func:`write_perfetto` writes it to a file atomically (a temporary file in the
same folder, then a rename), so a reader never sees half a trace.

Layout: one process (``pid`` 1) named after the accelerator and the workload; one thread (track) per
unit: ``DMA 0`` ... ``DMA n-1`` (one per DMA channel), ``array`` and ``vector``, named by ``"M"``
(metadata) events and kept in that order by ``thread_sort_index``. Every executed command is one
complete (``"X"``) event on its unit's track, named ``"<Kind> <layer>"`` (``"Compute conv1"``), with
``args`` holding the command id, layer, start and end cycle, its dynamic energy in pJ and what it
moves or computes (``size_bytes`` and ``tensor`` for DMA, ``macs`` and the tile for the array,
``elements`` for the vector unit), and ``"coalesced": true`` for a command the simulator recorded
as part of a coalesced run (its times are exact; ``otherData`` says how many and what that means).
The trace records only that a DMA command ran, not on which channel; commands are put on the
lowest-numbered channel free at their start, which never needs more tracks than there are channels.

Time: the Trace Event Format counts in microseconds, so ``ts = start_cycle / clock_hz * 1e6``,
rounded to whole nanoseconds; ``dur`` is the rounded end minus the rounded start, so commands that
follow each other on a track never overlap. With ``power_window_cycles``, counter (``"C"``) events
named ``power`` add the average power in W of each window of that many cycles
(:meth:`sim.power.EnergyReport.timeline`) as a counter track of the process.
"""

from __future__ import annotations

import heapq
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from accel.commands import Command, Compute, Load, Move, Store, Unit, Vector
from sim.power import energy

if TYPE_CHECKING:
    from sim.engine import Result, TraceEvent

__all__ = ["to_perfetto", "write_perfetto"]

_log = logging.getLogger(__name__)

_PID = 1
_COALESCING_NOTE = ("commands with args.coalesced were recorded by the simulator's coalescing (one step for a "
                    "steady run of identical blocks, exactly as simulated one by one; sim.engine), not one by one")


def to_perfetto(result: Result, *, power_window_cycles: int | None = None) -> dict[str, Any]:
    """The trace-event JSON object of ``result`` (see the module docstring for its layout)."""
    arch = result.arch
    channels = _dma_channels(result.trace, arch.dma.channels)
    dma_tracks = max(arch.dma.channels, max(channels.values(), default=-1) + 1)
    tid = {Unit.ARRAY.value: dma_tracks + 1, Unit.VECTOR.value: dma_tracks + 2}
    track_names = {1 + c: f"DMA {c}" for c in range(dma_tracks)} | {
        tid[Unit.ARRAY.value]: "array", tid[Unit.VECTOR.value]: "vector"}

    def ns(cycle: int) -> int:
        return round(cycle * 1e9 / arch.clock_hz)

    events: list[dict[str, Any]] = [
        {"ph": "M", "name": "process_name", "pid": _PID, "tid": 0, "ts": 0,
         "args": {"name": f"{arch.name}: {result.plan.graph_name}"}},
    ]
    for order, (thread, name) in enumerate(sorted(track_names.items())):
        events.append({"ph": "M", "name": "thread_name", "pid": _PID, "tid": thread, "ts": 0, "args": {"name": name}})
        events.append({"ph": "M", "name": "thread_sort_index", "pid": _PID, "tid": thread, "ts": 0,
                       "args": {"sort_index": order}})

    commands = result.plan.commands
    coalesced = result.timing.coalesced.tolist()
    energies = result.energy.command_energy_pj.tolist()  # per event, in trace order
    for event, grouped, energy_pj in zip(result.trace, coalesced, energies, strict=True):
        command = commands[event.command]
        thread = 1 + channels[event.command] if event.unit == Unit.DMA.value else tid[event.unit]
        start_ns, end_ns = ns(event.start), ns(event.end)
        args = {"command": command.id, "layer": command.layer, "start_cycle": event.start, "end_cycle": event.end,
                "energy_pj": energy_pj, **_details(command)}
        if grouped:
            args["coalesced"] = True
        events.append({
            "ph": "X", "name": f"{event.kind} {event.layer}", "cat": event.unit, "pid": _PID, "tid": thread,
            "ts": start_ns / 1000, "dur": (end_ns - start_ns) / 1000, "args": args,
        })

    if power_window_cycles is not None:
        timeline = energy(result).timeline(power_window_cycles)
        for row in timeline.itertuples(index=False):
            events.append({"ph": "C", "name": "power", "pid": _PID, "tid": 0, "ts": ns(row.start_cycle) / 1000,
                           "args": {"W": row.power_w}})
        events.append({"ph": "C", "name": "power", "pid": _PID, "tid": 0, "ts": ns(result.total_cycles) / 1000,
                       "args": {"W": 0.0}})

    return {
        "traceEvents": events,
        "displayTimeUnit": "ns",
        "otherData": {"arch": arch.name, "workload": result.plan.graph_name, "clock_hz": arch.clock_hz,
                      "total_cycles": result.total_cycles, "coalesced_commands": result.coalesced_commands,
                      "coalescing": _COALESCING_NOTE},
    }


def write_perfetto(result: Result, path: str | Path, *, power_window_cycles: int | None = None) -> Path:
    """Write :func:`to_perfetto` of ``result`` to ``path`` atomically; returns the path."""
    path = Path(path)
    trace = to_perfetto(result, power_window_cycles=power_window_cycles)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as file:
            json.dump(trace, file, separators=(",", ":"))
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes the file private; give it the usual mode
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    _log.info("wrote %d trace events to %s", len(trace["traceEvents"]), path)
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _dma_channels(trace: tuple[TraceEvent, ...], channels: int) -> dict[int, int]:
    """Command id -> DMA channel: each command on the lowest-numbered channel free at its start."""
    free = list(range(channels))
    heapq.heapify(free)
    busy: list[tuple[int, int]] = []  # (end cycle, channel)
    assigned: dict[int, int] = {}
    opened = channels
    for event in sorted((e for e in trace if e.unit == Unit.DMA.value), key=lambda e: (e.start, e.command)):
        while busy and busy[0][0] <= event.start:
            heapq.heappush(free, heapq.heappop(busy)[1])
        if free:
            channel = heapq.heappop(free)
        else:  # cannot happen for a trace of this simulator; keep every command visible anyway
            channel, opened = opened, opened + 1
        assigned[event.command] = channel
        heapq.heappush(busy, (event.end, channel))
    return assigned


def _details(command: Command) -> dict[str, Any]:
    if isinstance(command, Load | Store):
        return {"tensor": command.tensor, "size_bytes": command.size_bytes, "buffer": command.buffer.value}
    if isinstance(command, Compute):
        return {"macs": command.macs, "m": command.m, "k": command.k, "n": command.n, "batch": command.batch,
                "dataflow": command.dataflow.value}
    if isinstance(command, Vector):
        return {"op": command.op, "elements": command.elements}
    if isinstance(command, Move):
        return {"tensor": command.tensor, "size_bytes": command.size_bytes, "buffer": "accumulator->scratchpad"}
    return {}

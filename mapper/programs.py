"""Each distinct program emitted and proven once per process: the memo between decisions and commands.

Emission (:func:`mapper.emit.emit_program`) is a pure function of the (fused) graph, the parts of a
design it reads (:class:`mapper.emit.OnChip`: the array and the two on-chip memories), the layers'
decisions as far as emission reads them (:func:`decision_key`: schedules, working spaces, chunks; not
the search's estimates) and the residency; :func:`mapper.check.check_plan` is a pure function of the
program, those memories, the graph and the layer order. Designs that differ elsewhere (DRAM or DMA
bandwidth and latency, clock, energy, leakage: what a memory-system sweep varies) and whose searches
choose the same mappings get the same program, so a process emits and checks it once and the
simulator times the one program on each design.

* :func:`prepared` is the graph the mapper works on: the host's float conversions split off
  (:func:`workloads.host.split_host`) and the store path's activations fused (:mod:`mapper.fuse`),
  made once per input graph object and activation path, so one input graph gives one fused graph
  object and the program memo can compare graphs by identity.
* :func:`emitted` returns the memoised commands, or emits them. Plans with residents (an
  allocation) are always emitted afresh. A new program whose decisions begin as a memoised one's
  (a sweep's designs that choose alike but for a few layers) resumes from that one's emitter state
  before the first layer that differs (kept every :data:`CHECKPOINT_LAYERS` layers,
  :class:`mapper.emit.Checkpoint`): emission up to a layer is a function of the decisions before it,
  so the commands are the ones emitting it afresh gives (``tests/test_programs.py`` checks it).
  At most :data:`COMMANDS` commands are kept, the least recently used program dropped first; a
  larger program is not kept.
* :func:`checked` proves a plan valid unless the same program (the same object, from
  :func:`emitted`) was proven for the same on-chip memories; plans with an allocation are always
  checked.

Every memo holds its keys' objects (so an ``id`` is never reused while it is a key);
:func:`mapper.search.clear_caches` empties them with the search's.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Hashable, Mapping, Sequence

from accel.commands import Command
from accel.hardware import Accelerator
from mapper.check import check_plan
from mapper.decide import ArrayDecision, LayerDecision
from mapper.emit import Checkpoint, OnChip, emit_program, emit_resumable
from mapper.fuse import fuse_activations
from mapper.layout import PackedTile
from mapper.plan import Plan
from mapper.residency import Residency
from workloads.graph import Graph
from workloads.host import split_host

__all__ = ["COMMANDS", "prepared", "emitted", "checked", "decision_key", "clear"]

#: The most commands the program memo keeps, over all its programs.
COMMANDS = 200_000
#: A memoised program keeps the emitter's state before every this many layers (:class:`mapper.emit.Checkpoint`).
CHECKPOINT_LAYERS = 8
_GRAPHS = 8  # input graphs whose prepared form is kept

Program = tuple[tuple[Command, ...], dict[str, tuple[PackedTile, ...]]]

_prepared: OrderedDict[tuple[int, Hashable], tuple[Graph, Graph]] = OrderedDict()
_programs: OrderedDict[tuple[int, OnChip, tuple], tuple[Graph, Program, tuple[Checkpoint, ...]]] = OrderedDict()
_checked: OrderedDict[int, tuple[tuple[Command, ...], Graph, tuple[int, int]]] = OrderedDict()


def prepared(graph: Graph, arch: Accelerator) -> Graph:
    """``graph`` as the mapper maps it on ``arch``: host conversions split off, activations fused."""
    key = (id(graph), arch.activation)
    hit = _prepared.get(key)
    if hit is not None and hit[0] is graph:
        _prepared.move_to_end(key)
        return hit[1]
    device = fuse_activations(split_host(graph).device, arch)
    _prepared[key] = (graph, device)
    while len(_prepared) > _GRAPHS:
        _prepared.popitem(last=False)
    return device


def decision_key(decision: LayerDecision) -> tuple:
    """What emission reads of ``decision``: every field but the layer (the graph's, compared with
    it) and the mapping's estimates; of an array layer's choice its loop order, dataflow and plan
    (not the search's cost), and the tile count its schedule must give."""
    parts: list[object] = [type(decision).__name__, decision.layer.name]
    for f in dataclasses.fields(decision):
        if f.name in ("layer", "mapping"):
            continue
        value = getattr(decision, f.name)
        if f.name == "choice":
            value = (value.order, value.dataflow, value.plan)
        elif isinstance(value, Mapping):
            value = tuple(value.items())
        parts.append(value)
    if isinstance(decision, ArrayDecision):
        parts.append(decision.mapping.tiles)
    return tuple(parts)


def emitted(graph: Graph, arch: Accelerator, decisions: Sequence[LayerDecision],
            residency: Residency | None) -> Program:
    """:func:`mapper.emit.emit_program` of these arguments, memoised as the module docstring says."""
    if residency is not None:
        return emit_program(graph, arch, decisions, residency)
    on_chip = OnChip.of(arch)
    keys = tuple(decision_key(d) for d in decisions)
    key = (id(graph), on_chip, keys)
    hit = _programs.get(key)
    if hit is not None and hit[0] is graph:
        _programs.move_to_end(key)
        return hit[1]
    start, kept = _resumption(graph, on_chip, keys)
    commands, packed, checkpoints = emit_resumable(graph, arch, decisions, start=start, every=CHECKPOINT_LAYERS)
    program = (commands, packed)
    if len(commands) <= COMMANDS:
        _programs[key] = (graph, program, (*kept, *checkpoints))
        while sum(len(p[0]) for _, p, _ in _programs.values()) > COMMANDS:
            _programs.popitem(last=False)
    return program


def _resumption(graph: Graph, on_chip: OnChip, keys: tuple) -> tuple[tuple[Sequence[Command], Checkpoint] | None,
                                                                     tuple[Checkpoint, ...]]:
    """Where a new program of decisions ``keys`` resumes (:func:`mapper.emit.emit_resumable`): the
    latest checkpoint of a memoised program of the same graph and on-chip design before the first
    layer whose decision emits otherwise, with that program's commands; and that program's
    checkpoints up to it (the new one's too). ``(None, ())`` when none is past the first layer."""
    best: tuple[int, tuple[Command, ...], tuple[Checkpoint, ...]] | None = None
    for (graph_id, chip, other), (g, program, checkpoints) in reversed(_programs.items()):
        if graph_id != id(graph) or g is not graph or chip != on_chip or len(other) != len(keys):
            continue
        same = next((i for i, (a, b) in enumerate(zip(keys, other, strict=True)) if a != b), len(keys))
        usable = [c for c in checkpoints if c.step <= same]
        if usable and (best is None or usable[-1].step > best[0]):
            best = (usable[-1].step, program[0], tuple(usable))
    if best is None:
        return None, ()
    _, commands, usable = best
    return (commands, usable[-1]), usable


def checked(plan: Plan) -> None:
    """:func:`mapper.check.check_plan`, skipped for a program proven before on the same memories."""
    memories = (plan.arch.scratchpad.size_bytes, plan.arch.accumulator.size_bytes)
    key = id(plan.commands)
    hit = _checked.get(key)
    if plan.allocation is None and hit is not None and hit[0] is plan.commands and hit[1] is plan.graph \
            and hit[2] == memories:
        return
    check_plan(plan)
    if plan.allocation is None and plan.graph is not None:
        _checked[key] = (plan.commands, plan.graph, memories)
        while len(_checked) > _GRAPHS:
            _checked.popitem(last=False)


def clear() -> None:
    """Forget every prepared graph, program and proof."""
    _prepared.clear()
    _programs.clear()
    _checked.clear()

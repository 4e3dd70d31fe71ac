"""Prove a plan valid from its command program, without trusting the mapper that made it.

:func:`check_plan` raises :class:`~accel.errors.MappingError` naming the first command, layer or
tensor that breaks one of these:

* **program**: command ids are their positions and every dependency names an earlier command;
* **schedule**: the layers run in an order in which every producer comes before its consumers;
* **capacity**: every transfer lies inside its on-chip buffer; with an allocation, the allocation
  itself is valid (:func:`mapper.memory.check_allocation`: residents fit next to each layer's
  working space and never overlap), every tile transfer of a layer stays in that layer's working
  region, and on-chip moves and reloads land exactly on their tensor's place;
* **overlap**: no tile transfer touches a tensor that is resident at that step;
* **operands**: every compute (array or vector) of a layer reads each of its operands either from
  a load of that tensor earlier in the layer (directly or through the commands it waits for) or
  from the tensor's resident copy, waiting for a command that wrote that copy (directly, or through
  an earlier compute of the layer: one that continues a fold uses the stationary operand the fold's
  first compute brought into the array); a layer never
  reads from DRAM a tensor that is resident at its step, except to reload it whole;
* **dependencies**: every DRAM read of an activation waits for the latest store of that tensor
  (or a view of it) before it, and no DRAM read comes before the tensor was stored.
"""

from __future__ import annotations

from collections import defaultdict

from accel.commands import Buffer, Compute, Load, Move, Store, Vector
from accel.errors import MappingError
from mapper.lifetimes import view_roots
from mapper.memory import check_allocation
from mapper.plan import Plan
from mapper.residency import Residency
from workloads.graph import Layer

__all__ = ["check_plan"]


def check_plan(plan: Plan) -> None:
    """Raise :class:`MappingError` on the first violation (see the module docstring)."""
    commands = plan.commands
    for i, cmd in enumerate(commands):
        if cmd.id != i:
            raise MappingError(f"Command {i} has id {cmd.id}; ids must be program positions")
        bad = [d for d in cmd.deps if not 0 <= d < i]
        if bad:
            raise MappingError(f"Command {i} ({type(cmd).__name__}, layer {cmd.layer!r}) waits for {bad[0]}, "
                               f"which is not an earlier command")
    _check_buffers(plan)
    graph = plan.graph
    if graph is None:
        return
    order = [m.layer for m in plan.layers]
    layers = {layer.name: layer for layer in graph.layers}
    if sorted(order) != sorted(layers):
        raise MappingError(f"Plan of {graph.name!r} must map each layer of the graph once")
    _check_schedule(graph, order, layers)
    roots = view_roots(graph)
    step_of = {name: i for i, name in enumerate(order)}
    resident: Residency | _NoResidents = _NoResidents()
    if plan.problem is not None and plan.allocation is not None:
        if tuple(plan.problem.steps) != tuple(order):
            raise MappingError("The plan's allocation was made for another schedule than its layers'")
        check_allocation(plan.problem, plan.allocation)
        resident = Residency(plan.problem, plan.allocation)
    _check_transfers(plan, step_of, roots, resident)
    _check_operands(plan, layers, step_of, roots, resident)
    _check_dram_order(plan, graph, roots)


class _NoResidents:
    """A plan without an allocation: nothing is ever on chip between layers."""

    def place(self, tensor: str, step: int) -> None:
        return None

    def at(self, step: int) -> list[tuple[str, int, int]]:
        return []


def _check_buffers(plan: Plan) -> None:
    sizes = {Buffer.SCRATCHPAD: plan.arch.scratchpad.size_bytes, Buffer.ACCUMULATOR: plan.arch.accumulator.size_bytes}
    for cmd in plan.commands:
        if isinstance(cmd, Load | Store):
            spans = [(cmd.buffer, cmd.addr, cmd.size_bytes)]
        elif isinstance(cmd, Move):
            spans = [(Buffer.SCRATCHPAD, cmd.addr, cmd.size_bytes)]
        else:
            continue
        for buffer, addr, size in spans:
            if addr < 0 or size < 0 or addr + size > sizes[buffer]:
                raise MappingError(f"Command {cmd.id} ({type(cmd).__name__} of {getattr(cmd, 'tensor', '?')!r}, "
                                   f"layer {cmd.layer!r}) uses {buffer.value} bytes [{addr}, {addr + size}), "
                                   f"outside its {sizes[buffer]} B")


def _check_schedule(graph: object, order: list[str], layers: dict[str, Layer]) -> None:
    done: set[str] = set()
    tensors = graph.tensors  # type: ignore[attr-defined]
    for name in order:
        for t in layers[name].inputs:
            producer = tensors[t].producer
            if producer is not None and producer not in done:
                raise MappingError(f"Layer {name!r} runs before {producer!r}, which produces its input {t!r}")
        done.add(name)


def _check_transfers(plan: Plan, step_of: dict[str, int], roots: dict[str, str],
                     resident: Residency | _NoResidents) -> None:
    if plan.allocation is None:
        return
    size = plan.arch.scratchpad.size_bytes
    working = plan.working_bytes or {}
    for cmd in plan.commands:
        if not isinstance(cmd, Load | Store | Move) or (isinstance(cmd, Load | Store)
                                                        and cmd.buffer is not Buffer.SCRATCHPAD):
            continue
        step = step_of[cmd.layer]
        lo, hi = cmd.addr, cmd.addr + cmd.size_bytes
        place = resident.place(cmd.tensor, step)
        if place is not None:  # a reload, a write-back or an on-chip move of a resident tensor
            offset, nbytes = place
            whole = isinstance(cmd, Load | Store)  # reloads and write-backs move all of it
            if (lo, hi) != (offset, offset + nbytes) if whole else not offset <= lo <= hi <= offset + nbytes:
                raise MappingError(f"Command {cmd.id} ({type(cmd).__name__} of {cmd.tensor!r}, layer {cmd.layer!r}) "
                                   f"uses [{lo}, {hi}) but the tensor sits at [{offset}, {offset + nbytes})")
            continue
        if isinstance(cmd, Move):
            raise MappingError(f"Command {cmd.id} moves {cmd.tensor!r} on chip in layer {cmd.layer!r}, "
                               f"where the allocation does not keep it")
        base = size - working.get(cmd.layer, size)
        if lo < base:
            raise MappingError(f"Command {cmd.id} ({type(cmd).__name__} of {cmd.tensor!r}, layer {cmd.layer!r}) "
                               f"uses [{lo}, {hi}), below the layer's working region [{base}, {size})")
        for name, a, b in resident.at(step):
            if a < hi and lo < b:
                raise MappingError(f"Command {cmd.id} ({type(cmd).__name__} of {cmd.tensor!r}, layer "
                                   f"{cmd.layer!r}) overwrites [{max(a, lo)}, {min(b, hi)}) of {name!r}, which "
                                   f"is resident at that step")


def _operands(layer: Layer, tensors: object) -> list[str]:
    """The tensors every array compute of ``layer`` needs: its activation and its second operand (a
    second activation, else its first constant, the weights), as :func:`mapper.decide.operands` reads them."""
    acts = [t for t in layer.inputs if not tensors[t].is_constant]  # type: ignore[index]
    consts = [t for t in layer.inputs if tensors[t].is_constant]  # type: ignore[index]
    return acts[:2] if len(acts) > 1 else acts + consts[:1]


def _check_operands(plan: Plan, layers: dict[str, Layer], step_of: dict[str, int], roots: dict[str, str],
                    resident: Residency | _NoResidents) -> None:
    graph = plan.graph
    assert graph is not None
    by_layer: dict[str, list[int]] = defaultdict(list)
    for cmd in plan.commands:
        by_layer[cmd.layer].append(cmd.id)
    writers: dict[str, set[int]] = defaultdict(set)  # resident buffer -> commands that wrote its on-chip copy
    for cmd in plan.commands:
        if isinstance(cmd, Move) or (isinstance(cmd, Load) and cmd.buffer is Buffer.SCRATCHPAD
                                     and resident.place(cmd.tensor, step_of[cmd.layer]) is not None):
            writers[roots.get(cmd.tensor, cmd.tensor)].add(cmd.id)
        elif isinstance(cmd, Vector):
            step = step_of[cmd.layer]
            for out in layers[cmd.layer].outputs:
                if resident.place(out, step) is not None:
                    writers[roots.get(out, out)].add(cmd.id)
    for name in (m.layer for m in plan.layers):
        layer, step = layers[name], step_of[name]
        ids = by_layer.get(name, [])
        computes = [i for i in ids if isinstance(plan.commands[i], Compute | Vector)]
        if not computes:
            continue
        vector_layer = isinstance(plan.commands[computes[0]], Vector)
        needed = [t for t in layer.inputs if not graph.tensors[t].is_constant] if vector_layer \
            else _operands(layer, graph.tensors)
        groups = {t: roots.get(t, t) for t in needed}
        seen: dict[int, frozenset[str]] = {}
        for i in ids:
            cmd = plan.commands[i]
            got: set[str] = set()
            for d in cmd.deps:
                got |= seen.get(d, frozenset())
            if isinstance(cmd, Load) and cmd.buffer is Buffer.SCRATCHPAD:
                got.add(roots.get(cmd.tensor, cmd.tensor))
            seen[i] = frozenset(got)
        for t in needed:
            root = groups[t]
            place = resident.place(t, step)
            # compute -> it waits for a writer of root, directly or through an earlier compute of the layer
            waited: dict[int, bool] = {}
            if place is not None:
                for i in computes:
                    waited[i] = any(d in writers[root] or waited.get(d, False) for d in plan.commands[i].deps)
            for i in computes:
                if place is not None:
                    if not waited[i]:
                        raise MappingError(f"Command {i} (layer {name!r}) reads {t!r} from its resident copy "
                                           f"without waiting for a command that wrote it")
                elif root not in seen[i]:
                    raise MappingError(f"Command {i} (layer {name!r}) computes without its operand {t!r}: it "
                                       f"is neither resident nor loaded before it in the layer")
        if place_any := [t for t in needed if resident.place(t, step) is not None]:
            for i in ids:
                cmd = plan.commands[i]
                if isinstance(cmd, Load) and cmd.buffer is Buffer.SCRATCHPAD and any(
                        roots.get(cmd.tensor, cmd.tensor) == groups[t] for t in place_any) \
                        and i not in writers[roots.get(cmd.tensor, cmd.tensor)]:
                    raise MappingError(f"Command {i} (layer {name!r}) reads {cmd.tensor!r} from DRAM, but it is "
                                       f"resident at that step")


def _check_dram_order(plan: Plan, graph: object, roots: dict[str, str]) -> None:
    tensors = graph.tensors  # type: ignore[attr-defined]
    last_store: dict[str, int] = {}
    stores: dict[str, set[int]] = defaultdict(set)
    for cmd in plan.commands:
        if isinstance(cmd, Store):
            root = roots.get(cmd.tensor, cmd.tensor)
            last_store[root] = cmd.id
            stores[root].add(cmd.id)
        elif isinstance(cmd, Load):
            root = roots.get(cmd.tensor, cmd.tensor)
            if tensors[root].producer is None:
                continue  # graph inputs and weights are in DRAM from the start
            if root not in last_store:
                raise MappingError(f"Command {cmd.id} (layer {cmd.layer!r}) reads {cmd.tensor!r} from DRAM before "
                                   f"any command stored it there")
            if cmd.buffer is Buffer.ACCUMULATOR:  # a partial-sum reload waits for its own spill
                if not stores[root] & set(cmd.deps):
                    raise MappingError(f"Command {cmd.id} (layer {cmd.layer!r}) reloads partial sums of "
                                       f"{cmd.tensor!r} without waiting for their store")
            elif last_store[root] not in cmd.deps:
                raise MappingError(f"Command {cmd.id} (layer {cmd.layer!r}) reads {cmd.tensor!r} from DRAM without "
                                   f"waiting for its latest store (command {last_store[root]})")

"""Baseline lowering: each layer to tiles that fit the on-chip memories, as a command program.

This is the simple, always-valid lowering (no ILP): every layer reads its inputs from DRAM and
writes its outputs back (SCALE-Sim style), with double buffering so the loads of tile ``i + 1``
overlap the compute of tile ``i``. Half of the scratchpad holds one tile's operands while the other
half is being filled; the accumulator is split the same way for outputs.

Array layers (conv, GEMM, matmul) run in one of two loop orders (:class:`LoopOrder`):

``tile-outer``
    output tiles ``b x m x n`` outermost, the reduction ``k`` innermost, accumulating in the
    accumulator memory. Every tile pays its folds' full fill and drain. Among the tile sizes that
    fit, the one with the least DRAM traffic is taken.
``fold-outer``
    SCALE-Sim's order: the stationary operand is folded onto the array one ``R x C`` fold at a time
    and the streamed operand flows through in chunks that fit the scratchpad; a fold pays its fill
    once (first chunk) and its drain once (last chunk), so a layer's compute cycles are exactly
    ``folds x (fill + stream + drain)`` however its stream is chunked. When a weight- or
    input-stationary layer's partial sums do not fit the accumulator, they are stored to DRAM after
    one fold and loaded back for the next (32-bit partial-sum traffic).
``auto``
    per layer, the order whose estimate ``max(array cycles, DMA cycles)`` is lower (ties: less
    DRAM traffic).

Bytes moved for an input tile are its share of the input tensor (``tm/m * tk/k`` of it): exact for
GEMMs and 1x1 convolutions; for larger kernels it counts the unique input footprint rather than the
im2col copy (halos between tiles are not counted twice). Outputs are written once in the input
number format (the accumulator's read path requantizes). Vector layers run in chunks that fit half
of the scratchpad. Depthwise convolutions run on the array or on the vector unit (:class:`Depthwise`;
``auto`` picks the lower estimate). Concatenations are copies through the vector unit (one element
operation per output element); views (reshape, flatten, transpose, pass-through) cost nothing.

**Resident tensors.** Given a :class:`~mapper.residency.Residency` (a scratchpad allocation over the
schedule ``order``), layer ``i`` tiles inside its working region, the top ``working_bytes[i]`` bytes
of the scratchpad (the allocation keeps residents below it), and: reads an operand that is on chip
from its resident place (no load); writes an output that stays on chip with on-chip
:class:`~accel.commands.Move` commands from the accumulator (array layers) or directly (vector
layers) instead of stores; loads a buffer whose on-chip interval starts here with a read (a reload)
whole into its place before the layer; and stores a buffer written back here whole after the layer.
Any command that writes a scratchpad range waits for every earlier command that used part of it.

Dependencies: a load waits for the store of the tensor it reads (through DRAM) and for the compute
that last used its buffer half; a compute waits for its loads and for the previous compute; a store
waits for the compute that finished its tile; a tile that starts a new accumulator block waits for
the stores that emptied that half.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from fractions import Fraction

from accel.commands import Buffer, Command, Compute, Load, Move, Store, Vector
from accel.errors import MappingError
from accel.hardware import Accelerator, Dataflow
from accel.timing import ceil_div
from mapper.plan import LayerMapping, Plan
from mapper.residency import AddressBook, Residency
from mapper.schedules import Operands, Step, Transfer, share
from mapper.search import INFEASIBLE, Choice, Cost, roofline_cycles, search_gemm, vector_cost
from workloads.graph import GemmShape, Graph, Layer, OpKind

__all__ = ["Depthwise", "LoopOrder", "lower"]


class LoopOrder(Enum):
    AUTO = "auto"
    TILE_OUTER = "tile-outer"
    FOLD_OUTER = "fold-outer"


class Depthwise(Enum):
    """Where depthwise convolutions (one output channel per group) run."""

    AUTO = "auto"  # whichever estimate is lower
    ARRAY = "array"  # as ``groups`` tiny GEMMs on the systolic array
    VECTOR = "vector"  # as multiply-accumulates on the vector unit, one per lane per cycle


def lower(graph: Graph, arch: Accelerator, *, dataflow: Dataflow | None = None,
          loop_order: LoopOrder = LoopOrder.AUTO, depthwise: Depthwise = Depthwise.AUTO,
          order: Sequence[str] | None = None, working_bytes: Mapping[str, int] | None = None,
          residency: Residency | None = None, objective: str = "latency") -> Plan:
    """Lower every layer of ``graph`` onto ``arch``.

    ``dataflow=None`` picks, per layer, the supported dataflow with the lowest estimate; a given
    dataflow is used for every array layer. ``order`` is the schedule (default: the graph's order);
    ``working_bytes`` the scratchpad bytes each layer may tile in (default: all of it);
    ``residency`` the tensors kept on chip between layers (default: none; see the module docstring);
    ``objective`` what the per-layer mapping search minimises (``latency``, ``energy``, ``edp``).
    """
    if dataflow is not None and dataflow not in arch.array.dataflows:
        supported = ", ".join(d.value for d in arch.array.dataflows)
        raise MappingError(f"{arch.name} supports dataflows {supported}, not {dataflow.value}")
    layers = graph.layers if order is None else _ordered(graph, order)
    if residency is not None and tuple(residency.problem.steps) != tuple(layer.name for layer in layers):
        raise MappingError(f"The allocation of {graph.name!r} was made for another schedule than the one lowered")
    builder = _ProgramBuilder(graph, arch, residency, objective)
    mappings = []
    for step, layer in enumerate(layers):
        budget = None if layer.op.is_view else arch.scratchpad.size_bytes if working_bytes is None else \
            working_bytes.get(layer.name, arch.scratchpad.size_bytes)
        builder.begin_layer(step, budget)
        if layer.gemm is not None and _is_depthwise(layer) and depthwise is not Depthwise.ARRAY and (
                depthwise is Depthwise.VECTOR or builder.vector_is_faster(layer, dataflow, loop_order)):
            mappings.append(builder.vector_layer(layer, macs=layer.macs))
        elif layer.gemm is not None:
            mappings.append(builder.gemm_layer(layer, dataflow, loop_order))
        elif layer.op.uses_vector_unit or layer.op is OpKind.CONCAT:
            mappings.append(builder.vector_layer(layer))
        else:
            builder.alias(layer)
            mappings.append(LayerMapping(layer.name, layer.op, 0))
        builder.end_layer()
    return Plan(arch=arch, graph_name=graph.name, layers=tuple(mappings), commands=tuple(builder.commands),
                graph=graph)


def working_space(graph: Graph, arch: Accelerator, *, knee: float, dataflow: Dataflow | None = None,
                  loop_order: LoopOrder = LoopOrder.AUTO, objective: str = "latency") -> dict[str, int]:
    """Per non-view layer, the scratchpad bytes it tiles in when it shares the scratchpad.

    The smallest of ``size, size/2, size/4, ...`` (and not below the layer's minimal working set,
    :func:`mapper.lifetimes.default_reserved_bytes`) whose datasheet estimate (cycles) and DRAM
    traffic are both within ``knee`` (a fraction) of the layer's with the whole scratchpad, in at
    most twice as many tiles (commands cost simulation time and issue slots too).
    """
    from mapper.lifetimes import default_reserved_bytes

    builder = _ProgramBuilder(graph, arch, objective=objective)
    size = arch.scratchpad.size_bytes
    working = {}
    for layer in graph.layers:
        if layer.op.is_view:
            continue
        floor = sum(default_reserved_bytes(layer, graph, arch).values())
        best = builder.layer_estimate(layer, size, dataflow, loop_order)
        budget, candidate = size, size // 2
        while candidate >= max(floor, 2):
            cost = builder.layer_estimate(layer, candidate, dataflow, loop_order)
            if cost.cycles > best.cycles * (1 + knee) or cost.dram_bytes > best.dram_bytes * (1 + knee) \
                    or cost.steps > 2 * max(best.steps, 1):
                break
            budget, candidate = candidate, candidate // 2
        working[layer.name] = max(budget, min(floor, size))
    return working




def _ordered(graph: Graph, order: Sequence[str]) -> tuple[Layer, ...]:
    by_name = {layer.name: layer for layer in graph.layers}
    unknown = [name for name in order if name not in by_name]
    if unknown or len(order) != len(by_name) or len(set(order)) != len(order):
        raise MappingError(f"A schedule of {graph.name!r} must list each of its {len(by_name)} layers once "
                           f"(unknown: {unknown[:3]})")
    return tuple(by_name[name] for name in order)


@dataclass
class _Slot:
    """One half of a double-buffered memory: its base address and the commands that last used it."""

    addr: int
    last_users: list[int] = field(default_factory=list)


class _ProgramBuilder:
    def __init__(self, graph: Graph, arch: Accelerator, residency: Residency | None = None,
                 objective: str = "latency") -> None:
        self.graph = graph
        self.arch = arch
        self.objective = objective
        self.residency = residency
        self.commands: list[Command] = []
        self.in_bytes = arch.array.input_format.size_bytes
        self.w_bytes = arch.array.weight_format.size_bytes
        self.acc_bytes = arch.array.accumulator_format.size_bytes
        self.dram_addr: dict[str, int] = {}
        self.ready: dict[str, int | None] = {}  # tensor -> id of the command that last wrote it to DRAM
        next_addr = 0
        for name, tensor in graph.tensors.items():
            self.dram_addr[name] = next_addr
            next_addr += ceil_div(tensor.elements * max(self.in_bytes, self.acc_bytes), 64) * 64
            self.ready[name] = None
        self.half_spad = arch.scratchpad.size_bytes // 2
        self.half_acc = arch.accumulator.size_bytes // 2
        self.spad_slots = [_Slot(0), _Slot(self.half_spad)]
        self.acc_slots = [_Slot(0), _Slot(self.half_acc)]
        self.spad_turn = itertools.cycle((0, 1))
        self.acc_turn = itertools.cycle((0, 1))
        self.book = AddressBook()  # scratchpad ranges and the commands that last used them
        self.step = 0
        self.onchip: dict[str, list[int]] = {}  # resident buffer -> the commands that wrote its on-chip copy
        self.claims: dict[str, list[int]] = {}  # buffer placed this step -> commands its first writer waits for
        self.users: dict[str, list[int]] = {}  # resident buffer -> commands of this layer that used it
        self.moved: dict[str, int] = {}  # resident buffer -> bytes of it moved on chip so far

    # -- layers in the schedule ------------------------------------------------------------------
    def begin_layer(self, step: int, budget: int | None) -> None:
        """Set up layer ``step``: its working region (the top ``budget`` bytes of the scratchpad;
        ``None``: as the layer before), and the residents placed here (claimed; reloads loaded whole)."""
        size = self.arch.scratchpad.size_bytes
        budget = 2 * self.half_spad if budget is None else budget
        if not 0 < budget <= size:
            raise MappingError(f"Working space of step {step} must be 1..{size} B (the scratchpad), not {budget}")
        self.step = step
        half = budget // 2
        base = size - 2 * half
        if half != self.half_spad or self.spad_slots[0].addr != base:
            self.half_spad = half
            self.spad_slots = [_Slot(lo, self.book.claim(lo, lo + half)) for lo in (base, base + half)]
        self.users = {}
        if self.residency is None:
            return
        for name in self.residency.starting(step):
            offset, nbytes = self.residency.place(name, step)  # type: ignore[misc]
            self.claims[name] = self.book.claim(offset, offset + nbytes)
            self.onchip[name] = []
        for name in self.residency.reloads(step):
            offset, nbytes = self.residency.place(name, step)  # type: ignore[misc]
            load = self._emit(Load, layer=self.graph_layer_name(step), tensor=name, size_bytes=nbytes,
                              buffer=Buffer.SCRATCHPAD, addr=offset, dram_addr=self.dram_addr[name],
                              deps=[self.ready[name], *self.claims.pop(name, [])])
            self.onchip[name] = [load]
            self.users.setdefault(name, []).append(load)

    def end_layer(self) -> None:
        """Store the buffers written back after this step and record who used which addresses."""
        if self.residency is not None:
            for name in self.residency.written_back(self.step):
                offset, nbytes = self.residency.place(name, self.step)  # type: ignore[misc]
                store = self._emit(Store, layer=self.graph_layer_name(self.step), tensor=name, size_bytes=nbytes,
                                   buffer=Buffer.SCRATCHPAD, addr=offset, dram_addr=self.dram_addr[name],
                                   deps=[*self.onchip.get(name, []), *self.users.get(name, [])])
                self.users.setdefault(name, []).append(store)
                self.ready[name] = store
                for alias in self._aliases(name):
                    self.ready[alias] = store
            for name, used in self.users.items():
                offset, nbytes = self.residency.place(name, self.step)  # type: ignore[misc]
                self.book.touch(offset, offset + nbytes, used)
        for slot in self.spad_slots:
            self.book.claim(slot.addr, slot.addr + self.half_spad)
            self.book.touch(slot.addr, slot.addr + self.half_spad, slot.last_users)

    def graph_layer_name(self, step: int) -> str:
        assert self.residency is not None
        return self.residency.problem.steps[step]

    def _aliases(self, root: str) -> tuple[str, ...]:
        assert self.residency is not None
        for t in self.residency.problem.tensors:
            if t.name == root:
                return t.aliases
        return ()

    def _place(self, tensor: str) -> tuple[str, int] | None:
        """``(buffer, offset)`` if ``tensor`` is on chip at the current step."""
        if self.residency is None:
            return None
        place = self.residency.place(tensor, self.step)
        return None if place is None else (self.residency.root(tensor), place[0])

    def _produce_onchip(self, name: str, ident: int) -> None:
        """Record ``ident`` as a writer of resident buffer ``name``'s on-chip copy at this step."""
        self.onchip.setdefault(name, []).append(ident)
        self.users.setdefault(name, []).append(ident)

    # -- command emission ------------------------------------------------------------------------
    def _emit(self, cls: type[Command], deps: object = (), **fields: object) -> int:
        ident = len(self.commands)
        self.commands.append(cls(id=ident, deps=tuple(sorted({d for d in deps if d is not None})), **fields))
        return ident

    def _transfer(self, cls: type[Load] | type[Store], layer: Layer, t: Transfer, addr: int,
                  deps: list[int | None]) -> int:
        return self._emit(cls, layer=layer.name, tensor=t.tensor, size_bytes=t.size_bytes, buffer=t.buffer,
                          addr=addr, dram_addr=self.dram_addr[t.tensor], deps=deps)

    def _emit_steps(self, layer: Layer, steps: Iterator[Step]) -> int:
        """Turn the abstract schedule into commands with addresses and dependencies; count computes."""
        previous: int | None = None
        acc_slot = self.acc_slots[0]
        stored: dict[tuple[int, ...], int] = {}  # partial-sum stores by key
        count = 0
        for step in steps:
            if step.new_block:
                acc_slot = self.acc_slots[next(self.acc_turn)]
            block_free = list(acc_slot.last_users) if step.new_block else []
            streamed = [t for t in step.loads if t.buffer is Buffer.SCRATCHPAD and self._place(t.tensor) is None]
            spad_slot = self.spad_slots[next(self.spad_turn)] if streamed else None
            loads, offset, operand_addr, onchip = [], 0, [], []
            for t in step.loads:
                if t.buffer is Buffer.SCRATCHPAD:
                    place = self._place(t.tensor)
                    if place is not None:  # resident: read in place
                        operand_addr.append(place[1])
                        onchip.append(place[0])
                        continue
                    assert spad_slot is not None
                    deps = [self.ready[t.tensor], *spad_slot.last_users]
                    loads.append(self._transfer(Load, layer, t, spad_slot.addr + offset, deps))
                    operand_addr.append(spad_slot.addr + offset)
                    offset += t.size_bytes
                else:
                    written = stored[t.key] if t.key is not None else self.ready[t.tensor]
                    loads.append(self._transfer(Load, layer, t, acc_slot.addr, [written, *block_free]))
            addr = spad_slot.addr if spad_slot is not None else 0
            in_addr, w_addr = (operand_addr + [addr, addr])[:2]
            resident_deps = [d for name in onchip for d in self.onchip.get(name, [])]
            compute = self._emit(Compute, layer=layer.name, input_addr=in_addr, weight_addr=w_addr,
                                 output_addr=acc_slot.addr, deps=[*loads, previous, *block_free, *resident_deps],
                                 **step.compute)
            for name in onchip:
                self.users.setdefault(name, []).append(compute)
            if spad_slot is not None:
                spad_slot.last_users = [compute]
            stores = []
            for t in step.stores:
                place = self._place(t.tensor) if t.key is None else None
                if place is None:
                    stores.append(self._transfer(Store, layer, t, acc_slot.addr, [compute]))
                    continue
                name, base = place
                nbytes = self.residency.place(name, self.step)[1]  # type: ignore[union-attr,index]
                written = self.moved.get(name, 0)
                at = written if written + t.size_bytes <= nbytes else max(nbytes - t.size_bytes, 0)
                self.moved[name] = written + t.size_bytes
                move = self._emit(Move, layer=layer.name, tensor=name, size_bytes=t.size_bytes,
                                  src_addr=acc_slot.addr, addr=base + at, deps=[compute, *self.claims.pop(name, [])])
                self._produce_onchip(name, move)
                stores.append(move)
            if step.new_block:
                acc_slot.last_users = []
            acc_slot.last_users.extend(stores)
            for t, ident in zip(step.stores, stores, strict=True):
                if t.key is not None:
                    stored[t.key] = ident
                elif not isinstance(self.commands[ident], Move):
                    self.ready[t.tensor] = ident
            previous = compute
            count += 1
        return count

    def layer_estimate(self, layer: Layer, budget: int, dataflow: Dataflow | None, loop_order: LoopOrder) -> Cost:
        """The datasheet estimate of ``layer`` tiled in ``budget`` bytes (infinite when it does not fit)."""
        saved, self.half_spad = self.half_spad, budget // 2
        try:
            if layer.gemm is not None:
                cost = self._choice(layer, dataflow, loop_order).cost
                if _is_depthwise(layer):
                    cost = min(cost, self._vector_cost(layer, layer.macs), key=lambda c: c.key(self.objective))
                return cost
            if layer.op.uses_vector_unit or layer.op is OpKind.CONCAT:
                return self._vector_cost(layer, 0)
            return Cost(0.0, 0.0, 0.0)
        except MappingError:
            return INFEASIBLE
        finally:
            self.half_spad = saved

    def _vector_work(self, layer: Layer, macs: int) -> tuple[list[str], int]:
        """The tensors a vector layer reads (weights too for a depthwise convolution or a concat of
        constants) and its element operations (one per output element for a concat)."""
        inputs = [t for t in layer.inputs if macs or layer.op is OpKind.CONCAT or not self.graph.tensors[t].is_constant]
        return inputs, max(macs or layer.vector_ops or self.graph.tensors[layer.outputs[0]].elements, 1)

    def _vector_cost(self, layer: Layer, macs: int) -> Cost:
        inputs, ops = self._vector_work(layer, macs)
        sizes = [self.graph.tensors[t].elements * self.in_bytes for t in (*inputs, *layer.outputs)]
        return vector_cost(self.arch, ops, sizes, self.half_spad)

    def _choice(self, layer: Layer, dataflow: Dataflow | None, loop_order: LoopOrder) -> Choice:
        dataflows = [dataflow] if dataflow is not None else list(self.arch.array.dataflows)
        orders = {LoopOrder.AUTO: ("tile-outer", "fold-outer"), LoopOrder.TILE_OUTER: ("tile-outer",),
                  LoopOrder.FOLD_OUTER: ("fold-outer",)}[loop_order]
        try:
            return search_gemm(self.arch, tuple((d, self._operands(layer, d)) for d in dataflows),
                               loop_orders=orders, half_spad=self.half_spad, half_acc=self.half_acc,
                               objective=self.objective)
        except MappingError as e:
            raise MappingError(f"Layer {layer.name!r}: {e}") from None

    # -- layers ----------------------------------------------------------------------------------
    def alias(self, layer: Layer) -> None:
        """A view: its outputs are ready when its inputs are."""
        latest = max((self.ready[t] for t in layer.inputs if self.ready[t] is not None), default=None)
        for out in layer.outputs:
            self.ready[out] = latest

    def gemm_layer(self, layer: Layer, dataflow: Dataflow | None, loop_order: LoopOrder) -> LayerMapping:
        """Emit an array layer with the mapping :func:`mapper.search.search_gemm` picks, in
        ``dataflow`` or (``None``) in any the array supports."""
        choice = self._choice(layer, dataflow, loop_order)
        ops = self._operands(layer, choice.dataflow)
        tiles = self._emit_steps(layer, choice.steps(ops, self.arch))
        g = ops.gemm
        compulsory = ops.x_bytes + (ops.w_size(g.batch, g.k, g.n) if ops.w is not None else 0) \
            + g.batch * g.m * g.n * ops.out_bytes
        return LayerMapping(layer.name, layer.op, layer.macs, choice.dataflow, choice.tile, choice.order, tiles,
                            layer.gemm, sparsity=ops.sparsity, estimate_cycles=choice.cost.cycles,
                            estimate_energy_pj=choice.cost.energy_pj,
                            roofline_cycles=roofline_cycles(self.arch, layer.macs, compulsory),
                            candidates=choice.evaluated, pareto=choice.pareto)

    def vector_is_faster(self, layer: Layer, dataflow: Dataflow | None, loop_order: LoopOrder) -> bool:
        """Whether a depthwise layer on the vector unit beats its best array mapping (by the objective)."""
        array = self._choice(layer, dataflow, loop_order).cost
        return self._vector_cost(layer, layer.macs).key(self.objective) < array.key(self.objective)

    def _operands(self, layer: Layer, dataflow: Dataflow) -> Operands:
        gemm = layer.gemm
        assert gemm is not None
        activations = [t for t in layer.inputs if not self.graph.tensors[t].is_constant]
        weights = [t for t in layer.inputs if self.graph.tensors[t].is_constant]
        if not activations:
            raise MappingError(f"Layer {layer.name!r}: a {layer.op.value} layer needs an activation input")
        w = activations[1] if len(activations) > 1 else (weights[0] if weights else None)
        x_bytes = self.graph.tensors[activations[0]].elements * self.in_bytes
        # a strided convolution's input is bigger than its GEMM's m x k: tiles carry their share of it
        x_rate = Fraction(x_bytes, gemm.batch * gemm.m * gemm.k)
        nm = layer.sparsity
        # N:M runs natively on a weight-stationary array that lists the pattern (the sparse PEs hold
        # each group's kept weights and indices); anything else runs the layer dense.
        if nm is None or nm not in self.arch.array.sparsity or w not in weights or dataflow is not Dataflow.WS:
            return Operands(x=activations[0], w=w, out=layer.outputs[0], gemm=gemm, x_bytes=x_bytes,
                             in_bytes=max(Fraction(self.in_bytes), x_rate), w_bytes=Fraction(self.w_bytes),
                             out_bytes=self.in_bytes, acc_bytes=self.acc_bytes)
        compressed = GemmShape(gemm.m, ceil_div(gemm.k, nm.m) * nm.n, gemm.n, gemm.batch)
        return Operands(x=activations[0], w=w, out=layer.outputs[0], gemm=compressed, x_bytes=x_bytes,
                         in_bytes=max(Fraction(self.in_bytes * nm.m, nm.n),
                                      Fraction(x_bytes, gemm.batch * gemm.m * compressed.k)),
                         w_bytes=self.w_bytes + Fraction(nm.index_bits, 8), out_bytes=self.in_bytes,
                         acc_bytes=self.acc_bytes, sparsity=nm, w_value_bytes=self.w_bytes)

    def vector_layer(self, layer: Layer, *, macs: int = 0) -> LayerMapping:
        """Element-wise work on the vector unit in chunks; ``macs`` > 0 runs a depthwise convolution
        there (one multiply-accumulate per lane per cycle, reading its weights too). A concatenation
        copies its inputs (one operation per output element). Resident operands are read and written
        in place; the rest streams through the working region."""
        inputs, ops = self._vector_work(layer, macs)
        size = {t: self.graph.tensors[t].elements * self.in_bytes for t in (*inputs, *layer.outputs)}
        place = {t: self._place(t) for t in size}
        streamed_in = [t for t in inputs if place[t] is None]
        streamed_out = [t for t in layer.outputs if place[t] is None]
        in_bytes = sum(size[t] for t in streamed_in)
        moved = in_bytes + sum(size[t] for t in streamed_out)
        chunks = max(1, ceil_div(moved, self.half_spad))
        onchip_in = [d for t in inputs if place[t] is not None for d in self.onchip.get(place[t][0], [])]
        out_claims = [d for t in layer.outputs if place[t] is not None for d in self.claims.pop(place[t][0], [])]
        outputs_onchip = [place[t][0] for t in layer.outputs if place[t] is not None]
        out_addr = next((place[t][1] for t in layer.outputs if place[t] is not None), None)
        for i in range(chunks):
            slot = self.spad_slots[next(self.spad_turn)]
            loads = [
                self._emit(Load, layer=layer.name, tensor=t, buffer=Buffer.SCRATCHPAD, addr=slot.addr,
                           size_bytes=share(size[t], i, chunks), dram_addr=self.dram_addr[t],
                           deps=[self.ready[t], *slot.last_users])
                for t in streamed_in
            ]
            vec = self._emit(Vector, layer=layer.name, op=layer.source_op or layer.op.value,
                             elements=share(ops, i, chunks), macs=share(macs, i, chunks), input_addr=slot.addr,
                             output_addr=out_addr if out_addr is not None else slot.addr + share(in_bytes, i, chunks),
                             deps=[*loads, *slot.last_users, *onchip_in, *out_claims])
            for t in inputs:
                if place[t] is not None:
                    self.users.setdefault(place[t][0], []).append(vec)
            for name in outputs_onchip:
                self._produce_onchip(name, vec)
            stores = [
                self._emit(Store, layer=layer.name, tensor=t, buffer=Buffer.SCRATCHPAD,
                           size_bytes=share(size[t], i, chunks), addr=slot.addr, dram_addr=self.dram_addr[t],
                           deps=[vec])
                for t in streamed_out
            ]
            slot.last_users = stores or [vec]
            for t in streamed_out:
                self.ready[t] = stores[-1]
        return LayerMapping(layer.name, layer.op, macs, tiles=chunks, loop_order="vector" if macs else "",
                            gemm=layer.gemm)


def _is_depthwise(layer: Layer) -> bool:
    return layer.gemm is not None and layer.gemm.batch > 1 and layer.gemm.n == 1 and layer.op is OpKind.CONV

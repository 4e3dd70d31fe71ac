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
``auto`` picks the lower estimate). Data-movement layers (reshape, concat, pass-through) cost nothing.

Dependencies: a load waits for the store of the tensor it reads (through DRAM) and for the compute
that last used its buffer half; a compute waits for its loads and for the previous compute; a store
waits for the compute that finished its tile; a tile that starts a new accumulator block waits for
the stores that emptied that half.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import Enum
from fractions import Fraction

from accel.commands import Buffer, Command, Compute, Load, Store, Vector
from accel.errors import MappingError
from accel.hardware import Accelerator, Dataflow, Sparsity
from accel.timing import ceil_div, dma_cycles, gemm_tile_cycles, vector_cycles
from mapper.plan import LayerMapping, Plan, Tile
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
          loop_order: LoopOrder = LoopOrder.AUTO, depthwise: Depthwise = Depthwise.AUTO) -> Plan:
    """Lower every layer of ``graph`` onto ``arch``.

    ``dataflow=None`` picks, per layer, the supported dataflow with the lowest estimate; a given
    dataflow is used for every array layer.
    """
    if dataflow is not None and dataflow not in arch.array.dataflows:
        supported = ", ".join(d.value for d in arch.array.dataflows)
        raise MappingError(f"{arch.name} supports dataflows {supported}, not {dataflow.value}")
    builder = _ProgramBuilder(graph, arch)
    mappings = []
    for layer in graph.layers:
        if layer.gemm is not None and _is_depthwise(layer) and depthwise is not Depthwise.ARRAY and (
                depthwise is Depthwise.VECTOR or builder.vector_is_faster(layer, dataflow, loop_order)):
            mappings.append(builder.vector_layer(layer, macs=layer.macs))
        elif layer.gemm is not None:
            mappings.append(builder.gemm_layer(layer, dataflow, loop_order))
        elif layer.op.uses_vector_unit:
            mappings.append(builder.vector_layer(layer))
        else:
            builder.alias(layer)
            mappings.append(LayerMapping(layer.name, layer.op, 0))
    return Plan(arch=arch, graph_name=graph.name, layers=tuple(mappings), commands=tuple(builder.commands))


# -- the abstract schedule of one array layer ----------------------------------------------------

@dataclass(frozen=True)
class _Transfer:
    tensor: str
    size_bytes: int
    buffer: Buffer
    key: tuple[int, ...] | None = None  # partial sums: a reload waits for the store with the same key


@dataclass(frozen=True)
class _Step:
    """One compute with the transfers around it.

    ``loads`` go to the next scratchpad half (operands) or to the current accumulator half (partial
    sums); ``new_block`` switches to the other accumulator half first; ``stores`` leave after it.
    """

    compute: dict[str, object]
    loads: tuple[_Transfer, ...] = ()
    stores: tuple[_Transfer, ...] = ()
    new_block: bool = False


@dataclass
class _Operands:
    """Names and sizes the schedules of one array layer need.

    ``gemm`` is what the array computes: for an N:M layer on an array that runs N:M, its reduction is
    the compressed one (``ceil(k/M) x N``), each element of it standing for ``M/N`` input bytes per
    input byte (``in_bytes``) and carrying a ``log2(M)``-bit index with its weight (``w_bytes``).
    """

    x: str
    w: str | None
    out: str
    gemm: GemmShape
    x_bytes: int  # the whole input tensor in DRAM
    in_bytes: Fraction  # input bytes per element of (m, k)
    w_bytes: Fraction  # weight bytes per element of (k, n)
    out_bytes: int  # bytes of one output (the input number format)
    acc_bytes: int
    sparsity: Sparsity | None = None
    w_value_bytes: int = 1  # bytes of one weight value (without its index)

    def x_share(self, tb: int, tm: int, tk: int) -> int:
        return max(1, round(self.x_bytes * tb * tm * tk / (self.gemm.batch * self.gemm.m * self.gemm.k)))

    def w_size(self, tb: int, tk: int, tn: int) -> int:
        if self.sparsity is not None:  # kept values and their indices, as sim.numerics stores them
            return self.sparsity.compressed_bytes(tb * tk * tn, 8 * self.w_value_bytes)
        return math.ceil(tb * tk * tn * self.w_bytes)


@dataclass
class _Slot:
    """One half of a double-buffered memory: its base address and the commands that last used it."""

    addr: int
    last_users: list[int] = field(default_factory=list)


def _tile_outer(ops: _Operands, tile: Tile, dataflow: Dataflow) -> Iterator[_Step]:
    g = ops.gemm
    for b0, n0, m0 in itertools.product(range(0, g.batch, tile.b), range(0, g.n, tile.n), range(0, g.m, tile.m)):
        tb, tn, tm = min(tile.b, g.batch - b0), min(tile.n, g.n - n0), min(tile.m, g.m - m0)
        k_starts = range(0, g.k, tile.k)
        for k0 in k_starts:
            tk = min(tile.k, g.k - k0)
            loads = [_Transfer(ops.x, ops.x_share(tb, tm, tk), Buffer.SCRATCHPAD)]
            if ops.w is not None:
                loads.append(_Transfer(ops.w, ops.w_size(tb, tk, tn), Buffer.SCRATCHPAD))
            last = k0 == k_starts[-1]
            yield _Step(
                compute=dict(m=tm, k=tk, n=tn, batch=tb, dataflow=dataflow, accumulate=k0 > 0, sparsity=ops.sparsity),
                loads=tuple(loads),
                stores=(_Transfer(ops.out, tb * tm * tn * ops.out_bytes, Buffer.ACCUMULATOR),) if last else (),
                new_block=k0 == 0,
            )


@dataclass(frozen=True)
class _FoldPlan:
    """Fold-outer sizes: groups per compute, the stream chunk, and whether partial sums stay on chip.

    When a fold's whole stream fits in one chunk, one compute may cover a block of ``s1_block x
    s2_block`` (multiples of the array) folds, each paying its full fill and drain.
    """

    tb: int
    chunk: int
    resident: bool
    s1_block: int
    s2_block: int


def _fold_outer(ops: _Operands, plan: _FoldPlan, dataflow: Dataflow, rows: int, cols: int) -> Iterator[_Step]:
    """SCALE-Sim's order, for any dataflow: (groups, S2 folds, S1 folds) outer, stream chunks inner."""
    g = ops.gemm
    # (rows dim, cols dim, stream dim) of the array, as names of the GEMM dimensions
    s1, s2, t = {Dataflow.WS: ("k", "n", "m"), Dataflow.OS: ("m", "n", "k"), Dataflow.IS: ("k", "m", "n")}[dataflow]
    extent = {"m": g.m, "k": g.k, "n": g.n}
    partial_sums = dataflow is not Dataflow.OS  # k is folded onto the rows: accumulate across folds
    for b0 in range(0, g.batch, plan.tb):
        tb = min(plan.tb, g.batch - b0)
        for a0 in range(0, extent[s2], plan.s2_block):
            s1_starts = range(0, extent[s1], plan.s1_block)
            for f0 in s1_starts:
                chunks = range(0, extent[t], plan.chunk)
                for c0 in chunks:
                    size = {s2: min(plan.s2_block, extent[s2] - a0), s1: min(plan.s1_block, extent[s1] - f0),
                            t: min(plan.chunk, extent[t] - c0)}
                    tm, tk, tn = size["m"], size["k"], size["n"]
                    first_chunk, last_chunk = c0 == 0, c0 == chunks[-1]
                    first_fold, last_fold = f0 == 0, f0 == s1_starts[-1]
                    # the streamed operand every chunk; the stationary one with the fold's first chunk
                    x_needed = dataflow is not Dataflow.IS or first_chunk
                    w_needed = ops.w is not None and (dataflow is not Dataflow.WS or first_chunk)
                    loads = []
                    if x_needed:
                        loads.append(_Transfer(ops.x, ops.x_share(tb, tm, tk), Buffer.SCRATCHPAD))
                    if w_needed:
                        loads.append(_Transfer(ops.w, ops.w_size(tb, tk, tn), Buffer.SCRATCHPAD))
                    stores = []
                    outputs = tb * tm * tn
                    if not partial_sums:
                        new_block, accumulate = first_chunk, not first_chunk
                        if last_chunk:
                            stores.append(_Transfer(ops.out, outputs * ops.out_bytes, Buffer.ACCUMULATOR))
                    elif plan.resident:
                        new_block, accumulate = first_fold and first_chunk, not first_fold
                        if last_fold:
                            stores.append(_Transfer(ops.out, outputs * ops.out_bytes, Buffer.ACCUMULATOR))
                    else:
                        new_block, accumulate = True, not first_fold
                        key = (b0, a0, c0)
                        if not first_fold:
                            loads.append(_Transfer(ops.out, outputs * ops.acc_bytes, Buffer.ACCUMULATOR, key))
                        size_bytes = outputs * (ops.out_bytes if last_fold else ops.acc_bytes)
                        stores.append(_Transfer(ops.out, size_bytes, Buffer.ACCUMULATOR, None if last_fold else key))
                    yield _Step(
                        compute=dict(m=tm, k=tk, n=tn, batch=tb, dataflow=dataflow, accumulate=accumulate,
                                     fill=first_chunk, drain=last_chunk, sparsity=ops.sparsity),
                        loads=tuple(loads), stores=tuple(stores), new_block=new_block,
                    )


class _ProgramBuilder:
    def __init__(self, graph: Graph, arch: Accelerator) -> None:
        self.graph = graph
        self.arch = arch
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

    # -- command emission ------------------------------------------------------------------------
    def _emit(self, cls: type[Command], deps: object = (), **fields: object) -> int:
        ident = len(self.commands)
        self.commands.append(cls(id=ident, deps=tuple(sorted({d for d in deps if d is not None})), **fields))
        return ident

    def _transfer(self, cls: type[Load] | type[Store], layer: Layer, t: _Transfer, addr: int,
                  deps: list[int | None]) -> int:
        return self._emit(cls, layer=layer.name, tensor=t.tensor, size_bytes=t.size_bytes, buffer=t.buffer,
                          addr=addr, dram_addr=self.dram_addr[t.tensor], deps=deps)

    def _emit_steps(self, layer: Layer, steps: Iterator[_Step]) -> int:
        """Turn the abstract schedule into commands with addresses and dependencies; count computes."""
        previous: int | None = None
        acc_slot = self.acc_slots[0]
        stored: dict[tuple[int, ...], int] = {}  # partial-sum stores by key
        count = 0
        for step in steps:
            if step.new_block:
                acc_slot = self.acc_slots[next(self.acc_turn)]
            block_free = list(acc_slot.last_users) if step.new_block else []
            spad_slot = self.spad_slots[next(self.spad_turn)] if any(
                t.buffer is Buffer.SCRATCHPAD for t in step.loads) else None
            loads, offset = [], 0
            for t in step.loads:
                if t.buffer is Buffer.SCRATCHPAD:
                    assert spad_slot is not None
                    deps = [self.ready[t.tensor], *spad_slot.last_users]
                    loads.append(self._transfer(Load, layer, t, spad_slot.addr + offset, deps))
                    offset += t.size_bytes
                else:
                    written = stored[t.key] if t.key is not None else self.ready[t.tensor]
                    loads.append(self._transfer(Load, layer, t, acc_slot.addr, [written, *block_free]))
            addr = spad_slot.addr if spad_slot is not None else 0
            compute = self._emit(Compute, layer=layer.name, input_addr=addr, weight_addr=addr,
                                 output_addr=acc_slot.addr, deps=[*loads, previous, *block_free], **step.compute)
            if spad_slot is not None:
                spad_slot.last_users = [compute]
            stores = [self._transfer(Store, layer, t, acc_slot.addr, [compute]) for t in step.stores]
            if step.new_block:
                acc_slot.last_users = []
            acc_slot.last_users.extend(stores)
            for t, ident in zip(step.stores, stores, strict=True):
                if t.key is not None:
                    stored[t.key] = ident
                else:
                    self.ready[t.tensor] = ident
            previous = compute
            count += 1
        return count

    def _estimate(self, steps: Iterator[_Step], bound: float = float("inf")) -> tuple[float, int]:
        """``(max(array cycles, DMA cycles), DRAM bytes)`` of a schedule, from the datasheet alone.

        Stops early (returning infinity) once the estimate exceeds ``bound``: it only grows.
        """
        array = dma = moved = 0
        for step in steps:
            c = step.compute
            array += int(c["batch"]) * gemm_tile_cycles(  # type: ignore[call-overload]
                self.arch.array, c["dataflow"], c["m"], c["k"], c["n"],
                fill=c.get("fill", True), drain=c.get("drain", True))
            for t in (*step.loads, *step.stores):
                dma += dma_cycles(self.arch, t.size_bytes)
                moved += t.size_bytes
            if max(array, dma) > bound:
                return float("inf"), moved
        return max(array, dma), moved

    # -- layers ----------------------------------------------------------------------------------
    def alias(self, layer: Layer) -> None:
        """A data-movement layer: its outputs are ready when its inputs are."""
        latest = max((self.ready[t] for t in layer.inputs if self.ready[t] is not None), default=None)
        for out in layer.outputs:
            self.ready[out] = latest

    def gemm_layer(self, layer: Layer, dataflow: Dataflow | None, loop_order: LoopOrder) -> LayerMapping:
        """Emit an array layer in ``dataflow``, or (``None``) in the supported dataflow whose best
        schedule has the lowest estimate (ties: the array's order)."""
        if dataflow is None:
            candidates = []
            for df in self.arch.array.dataflows:
                best = self._gemm_options(layer, df, loop_order)[0]
                candidates.append((self._estimate(best[2]()), df))
            dataflow = min(candidates, key=lambda c: c[0])[1]
        order, tile, schedule = self._gemm_options(layer, dataflow, loop_order)[0]
        tiles = self._emit_steps(layer, schedule())
        return LayerMapping(layer.name, layer.op, layer.macs, dataflow, tile, order, tiles, layer.gemm,
                            sparsity=self._operands(layer, dataflow).sparsity)

    def vector_is_faster(self, layer: Layer, dataflow: Dataflow | None, loop_order: LoopOrder) -> bool:
        """Whether a depthwise layer's vector-unit estimate beats its best array estimate."""
        dataflows = [dataflow] if dataflow is not None else list(self.arch.array.dataflows)
        array = min(self._estimate(self._gemm_options(layer, d, loop_order)[0][2]())[0] for d in dataflows)
        moved = sum(self.graph.tensors[t].elements for t in (*layer.inputs, *layer.outputs)) * self.in_bytes
        vector = max(vector_cycles(self.arch, layer.macs), dma_cycles(self.arch, moved))
        return vector < array

    def _gemm_options(self, layer: Layer, dataflow: Dataflow,
                      loop_order: LoopOrder) -> list[tuple[str, Tile, Callable[[], Iterator[_Step]]]]:
        """The candidate schedules of an array layer, the best estimate first."""
        ops = self._operands(layer, dataflow)
        rows, cols = self.arch.array.rows, self.arch.array.cols
        options = []
        if loop_order is not LoopOrder.FOLD_OUTER:
            tile = self._choose_tile(layer, ops)
            options.append(("tile-outer", tile, lambda t=tile: _tile_outer(ops, t, dataflow)))
        if loop_order is not LoopOrder.TILE_OUTER:
            fold = self._fold_plan(layer, ops, dataflow)
            r, c = fold.s1_block, fold.s2_block
            dims = {Dataflow.WS: dict(m=fold.chunk, k=r, n=c), Dataflow.OS: dict(m=r, k=fold.chunk, n=c),
                    Dataflow.IS: dict(m=c, k=r, n=fold.chunk)}[dataflow]
            tile = Tile(b=fold.tb, **{d: min(v, getattr(ops.gemm, d)) for d, v in dims.items()})
            options.append(("fold-outer", tile, lambda f=fold: _fold_outer(ops, f, dataflow, rows, cols)))
        if len(options) > 1:
            best = self._estimate(options[0][2]())
            second = self._estimate(options[1][2](), bound=best[0])
            if second < best:
                options.reverse()
        return options

    def _operands(self, layer: Layer, dataflow: Dataflow) -> _Operands:
        gemm = layer.gemm
        assert gemm is not None
        activations = [t for t in layer.inputs if not self.graph.tensors[t].is_constant]
        weights = [t for t in layer.inputs if self.graph.tensors[t].is_constant]
        if not activations:
            raise MappingError(f"Layer {layer.name!r}: a {layer.op.value} layer needs an activation input")
        w = activations[1] if len(activations) > 1 else (weights[0] if weights else None)
        x_bytes = self.graph.tensors[activations[0]].elements * self.in_bytes
        nm = layer.sparsity
        # N:M runs natively on a weight-stationary array that lists the pattern (the sparse PEs hold
        # each group's kept weights and indices); anything else runs the layer dense.
        if nm is None or nm not in self.arch.array.sparsity or w not in weights or dataflow is not Dataflow.WS:
            return _Operands(x=activations[0], w=w, out=layer.outputs[0], gemm=gemm, x_bytes=x_bytes,
                             in_bytes=Fraction(self.in_bytes), w_bytes=Fraction(self.w_bytes),
                             out_bytes=self.in_bytes, acc_bytes=self.acc_bytes)
        compressed = GemmShape(gemm.m, ceil_div(gemm.k, nm.m) * nm.n, gemm.n, gemm.batch)
        return _Operands(x=activations[0], w=w, out=layer.outputs[0], gemm=compressed, x_bytes=x_bytes,
                         in_bytes=Fraction(self.in_bytes * nm.m, nm.n),
                         w_bytes=self.w_bytes + Fraction(nm.index_bits, 8), out_bytes=self.in_bytes,
                         acc_bytes=self.acc_bytes, sparsity=nm, w_value_bytes=self.w_bytes)

    def _no_fit(self, layer: Layer) -> MappingError:
        return MappingError(
            f"Layer {layer.name!r}: not even a 1x1x1 tile fits half of the scratchpad "
            f"({self.half_spad} B) and of the accumulator ({self.half_acc} B)"
        )

    def _choose_tile(self, layer: Layer, ops: _Operands) -> Tile:
        """The tile-outer tile that fits with the least DRAM traffic (ties: fewer tiles)."""
        gemm = ops.gemm
        rows, cols = self.arch.array.rows, self.arch.array.cols
        best: tuple[tuple[int, int], Tile] | None = None
        for tb, tk, tn in itertools.product(
            _candidates(gemm.batch, 1), _candidates(gemm.k, rows), _candidates(gemm.n, cols)
        ):
            tm = self._max_tm(ops, tb, tk, tn)
            if tm < 1:
                continue
            n_tiles = ceil_div(gemm.batch, tb) * ceil_div(gemm.n, tn) * ceil_div(gemm.m, tm)
            w_traffic = ops.w_size(gemm.batch, gemm.k, gemm.n) * ceil_div(gemm.m, tm)
            traffic = ops.x_bytes * ceil_div(gemm.n, tn) + w_traffic
            key = (traffic, n_tiles * ceil_div(gemm.k, tk))
            if best is None or key < best[0]:
                best = (key, Tile(tm, tk, tn, tb))
        if best is None:
            raise self._no_fit(layer)
        return best[1]

    def _max_tm(self, ops: _Operands, tb: int, tk: int, tn: int) -> int:
        """The most rows whose inputs + weights fit half the scratchpad and outputs half the accumulator."""
        spad_room = self.half_spad - ops.w_size(tb, tk, tn)
        by_spad = math.floor(spad_room / (tb * tk * ops.in_bytes)) if spad_room > 0 else 0
        by_acc = self.half_acc // (tb * tn * self.acc_bytes)
        return min(ops.gemm.m, by_spad, by_acc)

    def _fold_plan(self, layer: Layer, ops: _Operands, dataflow: Dataflow) -> _FoldPlan:
        """The longest stream chunk of one fold; when a whole stream fits, the biggest block of folds
        and groups per compute."""
        g = ops.gemm
        rows, cols = self.arch.array.rows, self.arch.array.cols
        s1 = g.m if dataflow is Dataflow.OS else g.k
        s2 = g.m if dataflow is Dataflow.IS else g.n
        stream = {Dataflow.WS: g.m, Dataflow.OS: g.k, Dataflow.IS: g.n}[dataflow]

        def fits(tb: int, chunk: int, resident: bool, r: int = min(rows, s1), c: int = min(cols, s2)) -> bool:
            if dataflow is Dataflow.WS:  # inputs chunk x r, weights r x c
                spad = chunk * r * ops.in_bytes + ops.w_size(1, r, c)
                acc = (g.m if resident else chunk) * c
            elif dataflow is Dataflow.OS:  # inputs r x chunk, weights chunk x c
                spad = r * chunk * ops.in_bytes + ops.w_size(1, chunk, c)
                acc = r * c
            else:  # inputs r x c (k x m), weights r x chunk
                spad = r * c * ops.in_bytes + ops.w_size(1, r, chunk)
                acc = c * (g.n if resident else chunk)
            return tb * spad <= self.half_spad and tb * acc * self.acc_bytes <= self.half_acc

        resident = dataflow is not Dataflow.OS and fits(1, 1, True)
        chunk = _largest(lambda size: fits(1, size, resident), stream)
        if chunk < 1:
            raise self._no_fit(layer)
        if chunk < stream:
            return _FoldPlan(tb=1, chunk=chunk, resident=resident, s1_block=rows, s2_block=cols)
        c_folds = _largest(lambda i: fits(1, chunk, resident, c=min(i * cols, s2)), ceil_div(s2, cols))
        c = min(c_folds * cols, s2)
        r_folds = _largest(lambda j: fits(1, chunk, resident, r=min(j * rows, s1), c=c), ceil_div(s1, rows))
        r = min(r_folds * rows, s1)
        tb = _largest(lambda size: fits(size, chunk, resident, r=r, c=c), g.batch)
        return _FoldPlan(tb=tb, chunk=chunk, resident=resident, s1_block=r_folds * rows, s2_block=c_folds * cols)

    def vector_layer(self, layer: Layer, *, macs: int = 0) -> LayerMapping:
        """Element-wise work on the vector unit in chunks; ``macs`` > 0 runs a depthwise convolution
        there (one multiply-accumulate per lane per cycle, reading its weights too)."""
        inputs = [t for t in layer.inputs if macs or not self.graph.tensors[t].is_constant]
        in_bytes = sum(self.graph.tensors[t].elements for t in inputs) * self.in_bytes
        out_bytes = sum(self.graph.tensors[t].elements for t in layer.outputs) * self.in_bytes
        chunks = max(1, ceil_div(in_bytes + out_bytes, self.half_spad))
        ops = max(macs or layer.vector_ops, 1)
        for i in range(chunks):
            slot = self.spad_slots[next(self.spad_turn)]
            loads = [
                self._emit(Load, layer=layer.name, tensor=t, buffer=Buffer.SCRATCHPAD, addr=slot.addr,
                           size_bytes=_share(self.graph.tensors[t].elements * self.in_bytes, i, chunks),
                           dram_addr=self.dram_addr[t], deps=[self.ready[t], *slot.last_users])
                for t in inputs
            ]
            vec = self._emit(Vector, layer=layer.name, op=layer.source_op or layer.op.value,
                             elements=_share(ops, i, chunks), macs=_share(macs, i, chunks), input_addr=slot.addr,
                             output_addr=slot.addr + _share(in_bytes, i, chunks), deps=[*loads, *slot.last_users])
            stores = [
                self._emit(Store, layer=layer.name, tensor=t, buffer=Buffer.SCRATCHPAD,
                           size_bytes=_share(self.graph.tensors[t].elements * self.in_bytes, i, chunks),
                           addr=slot.addr, dram_addr=self.dram_addr[t], deps=[vec])
                for t in layer.outputs
            ]
            slot.last_users = stores or [vec]
        for t in layer.outputs:
            self.ready[t] = len(self.commands) - 1
        return LayerMapping(layer.name, layer.op, macs, tiles=chunks, loop_order="vector" if macs else "",
                            gemm=layer.gemm)


def _is_depthwise(layer: Layer) -> bool:
    return layer.gemm is not None and layer.gemm.batch > 1 and layer.gemm.n == 1 and layer.op is OpKind.CONV


def _largest(ok: object, limit: int) -> int:
    """The largest ``size`` in ``1..limit`` with ``ok(size)`` (``ok`` monotone), or 0."""
    if not ok(1):  # type: ignore[operator]
        return 0
    lo, hi = 1, limit
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if ok(mid):  # type: ignore[operator]
            lo = mid
        else:
            hi = mid - 1
    return lo


def _candidates(extent: int, unit: int) -> Iterator[int]:
    """Tile sizes worth trying along one dimension: multiples of ``unit`` in powers of two, and all."""
    size = unit
    while size < extent:
        yield size
        size *= 2
    yield extent


def _share(total: int, i: int, parts: int) -> int:
    """The ``i``-th of ``parts`` nearly equal integer shares of ``total`` (they sum to ``total``)."""
    return total * (i + 1) // parts - total * i // parts

"""Baseline lowering: each layer to tiles that fit the on-chip memories, as a command program.

This is the simple, always-valid lowering (no ILP): every layer reads its inputs from DRAM and
writes its outputs back (SCALE-Sim style), with double buffering so the loads of tile ``i + 1``
overlap the compute of tile ``i``.

Array layers (conv, GEMM, matmul) run as ``b x m x k @ k x n`` tiles with loop order ``b, n, m, k``
(k innermost, accumulating in the accumulator memory). Half of the scratchpad holds one tile's
inputs and weights, the other half the next tile's; the accumulator is split the same way for
outputs. Among the tile sizes that fit, the lowering takes the one with the least DRAM traffic.

Bytes moved for an input tile are its share of the input tensor (``tm/m * tk/k`` of it): exact for
GEMMs and 1x1 convolutions, and for larger kernels it counts the unique input footprint rather than
the im2col copy (halos between tiles are not counted twice). Outputs are written once in the input
number format (the accumulator's read path requantizes). Vector layers run in chunks that fit half
of the scratchpad. Data-movement layers (reshape, concat, pass-through) cost nothing.

Dependencies: a load waits for the store of the tensor it reads (through DRAM) and for the compute
that last used its buffer half; a compute waits for its loads and, when accumulating, for its
previous k-tile; a store waits for the compute that finished its tile.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

from accel.commands import Buffer, Command, Compute, Load, Store, Vector
from accel.errors import MappingError
from accel.hardware import Accelerator, Dataflow
from accel.timing import ceil_div
from mapper.plan import LayerMapping, Plan, Tile
from workloads.graph import Graph, Layer

__all__ = ["lower"]


def lower(graph: Graph, arch: Accelerator, *, dataflow: Dataflow | None = None) -> Plan:
    """Lower every layer of ``graph`` onto ``arch``; ``dataflow`` defaults to the array's first."""
    if dataflow is not None and dataflow not in arch.array.dataflows:
        supported = ", ".join(d.value for d in arch.array.dataflows)
        raise MappingError(f"{arch.name} supports dataflows {supported}, not {dataflow.value}")
    builder = _ProgramBuilder(graph, arch)
    mappings = []
    for layer in graph.layers:
        if layer.gemm is not None:
            mappings.append(builder.gemm_layer(layer, dataflow or arch.array.dataflows[0]))
        elif layer.op.uses_vector_unit:
            mappings.append(builder.vector_layer(layer))
        else:
            builder.alias(layer)
            mappings.append(LayerMapping(layer.name, layer.op, 0))
    return Plan(arch=arch, graph_name=graph.name, layers=tuple(mappings), commands=tuple(builder.commands))


@dataclass
class _Slot:
    """One half of a double-buffered memory: its base address and the command that last used it."""

    addr: int
    last_user: int | None = None


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
            next_addr += ceil_div(tensor.elements * self.in_bytes, 64) * 64
            self.ready[name] = None
        half_spad = arch.scratchpad.size_bytes // 2
        half_acc = arch.accumulator.size_bytes // 2
        self.spad_slots = [_Slot(0), _Slot(half_spad)]
        self.acc_slots = [_Slot(0), _Slot(half_acc)]
        self.half_spad, self.half_acc = half_spad, half_acc
        self.spad_turn = itertools.cycle((0, 1))
        self.acc_turn = itertools.cycle((0, 1))

    # -- command emission ------------------------------------------------------------------------
    def _emit(self, cls: type[Command], **fields: object) -> int:
        ident = len(self.commands)
        deps = tuple(sorted({d for d in fields.pop("deps", ()) if d is not None}))  # type: ignore[union-attr]
        self.commands.append(cls(id=ident, deps=deps, **fields))
        return ident

    def _load(self, layer: Layer, tensor: str, size_bytes: int, addr: int, slot: _Slot) -> int:
        return self._emit(Load, layer=layer.name, tensor=tensor, size_bytes=size_bytes, addr=addr,
                          buffer=Buffer.SCRATCHPAD, dram_addr=self.dram_addr[tensor],
                          deps=(self.ready[tensor], slot.last_user))

    # -- layers ----------------------------------------------------------------------------------
    def alias(self, layer: Layer) -> None:
        """A data-movement layer: its outputs are ready when its inputs are."""
        latest = max((self.ready[t] for t in layer.inputs if self.ready[t] is not None), default=None)
        for out in layer.outputs:
            self.ready[out] = latest

    def gemm_layer(self, layer: Layer, dataflow: Dataflow) -> LayerMapping:
        gemm = layer.gemm
        assert gemm is not None
        activations = [t for t in layer.inputs if not self.graph.tensors[t].is_constant]
        weights = [t for t in layer.inputs if self.graph.tensors[t].is_constant]
        if not activations:
            raise MappingError(f"Layer {layer.name!r}: a {layer.op.value} layer needs an activation input")
        x = activations[0]
        w = activations[1] if len(activations) > 1 else (weights[0] if weights else None)
        tile = self._choose_tile(layer, x)
        x_bytes = self.graph.tensors[x].elements * self.in_bytes
        out = layer.outputs[0]
        groups = [min(tile.b, gemm.batch - b0) for b0 in range(0, gemm.batch, tile.b)]
        tiles = 0
        for tb, n0 in itertools.product(groups, range(0, gemm.n, tile.n)):
            tn = min(tile.n, gemm.n - n0)
            for m0 in range(0, gemm.m, tile.m):
                tm = min(tile.m, gemm.m - m0)
                acc_slot = self.acc_slots[next(self.acc_turn)]
                previous = acc_slot.last_user
                for k0 in range(0, gemm.k, tile.k):
                    tk = min(tile.k, gemm.k - k0)
                    slot = self.spad_slots[next(self.spad_turn)]
                    share = tb * tm * tk / (gemm.batch * gemm.m * gemm.k)
                    loads = [self._load(layer, x, max(1, round(x_bytes * share)), slot.addr, slot)]
                    if w is not None:
                        loads.append(self._load(layer, w, tb * tk * tn * self.w_bytes,
                                                slot.addr + tb * tm * tk * self.in_bytes, slot))
                    compute = self._emit(
                        Compute, layer=layer.name, m=tm, k=tk, n=tn, batch=tb, dataflow=dataflow,
                        input_addr=slot.addr, weight_addr=slot.addr + tb * tm * tk * self.in_bytes,
                        output_addr=acc_slot.addr, accumulate=k0 > 0, deps=(*loads, previous),
                    )
                    slot.last_user = previous = compute
                    tiles += 1
                store = self._emit(Store, layer=layer.name, tensor=out, size_bytes=tb * tm * tn * self.in_bytes,
                                   buffer=Buffer.ACCUMULATOR, addr=acc_slot.addr, dram_addr=self.dram_addr[out],
                                   deps=(previous,))
                acc_slot.last_user = store
        self.ready[out] = len(self.commands) - 1
        return LayerMapping(layer.name, layer.op, layer.macs, dataflow, tile, "bnmk", tiles)

    def _choose_tile(self, layer: Layer, x: str) -> Tile:
        """The fitting tile with the least DRAM traffic (ties: fewer tiles)."""
        gemm = layer.gemm
        assert gemm is not None
        rows, cols = self.arch.array.rows, self.arch.array.cols
        best: tuple[tuple[int, int], Tile] | None = None
        for tb, tk, tn in itertools.product(
            _candidates(gemm.batch, 1), _candidates(gemm.k, rows), _candidates(gemm.n, cols)
        ):
            tm = self._max_tm(tb, tk, tn, gemm.m)
            if tm < 1:
                continue
            tile = Tile(tm, tk, tn, tb)
            n_tiles = ceil_div(gemm.batch, tb) * ceil_div(gemm.n, tn) * ceil_div(gemm.m, tm)
            x_traffic = self.graph.tensors[x].elements * ceil_div(gemm.n, tn)
            w_traffic = gemm.batch * gemm.k * gemm.n * ceil_div(gemm.m, tm)
            key = (x_traffic * self.in_bytes + w_traffic * self.w_bytes, n_tiles * ceil_div(gemm.k, tk))
            if best is None or key < best[0]:
                best = (key, tile)
        if best is None:
            raise MappingError(
                f"Layer {layer.name!r}: not even a 1x1x1 tile fits half of the scratchpad "
                f"({self.half_spad} B) and of the accumulator ({self.half_acc} B)"
            )
        return best[1]

    def _max_tm(self, tb: int, tk: int, tn: int, m: int) -> int:
        """The most rows whose inputs + weights fit half the scratchpad and outputs half the accumulator."""
        spad_room = self.half_spad - tb * tk * tn * self.w_bytes
        by_spad = spad_room // (tb * tk * self.in_bytes) if spad_room > 0 else 0
        by_acc = self.half_acc // (tb * tn * self.acc_bytes)
        return min(m, by_spad, by_acc)

    def vector_layer(self, layer: Layer) -> LayerMapping:
        inputs = [t for t in layer.inputs if not self.graph.tensors[t].is_constant]
        in_bytes = sum(self.graph.tensors[t].elements for t in inputs) * self.in_bytes
        out_bytes = sum(self.graph.tensors[t].elements for t in layer.outputs) * self.in_bytes
        chunks = max(1, ceil_div(in_bytes + out_bytes, self.half_spad))
        ops = max(layer.vector_ops, 1)
        for i in range(chunks):
            slot = self.spad_slots[next(self.spad_turn)]
            loads = [
                self._load(layer, t, _share(self.graph.tensors[t].elements * self.in_bytes, i, chunks),
                           slot.addr, slot)
                for t in inputs
            ]
            vec = self._emit(Vector, layer=layer.name, op=layer.source_op or layer.op.value,
                             elements=_share(ops, i, chunks), input_addr=slot.addr,
                             output_addr=slot.addr + _share(in_bytes, i, chunks), deps=loads)
            stores = [
                self._emit(Store, layer=layer.name, tensor=t, buffer=Buffer.SCRATCHPAD,
                           size_bytes=_share(self.graph.tensors[t].elements * self.in_bytes, i, chunks),
                           addr=slot.addr, dram_addr=self.dram_addr[t], deps=(vec,))
                for t in layer.outputs
            ]
            slot.last_user = stores[-1]
        for t in layer.outputs:
            self.ready[t] = len(self.commands) - 1
        return LayerMapping(layer.name, layer.op, 0, tiles=chunks)


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

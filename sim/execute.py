"""Functional execution: a plan's command program run on data, byte for byte.

:func:`execute` ``(plan, inputs)`` runs the commands of a :class:`~mapper.plan.Plan` of a quantized graph
(:func:`workloads.load_onnx` of a QDQ or QOperator model, mapped by :func:`mapper.map_graph`) on three
byte images of their real sizes: DRAM (every tensor at the plan's address, in :mod:`mapper.layout`'s
storage order; weights as the array reads them, N:M weights packed tile by tile as the plan lists),
the scratchpad and the accumulator. Each command moves or computes exactly the bytes it names,
nothing else:

``Load`` / ``Store``
    copy ``size_bytes`` between DRAM (the command's :class:`~accel.commands.Block`) and the packed
    buffer bytes at ``addr``; a store from the accumulator reads 32-bit words there and requantizes
    each (the layer's bias, its per-channel scale, the output zero point, the fused activation, in the
    design's :class:`~accel.formats.Requantization` mode), unless ``raw`` (partial sums, copied).
``Move``
    the requantizing read of a store, into the scratchpad at ``addr`` (its ``dst`` block).
``Compute``
    reads its input and weights from the scratchpad (packed, or in place through its blocks), the
    stationary operand of a fold it continues (``fill`` false) from the array, and writes (or adds to,
    with the accumulator format's overflow) ``batch x m x n`` words at ``output_addr``, through
    :func:`sim.numerics.gemm_array`. A convolution's input is the band of pixels and channels of
    :func:`mapper.layout.conv_band`, turned into im2col rows here as the array's input feeder does
    (padding holds the input's zero point). An N:M compute (``sparsity`` set) reads its weight tile as
    the plan packed it (:class:`mapper.layout.PackedTile`: kept values and in-group indices) and the
    dense input reduction its groups cover, each kept weight multiplying the input at its index.
    A matmul of two activations (attention's ``q @ k``, ``probs @ v``; batched over its leading
    dimensions) reads its second operand's ``tk x tn`` block as it reads weights, both operands' raw
    codes (signed or unsigned, as their tensors are); both have zero points, so the array adds the
    zero-point cross terms of the tile (:func:`sim.reference.zero_point_terms`: the input rows' and
    the operand columns' sums, which its edges accumulate as the codes stream in) to the products,
    and the accumulator holds ``sum (a - a_zp) (b - b_zp)`` exactly; its store requantizes without a
    folded bias. An operand that is a view reordering a stored tensor's bytes (attention's head split,
    ``k^T``: :func:`mapper.layout.matrix_view`) arrives as its tile's bytes in that tensor, runs
    along the tile's columns, or for a second operand whose reduction is the source's contiguous
    axis (``x @ y^T``) as ``tn`` runs of ``tk`` codes, which the array takes transposed (a layer
    setting, as Gemmini's ``b_transpose``): such views are read through, never copied.
``Vector``
    the layer's integer operation (:mod:`sim.reference`'s kernels) on its chunk: element-wise adds,
    multiplies and activations (a sigmoid through its lookup table: :func:`sim.reference.sigmoid_table`,
    the layer's configuration) on runs of elements, windowed pools on bands of output rows (the
    input rows their windows read; an average as onnxruntime's ``QLinearAveragePool``, in float32:
    :func:`sim.reference.avgpool_codes`), global pools and depthwise convolutions on runs of channels.
    A constant operand of an add or a multiply (a bias vector over the last axis, a scalar scale;
    anything that broadcasts to the output) is the layer's configuration, like the requantizer's
    bias: each element of the chunk is combined with the constant's element at its position in the
    output. An activation operand of an add or a multiply that broadcasts (a squeeze-excite scale
    ``1 x C x 1 x 1`` against ``1 x C x H x W``) arrives as the run of its storage the chunk's
    elements read (:func:`mapper.layout.broadcast_span`), which the vector unit indexes by the
    layer's shapes, each element combined with the operand's element that broadcasts onto it.

The arithmetic is :mod:`sim.reference`'s, so the result equals :func:`sim.reference.run_quantized` (and,
in ``float32-half-even`` mode, onnxruntime) exactly when the plan is right; a wrong address, size or
missing dependency shows as different codes. Requantization parameters (bias, scales, zero points)
are the layer's configuration, as Gemmini's and the TPU's are written before a layer runs, not DMA.

Commands run in an order their dependencies allow, one in-order queue per unit (DMA loads; DMA stores
and moves; array; vector), as the simulator runs them. ``order`` picks which ready queue goes next:
``"loads-first"`` (the default: every load as early as its dependencies allow, so a load that
overwrites bytes still to be read shows), ``"loads-last"`` (every load as late as possible, so a
reader that does not wait for its load shows) or ``"program"`` (issue order). An array or vector
command reads its operands the moment it is ready (its weights shift in then).

:func:`execute_graph` adds the host's float conversions (:mod:`workloads.host`): float inputs in,
float outputs out, as onnxruntime runs the whole model. Plans this executor cannot run raise
:class:`ExecutionError` naming the layer: formats other than 8-bit codes and 32-bit accumulators;
softmax, layer norm, GELU and other float layers that the requested tensors depend on (``outputs=``
asks for the integer prefix before them: only those layers' commands compute, and each requested
tensor must be one the program stores to DRAM); GEMMs and matmuls whose matrices are images (rank-4
tensors a convolution or pool touches, :func:`mapper.layout.image_tensors`: stored channels-last, not
as the row-major matrices their tiles read; attention's rank-4 heads are row-major); matmuls whose
operands broadcast; element-wise layers other than a binary add or multiply whose activation
operands broadcast; a multiply, a sigmoid or a windowed average pool in a requantization mode other than
``float32-half-even`` (an add in ``dyadic``); concatenations other than along the storage's columns;
views that reorder bytes (any but those a matmul reads through, above).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from accel.commands import Block, Buffer, Command, Compute, Load, Move, Store, Vector
from accel.errors import AccelError
from accel.formats import NumberFormat, Requantization
from mapper.decide import band_images, band_span, chunking
from mapper.emit import dram_addresses
from mapper.layout import (
    MatrixView,
    broadcast_positions,
    broadcast_span,
    broadcasts,
    conv_band,
    conv_geometry,
    dense_k_range,
    from_storage,
    image_tensors,
    matrix_view,
    row_major,
    storage_shape,
    to_storage,
    weight_matrix,
)
from mapper.plan import Plan
from sim.numerics import gemm_array, nm_compress, requantize_array
from sim.reference import (
    ReferenceError,
    add_codes,
    avgpool_codes,
    code_format,
    concat_part_codes,
    float_average,
    gemm_operands,
    global_avg_codes,
    maxpool_codes,
    mul_codes,
    raw_code_matmul,
    run_layer,
    sigmoid_codes,
    supported,
    wrap_int32,
)
from sim.sparsity import pack_entries, unpack_entries
from workloads.graph import Graph, Layer, OpKind
from workloads.host import split_host

__all__ = ["ExecutionError", "ORDERS", "block_offsets", "dram_images", "execute", "execute_graph"]

ORDERS = ("loads-first", "loads-last", "program")


class ExecutionError(AccelError):
    """A plan the functional executor cannot run (or inputs it cannot take)."""


def execute_graph(graph: Graph, plan: Plan, inputs: Mapping[str, np.ndarray], *, order: str = "loads-first",
                  outputs: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """``graph``'s outputs on float (or code) ``inputs``: the host quantizes, ``plan`` (of ``graph``) runs,
    the host dequantizes; keyed by ``graph``'s output names. ``outputs`` names other tensors to return
    instead (a graph output dequantized, any other tensor as its codes): only the layers they depend on
    run, so a graph with float layers runs up to them (see :func:`execute`)."""
    split = split_host(graph)
    wanted = [t.name for t in graph.outputs] if outputs is None else list(outputs)
    unknown = [name for name in wanted if name not in graph.tensors]
    if unknown:
        raise ExecutionError(f"Graph {graph.name!r} has no tensor {unknown[0]!r}")
    values: dict[str, np.ndarray] = {}
    for t in graph.inputs:
        if t.name not in inputs:
            raise ExecutionError(f"Graph {graph.name!r}: no value given for input {t.name!r} (shape {t.shape})")
        values[t.name] = np.asarray(inputs[t.name])
    for layer in split.before:
        values.update(run_layer(graph, layer, values))
    device = {t.name: values[t.name] for t in split.device.inputs}
    after = [layer for layer in split.after if set(layer.outputs) & set(wanted)]
    on_device = [name for name in (*wanted, *(t for layer in after for t in layer.inputs))
                 if name in split.device.tensors and name not in device]
    if on_device:
        values.update(execute(plan, device, order=order, outputs=list(dict.fromkeys(on_device))))
    for layer in after:
        values.update(run_layer(graph, layer, values))
    return {name: values[name] for name in wanted}


def execute(plan: Plan, inputs: Mapping[str, np.ndarray], *, order: str = "loads-first",
            outputs: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Run ``plan``'s commands on ``inputs`` (integer codes of its graph's inputs, by name): the codes of
    its graph's outputs, read from DRAM after the last command. ``outputs`` names other tensors of its
    graph to read instead; only the layers they depend on must be executable, and only their commands
    compute (the integer prefix of a graph with float layers). Each must be one the program stores to
    DRAM (any tensor with the ``none`` allocator)."""
    if order not in ORDERS:
        raise ExecutionError(f"Execution order must be one of {', '.join(ORDERS)}, not {order!r}")
    if plan.graph is None:
        raise ExecutionError(f"Plan of {plan.graph_name!r} carries no graph to execute")
    machine = _Machine(plan, outputs)
    machine.load_inputs(inputs)
    machine.run(order)
    return machine.outputs()


def dram_images(plan: Plan, inputs: Mapping[str, np.ndarray], *, order: str = "loads-first") -> tuple[bytes, bytes]:
    """The DRAM image :func:`execute` starts from (inputs and weights where the plan puts them) and the one
    it ends with: what a bit-level model of the hardware (:mod:`rtl.npu.golden`) runs the program on
    and must end with."""
    if order not in ORDERS:
        raise ExecutionError(f"Execution order must be one of {', '.join(ORDERS)}, not {order!r}")
    if plan.graph is None:
        raise ExecutionError(f"Plan of {plan.graph_name!r} carries no graph to execute")
    machine = _Machine(plan)
    machine.load_inputs(inputs)
    before = machine.dram.tobytes()
    machine.run(order)
    return before, machine.dram.tobytes()


# -- the machine -----------------------------------------------------------------------------------

_QUEUES = ("load", "store", "array", "vector")


def _queue(cmd: Command) -> str:
    if isinstance(cmd, Load):
        return "load"
    if isinstance(cmd, Store | Move):
        return "store"
    return "array" if isinstance(cmd, Compute) else "vector"


def block_offsets(block: Block | None, size: int) -> np.ndarray:
    """Byte offsets (from the first byte) of the ``size`` bytes a block names, in order (``None``: ``0 ..
    size - 1``); a block of another size raises :class:`ExecutionError`."""
    if block is None:
        return np.arange(size, dtype=np.int64)
    if block.size_bytes != size:
        raise ExecutionError(f"block of {block.size_bytes} B for a transfer of {size} B")
    planes = np.arange(block.planes, dtype=np.int64)[:, None, None] * block.plane_stride
    rows = np.arange(block.rows, dtype=np.int64)[None, :, None] * block.row_stride
    run = np.arange(block.row_bytes, dtype=np.int64)[None, None, :]
    return (planes + rows + run).reshape(-1)


class _Machine:
    def __init__(self, plan: Plan, outputs: Sequence[str] | None = None) -> None:
        graph = plan.graph
        assert graph is not None
        self.plan, self.graph, self.arch = plan, graph, plan.arch
        self.wanted = [t.name for t in graph.outputs] if outputs is None else list(outputs)
        for name in self.wanted:
            if name not in graph.tensors:
                raise ExecutionError(f"Graph {graph.name!r} of the plan has no tensor {name!r}")
        self.needed = graph.layers_feeding(self.wanted)
        self.stored: set[str] = set()  # tensors a store has written to DRAM
        a = self.arch.array
        if a.input_format.bits != 8 or a.weight_format.bits != 8:
            raise ExecutionError(f"{self.arch.name}: functional execution models 8-bit inputs and weights, not "
                                 f"{a.input_format} and {a.weight_format}")
        self.acc_format: NumberFormat = a.accumulator_format
        if self.acc_format.bits != 32:
            raise ExecutionError(f"{self.arch.name}: functional execution models 32-bit accumulators, not "
                                 f"{self.acc_format}")
        self.requant = a.requant
        self.addr, end = dram_addresses(graph, self.arch)
        for cmd in plan.commands:
            if isinstance(cmd, Load | Store):
                end = max(end, cmd.dram_addr + (cmd.dram.span_bytes if cmd.dram else cmd.size_bytes))
        self.dram = np.zeros(end, dtype=np.uint8)
        self.spad = np.zeros(self.arch.scratchpad.size_bytes, dtype=np.uint8)
        self.acc = np.zeros(self.arch.accumulator.size_bytes, dtype=np.uint8)
        self.held: dict[str, Any] = {}  # the array's stationary operand of the fold in flight
        # accumulator address -> (layer, (b0, n0, tm, tn, n), words) of the tile the array last wrote there
        self.tags: dict[int, tuple[str, tuple[int, int, int, int, int], int]] = {}
        self.images = image_tensors(graph)  # the rank-4 tensors stored channels-last (mapper.layout)
        self.loop_orders = {m.layer: m.loop_order for m in plan.layers}  # "bands": a pool's chunks are output rows
        self.transposed = {layer.name for layer in graph.layers if (view := _operand_view(graph, layer, 1)) is not None
                           and view.transposed}  # second operands read through a view, transposed
        self._check_layers()
        self._operands: dict[str, Any] = {}
        self._write_constants()

    # -- set-up --------------------------------------------------------------------------------
    def _check_layers(self) -> None:
        g = self.graph
        floats = [layer for layer in g.float_layers() if layer.name in self.needed]
        if floats:
            named = ", ".join(f"{layer.name!r} ({layer.source_op or layer.op.value})" for layer in floats[:4])
            more = f" and {len(floats) - 4} more" if len(floats) > 4 else ""
            raise ExecutionError(f"Graph {g.name!r} computes in floating point in {named}{more}, which "
                                 "integer-only hardware cannot run; functional execution needs an integer-only "
                                 "graph between the host's boundary conversions (or outputs before it)")
        for layer in (layer for layer in g.layers if layer.name in self.needed):
            if layer.op.is_view:
                _check_view(g, layer, self.images)
                continue
            reason = (_widths_unsupported(g, layer) or _unsupported(g, layer, self.images)
                      or _mode_unsupported(g, layer, self.requant))
            if reason:
                raise ExecutionError(f"Layer {layer.name!r} ({layer.source_op or layer.op.value}): {reason}")

    def _write_constants(self) -> None:
        g = self.graph
        for layer in g.layers:
            if layer.gemm is None or _two_activations(g, layer) or layer.name not in self.needed:
                continue
            w = next((t for t in layer.inputs[1:2] if g.tensors[t].is_constant), None)
            if w is None or g.tensors[w].value is None:
                raise ExecutionError(f"Layer {layer.name!r}: its weights {w!r} have no values")
            codes = weight_matrix(g, layer, g.tensors[w].value).astype(np.int64)
            if w in self.plan.weight_tiles:
                self._put_packed(w, layer, codes)
            else:
                self._put(self.addr[w], codes.reshape(-1), np.int8)

    def _put_packed(self, name: str, layer: Layer, codes: np.ndarray) -> None:
        """N:M weights as the plan packed them: each tile's kept values and indices
        (:class:`mapper.layout.PackedTile`), the kept set :func:`sim.numerics.nm_compress`'s."""
        nm = layer.sparsity
        assert nm is not None
        kept = [nm_compress(group, nm.n, nm.m) for group in codes]  # per group: values, indices (G, N, n)
        values = np.stack([c.values.reshape(-1, c.cols) for c in kept])  # (groups, ceil(k/M)*N, n)
        indices = np.stack([c.indices.reshape(-1, c.cols) for c in kept])
        for tile in self.plan.weight_tiles[name]:
            (b0, k0, n0), (tb, tk, tn) = tile.origin, tile.extent
            block = np.s_[b0:b0 + tb, k0:k0 + tk, n0:n0 + tn]
            data = pack_entries(values[block].transpose(0, 2, 1), indices[block].transpose(0, 2, 1),
                                value_bits=8, index_bits=nm.index_bits)
            if data.size != tile.size_bytes:
                raise ExecutionError(f"Tensor {name!r}: tile {tile.origin} of extent {tile.extent} packs into "
                                     f"{data.size} B, not the plan's {tile.size_bytes}")
            at = self.addr[name] + tile.offset
            self.dram[at:at + data.size] = data

    def load_inputs(self, inputs: Mapping[str, np.ndarray]) -> None:
        """The codes of every graph input a needed layer reads (a float input only float layers read,
        beyond the requested tensors, is not the hardware's)."""
        read = {name for layer in self.graph.layers if layer.name in self.needed for name in layer.inputs}
        for t in self.graph.inputs:
            if t.name not in read:
                continue
            if t.name not in inputs:
                raise ExecutionError(f"Graph {self.graph.name!r}: no codes given for input {t.name!r} "
                                     f"(shape {t.shape})")
            value = np.asarray(inputs[t.name])
            if tuple(value.shape) != tuple(t.shape):
                raise ExecutionError(f"Graph {self.graph.name!r}: input {t.name!r} must have shape {t.shape}, "
                                     f"not {value.shape}")
            fmt = code_format(t)
            if value.dtype.kind not in "iu" or value.min(initial=fmt.min_int) < fmt.min_int or \
                    value.max(initial=fmt.max_int) > fmt.max_int:
                raise ExecutionError(f"Graph {self.graph.name!r}: input {t.name!r} takes {fmt.name} codes")
            self._put(self.addr[t.name], to_storage(value, image=t.name in self.images).astype(np.int64),
                      _dtype(fmt))

    def _put(self, addr: int, codes: np.ndarray, dtype: type) -> None:
        raw = codes.astype(dtype).view(np.uint8)
        self.dram[addr:addr + raw.size] = raw

    def outputs(self) -> dict[str, np.ndarray]:
        result = {}
        for name in self.wanted:
            if not self._in_dram(name):
                raise ExecutionError(f"Tensor {name!r} stays on chip in this plan (no store writes it to DRAM); "
                                     "ask for a tensor the program stores, or map with the 'none' allocator")
            result[name] = self._read_tensor(name)
        return result

    def _read_tensor(self, name: str) -> np.ndarray:
        """The codes of tensor ``name`` from DRAM: its bytes in storage order, or a view's of what it views."""
        g = self.graph
        t = g.tensors[name]
        view = g.layer(t.producer) if t.producer is not None else None
        if view is not None and view.op is OpKind.RESHAPE and not g.tensors[view.inputs[0]].is_constant:
            x = self._read_tensor(view.inputs[0])
            return np.transpose(x, view.attrs["perm"]) if view.attrs.get("fn") == "transpose" else x.reshape(t.shape)
        raw = self.dram[self.addr[name]:self.addr[name] + t.elements]
        return from_storage(raw.view(_dtype(code_format(t))).astype(np.int64), t.shape, image=name in self.images)

    def _in_dram(self, name: str) -> bool:
        """Whether tensor ``name``'s bytes are in DRAM after the program: an input's, or a stored tensor's
        (a view's: its source's)."""
        g = self.graph
        while g.tensors[name].producer is not None:
            layer = g.layer(g.tensors[name].producer)
            if not layer.op.is_view or g.tensors[layer.inputs[0]].is_constant:
                return name in self.stored
            name = layer.inputs[0]
        return True

    # -- running -------------------------------------------------------------------------------
    def run(self, order: str) -> None:
        commands = self.plan.commands
        queues: dict[str, deque[Command]] = {q: deque() for q in _QUEUES}
        for cmd in commands:
            queues[_queue(cmd)].append(cmd)
        done = np.zeros(len(commands), dtype=bool)
        preference = {"loads-first": ("array", "vector", "load", "store"),
                      "loads-last": ("array", "vector", "store", "load"),
                      "program": ()}[order]
        ready = lambda c: all(done[d] for d in c.deps)  # noqa: E731
        for step in range(len(commands)):
            if order == "program":
                cmd = commands[step]
            else:
                cmd = next((queues[q][0] for q in preference if queues[q] and ready(queues[q][0])), None)
                if cmd is None:
                    heads = {q: queues[q][0].id for q in _QUEUES if queues[q]}
                    raise ExecutionError(f"Plan of {self.plan.graph_name!r} deadlocks: no queue head is ready "
                                         f"({heads})")
            queues[_queue(cmd)].popleft()
            if self._computes_unneeded(cmd):
                done[cmd.id] = True
                continue
            try:
                self._execute(cmd)
            except (ReferenceError, ValueError, IndexError) as e:
                raise ExecutionError(f"Command {cmd.id} ({type(cmd).__name__}, layer {cmd.layer!r}): {e}") from None
            done[cmd.id] = True

    def _computes_unneeded(self, cmd: Command) -> bool:
        """Whether ``cmd`` computes for a layer no requested tensor depends on (skipped: loads and copies
        run, computes and requantizing stores of such layers do not)."""
        if cmd.layer in self.needed or isinstance(cmd, Load):
            return False
        return not isinstance(cmd, Store) or (cmd.buffer is Buffer.ACCUMULATOR and not cmd.raw)

    def _execute(self, cmd: Command) -> None:
        if isinstance(cmd, Load):
            src = self.dram[cmd.dram_addr + block_offsets(cmd.dram, cmd.size_bytes)]
            self._buffer(cmd.buffer)[cmd.addr:cmd.addr + cmd.size_bytes] = _exact(src, cmd.size_bytes)
        elif isinstance(cmd, Store):
            self.stored.add(cmd.tensor)
            if cmd.buffer is Buffer.SCRATCHPAD:
                data = self.spad[cmd.addr:cmd.addr + cmd.size_bytes]
            elif cmd.raw:
                data = self.acc[cmd.addr:cmd.addr + cmd.size_bytes]
            else:
                data = None
            if data is not None:
                self.dram[cmd.dram_addr + block_offsets(cmd.dram, cmd.size_bytes)] = _exact(data, cmd.size_bytes)
                return
            self.dram[cmd.dram_addr + block_offsets(cmd.dram, cmd.size_bytes)] = \
                self._requantized(cmd.layer, cmd.addr, cmd.size_bytes, cmd.activation)
        elif isinstance(cmd, Move):
            offsets = self._spad_offsets(cmd.addr, cmd.dst, cmd.size_bytes)
            self.spad[offsets] = self._requantized(cmd.layer, cmd.src_addr, cmd.size_bytes, cmd.activation)
        elif isinstance(cmd, Compute):
            self._compute(cmd)
        else:
            assert isinstance(cmd, Vector)
            self._vector(cmd)

    def _buffer(self, kind: Buffer) -> np.ndarray:
        return self.acc if kind is Buffer.ACCUMULATOR else self.spad

    # -- the store path ------------------------------------------------------------------------
    def _requantized(self, layer_name: str, acc_addr: int, count: int, activation: str) -> np.ndarray:
        """Bytes of ``count`` output codes of the accumulator's words from ``acc_addr``: the tile the array
        last wrote there says which output channels they are (the per-channel parameters)."""
        layer = self.graph.layer(layer_name)
        ops = self._gemm_operands(layer)
        words = self.acc[acc_addr:acc_addr + 4 * count]
        tag = self.tags.get(acc_addr)
        if words.size != 4 * count or tag is None or tag[0] != layer_name or tag[2] < count:
            raise ExecutionError(f"the accumulator at {acc_addr} holds no {count} results of layer {layer_name!r}")
        _, (b0, n0, tm, tn, n), _ = tag
        acc = words.view("<i4").astype(np.int64)
        i = np.arange(count)
        group = b0 + i // (tm * tn) if ops.groups > 1 else 0  # (a matmul's batches share its parameters)
        channel = group * n + n0 + i % tn
        # raw input codes times constant weights: the input's zero point is folded into the bias; a matmul
        # of two activations has its zero-point terms in the accumulator already (see _compute)
        bias = (ops.bias if ops.weight is None else ops.folded_bias).reshape(-1)[channel]
        total = wrap_int32(acc + bias)
        fmt = ops.out_format
        if ops.scale is None:
            codes = total
        else:
            codes = requantize_array(total, ops.scale.reshape(-1)[channel], ops.y_zero_point, mode=self.requant,
                                     out_format=fmt)
        return _activate(layer_name, codes, activation, ops.y_zero_point).astype(_dtype(fmt)).view(np.uint8)

    def _gemm_operands(self, layer: Layer) -> Any:
        if layer.name not in self._operands:
            self._operands[layer.name] = gemm_operands(self.graph, layer)
        return self._operands[layer.name]

    # -- the array -----------------------------------------------------------------------------
    def _compute(self, cmd: Compute) -> None:
        layer = self.graph.layer(cmd.layer)
        g = layer.gemm
        assert g is not None
        x_fmt = code_format(self.graph.tensors[layer.inputs[0]])
        second = self.graph.tensors[layer.inputs[1]]
        w_fmt = NumberFormat(8) if second.is_constant else code_format(second)  # (weights: int8 codes)
        b0, m0, k0, n0 = cmd.origin
        tb, tm, tk, tn = cmd.batch, cmd.m, cmd.k, cmd.n
        stationary = {"ws": "w", "is": "x"}.get(cmd.dataflow.value)
        x = w = None
        if stationary == "x" and not cmd.fill:
            x = self.held["x"]
        if stationary == "w" and not cmd.fill:
            w = self.held["w"]
        k_range = dense_k_range(k0, tk, None if cmd.sparsity is None else (cmd.sparsity.n, cmd.sparsity.m))
        k_range = (k_range[0], min(k_range[1], g.k))
        if x is None:
            x = self._input_tile(layer, cmd, x_fmt, k_range)
        if w is None and cmd.sparsity is not None:
            w = self._nm_weights(layer, cmd, k_range)
        elif w is None and layer.name in self.transposed:  # rows of y for x @ y^T
            raw = self._read(cmd.weight_addr, cmd.weight_block, tb * tk * tn)
            w = raw.view(_dtype(w_fmt)).astype(np.int64).reshape(tb, tn, tk).transpose(0, 2, 1)
        elif w is None:
            raw = self._read(cmd.weight_addr, cmd.weight_block, tb * tk * tn)
            w = raw.view(_dtype(w_fmt)).astype(np.int64).reshape(tb, tk, tn)
        self.held = {"x": x, "w": w}
        count = tb * tm * tn
        out = self.acc[cmd.output_addr:cmd.output_addr + 4 * count]
        if out.size != 4 * count:
            raise ExecutionError(f"accumulator words [{cmd.output_addr}, {cmd.output_addr + 4 * count}) outside "
                                 f"its {self.acc.size} B")
        previous = out.view("<i4").astype(np.int64).reshape(tb, tm, tn) if cmd.accumulate else None
        x_format, w_format = NumberFormat(8, signed=x_fmt.signed), NumberFormat(8, signed=w_fmt.signed)
        if _two_activations(self.graph, layer):  # both operands' zero points: the cross terms join the sum
            ops = self._gemm_operands(layer)
            result = raw_code_matmul(x, w, ops.x_zero_point, int(ops.w_zero_point[0, 0]), a_format=x_format,
                                     b_format=w_format, acc=previous, acc_format=self.acc_format)
        else:
            result = gemm_array(x, w, acc=previous, a_format=x_format, b_format=w_format,
                                acc_format=self.acc_format)
        out[:] = result.astype("<i4").view(np.uint8).reshape(-1)
        self.tags[cmd.output_addr] = (layer.name, (b0, n0, tm, tn, g.n), count)

    def _nm_weights(self, layer: Layer, cmd: Compute, k_range: tuple[int, int]) -> np.ndarray:
        """The dense ``tb x (hi - lo) x tn`` weights of an N:M compute over the dense reduction
        ``k_range``: its packed tile's kept values, each at its group's position plus its index."""
        nm = cmd.sparsity
        assert nm is not None
        tb, tk, tn = cmd.batch, cmd.k, cmd.n
        count = tb * tk * tn
        raw = self._read(cmd.weight_addr, cmd.weight_block, nm.compressed_bytes(count, 8))
        values, indices = unpack_entries(raw, count, value_bits=8, index_bits=nm.index_bits)
        values, indices = values.reshape(tb, tn, tk), indices.reshape(tb, tn, tk)
        if (indices >= nm.m).any():
            raise ExecutionError(f"Layer {layer.name!r}: tile {cmd.origin} holds an N:M index of {nm.m} or more")
        lo, hi = k_range
        kc = cmd.origin[2] + np.arange(tk)
        position = (kc // nm.n * nm.m)[None, None, :] + indices - lo  # dense row of each kept value
        inside = position < hi - lo
        if (values[~inside] != 0).any():
            raise ExecutionError(f"Layer {layer.name!r}: tile {cmd.origin} keeps a weight beyond the reduction")
        dense = np.zeros((tb, hi - lo, tn), dtype=np.int64)
        b, j, e = np.nonzero(inside)
        dense[b, position[b, j, e], j] = values[b, j, e]
        return dense

    def _spad_offsets(self, addr: int, block: Block | None, size: int) -> np.ndarray:
        """The scratchpad addresses of the ``size`` bytes of ``block`` from ``addr`` (all inside it)."""
        offsets = addr + block_offsets(block, size)
        if offsets.size and (offsets.min() < 0 or offsets.max() >= self.spad.size):
            raise ExecutionError(f"scratchpad bytes [{offsets.min()}, {offsets.max() + 1}) outside its "
                                 f"{self.spad.size} B")
        return offsets

    def _read(self, addr: int, block: Block | None, size: int) -> np.ndarray:
        return self.spad[self._spad_offsets(addr, block, size)]

    def _input_tile(self, layer: Layer, cmd: Compute, x_fmt: NumberFormat, k_range: tuple[int, int]) -> np.ndarray:
        """``tb x tm x (hi - lo)`` input codes of a compute over the dense reduction ``k_range``: its GEMM
        block, or im2col rows of its band."""
        b0, m0, _, _ = cmd.origin
        tb, tm = cmd.batch, cmd.m
        lo, hi = k_range
        dtype = _dtype(x_fmt)
        conv = conv_geometry(self.graph, layer)
        if conv is None:
            raw = self._read(cmd.input_addr, cmd.input_block, tb * tm * (hi - lo))
            return raw.view(dtype).astype(np.int64).reshape(tb, tm, hi - lo)
        p0, p1, ch0, ch1 = conv_band(conv, b0, tb, m0, tm, lo, hi)
        raw = self._read(cmd.input_addr, cmd.input_block, (p1 - p0) * (ch1 - ch0))
        band = raw.view(dtype).astype(np.int64).reshape(p1 - p0, ch1 - ch0)
        zp = self._gemm_operands(layer).x_zero_point
        # output pixels and reduction elements of the tile, and the input pixel / channel each reads
        m = m0 + np.arange(tm)
        img, rest = m // (conv.oh * conv.ow), m % (conv.oh * conv.ow)
        oh, ow = rest // conv.ow, rest % conv.ow
        k = np.arange(lo, hi)
        tk = hi - lo
        kk = conv.kh * conv.kw
        c, i, j = k // kk, (k % kk) // conv.kw, k % conv.kw
        ih = oh[:, None] * conv.sh - conv.pt + i[None, :] * conv.dh
        iw = ow[:, None] * conv.sw - conv.pl + j[None, :] * conv.dw
        inside = (ih >= 0) & (ih < conv.h) & (iw >= 0) & (iw < conv.w)
        pixel = (img[:, None] * conv.h + ih) * conv.w + iw - p0
        groups = b0 + np.arange(tb)
        channel = groups[:, None, None] * conv.group_channels + c[None, None, :] - ch0
        rows = np.clip(pixel, 0, band.shape[0] - 1)[None, :, :]
        cols = np.broadcast_to(channel, (tb, tm, tk))
        if (inside & ((pixel < 0) | (pixel >= band.shape[0]))).any() or \
                (cols < 0).any() or (cols >= band.shape[1]).any():
            raise ExecutionError(f"Layer {layer.name!r}: tile {cmd.origin} reads outside its input band")
        values = band[np.broadcast_to(rows, (tb, tm, tk)), cols]
        return np.where(inside[None], values, zp)

    # -- the vector unit -----------------------------------------------------------------------
    def _vector(self, cmd: Vector) -> None:
        layer = self.graph.layer(cmd.layer)
        g = self.graph
        out = g.tensors[layer.outputs[0]]
        lo, hi = cmd.origin, cmd.origin + cmd.extent
        if cmd.extent == 0:
            raise ExecutionError(f"Layer {layer.name!r}: its chunks are byte shares, not runs of elements or "
                                 "channels (not executable)")
        ins = [t for t in layer.inputs if not g.tensors[t].is_constant]
        addrs = [(cmd.input_addr, cmd.input_block), (cmd.second_addr, cmd.second_block)]
        if layer.op is OpKind.CONCAT:  # rows [lo, hi) of input ``part`` into its columns of the output rows
            name = layer.inputs[cmd.part]
            x_t = g.tensors[name]
            _, cols = storage_shape(x_t.shape, image=name in self.images)
            raw = self._read(*addrs[0], (hi - lo) * cols)
            flat = concat_part_codes(g, layer, name, raw.view(_dtype(code_format(x_t))))
        elif layer.op is OpKind.POOL and self.loop_orders[layer.name] == "bands":  # output rows [lo, hi)
            x_t = g.tensors[ins[0]]
            n, c, h, w = x_t.shape
            images = band_images(layer, x_t.shape, out.shape[2], lo, hi)
            start, end = band_span(layer, x_t.shape, out.shape[2], lo, hi, output=False)
            raw = self._read(*addrs[0], (end - start) * w * c).view(_dtype(code_format(x_t))).astype(np.int64)
            # the images' rows from the first band's to the last's; rows no window of [lo, hi) reads
            # stay at the padding's value
            first, count = images[0][0], len(images)
            x = np.full((count * h, w, c), self._unread(layer), dtype=np.int64)
            x[start - first * h:end - first * h] = raw.reshape(end - start, w, c)
            x = x.reshape(count, h, w, c).transpose(0, 3, 1, 2)
            codes = self._pool(layer, x, (count, *out.shape[1:])).transpose(0, 2, 3, 1)  # images x OH x OW x C
            flat = np.concatenate([codes[i - first, a:b].reshape(-1) for i, a, b in images])
        elif layer.op is OpKind.POOL or layer.gemm is not None:  # per channel: all pixels of channels [lo, hi)
            x_t = g.tensors[ins[0]]
            rows, _ = storage_shape(x_t.shape, image=ins[0] in self.images)
            fmt = code_format(x_t)
            raw = self._read(*addrs[0], rows * (hi - lo))
            n, _, h, w = x_t.shape
            x = raw.view(_dtype(fmt)).astype(np.int64).reshape(n, h, w, hi - lo).transpose(0, 3, 1, 2)
            out_shape = (out.shape[0], hi - lo, *out.shape[2:])
            if layer.gemm is not None:
                codes = self._depthwise(layer, cmd, x, lo, hi, out_shape)
            elif layer.attrs.get("global") and layer.attrs["kind"] == "avg":
                codes = global_avg_codes(g, layer, x, requant=self.requant).reshape(out_shape)
            else:
                codes = self._pool(layer, x, out_shape)
            flat = codes.transpose(0, 2, 3, 1).reshape(-1)
        else:  # element-wise: elements [lo, hi) in storage order (a constant operand: the layer's configuration)
            values, streamed = [], iter(addrs)
            for t in layer.inputs:
                if g.tensors[t].is_constant:
                    values.append(self._broadcast_constant(layer, t)[lo:hi])
                    continue
                fmt = code_format(g.tensors[t])
                if g.tensors[t].shape == out.shape:
                    values.append(self._read(*next(streamed), hi - lo).view(_dtype(fmt)).astype(np.int64))
                    continue
                # a broadcast operand: the run of its storage the chunk reads, indexed by the layer's shapes
                shapes = (g.tensors[t].shape, out.shape, lo, hi)
                where = {"image": t in self.images, "out_image": out.name in self.images}
                start, end = broadcast_span(*shapes, **where)
                run = self._read(*next(streamed), end - start).view(_dtype(fmt)).astype(np.int64)
                values.append(run[broadcast_positions(*shapes, **where) - start])
            flat = _elementwise(g, layer, values, self.requant)
        fmt = code_format(out)
        data = flat.astype(_dtype(fmt)).view(np.uint8)
        self.spad[self._spad_offsets(cmd.output_addr, cmd.output_block, data.size)] = data

    def _pool(self, layer: Layer, x: np.ndarray, out_shape: tuple[int, ...]) -> np.ndarray:
        """Windowed pool ``layer`` on ``N x C x H x W`` codes ``x`` (a band's images, or a run of channels)."""
        if layer.attrs["kind"] == "avg":
            return avgpool_codes(self.graph, layer, x, out_shape, requant=self.requant)
        return maxpool_codes(layer, x, out_shape)

    def _unread(self, layer: Layer) -> int:
        """What a band's rows that no window of the chunk reads hold (only the outputs it discards read
        them): a value that never wins a max, the input's zero point for an average."""
        if layer.attrs["kind"] == "avg":
            q = self.graph.tensors[layer.inputs[0]].quant
            assert q is not None
            return int(q.zero_point[0])
        return int(np.iinfo(np.int64).min)

    def _broadcast_constant(self, layer: Layer, name: str) -> np.ndarray:
        """Constant operand ``name`` of element-wise ``layer`` (a bias over the last axis, a scalar) broadcast
        to the layer's output, in its storage order: what the vector unit applies to each element."""
        key = f"{layer.name}/{name}"
        if key not in self._operands:
            out = self.graph.tensors[layer.outputs[0]]
            value = np.asarray(self.graph.tensors[name].value).astype(np.int64)
            self._operands[key] = to_storage(np.broadcast_to(value, out.shape), image=out.name in self.images)
        return self._operands[key]

    def _depthwise(self, layer: Layer, cmd: Vector, x: np.ndarray, lo: int, hi: int,
                   out_shape: tuple[int, ...]) -> np.ndarray:
        """A depthwise convolution of channels ``[lo, hi)`` on the vector unit (weights after the input)."""
        g = self.graph
        conv = conv_geometry(g, layer)
        assert conv is not None
        ops = self._gemm_operands(layer)
        kk = conv.kh * conv.kw
        w = self._read(cmd.second_addr, cmd.second_block, (hi - lo) * kk).view(np.int8).astype(np.int64)
        w = w.reshape(hi - lo, conv.kh, conv.kw) - ops.w_zero_point.reshape(-1)[lo:hi, None, None]
        zp = ops.x_zero_point
        n = x.shape[0]
        pt, pl = conv.pt, conv.pl
        pb = max(0, (conv.oh - 1) * conv.sh + (conv.kh - 1) * conv.dh + 1 - conv.h - pt)
        pr = max(0, (conv.ow - 1) * conv.sw + (conv.kw - 1) * conv.dw + 1 - conv.w - pl)
        padded = np.pad(x - zp, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
        acc = np.zeros((n, hi - lo, conv.oh, conv.ow), dtype=np.int64)
        for i in range(conv.kh):
            for j in range(conv.kw):
                window = padded[:, :, i * conv.dh: i * conv.dh + conv.sh * (conv.oh - 1) + 1: conv.sh,
                                j * conv.dw: j * conv.dw + conv.sw * (conv.ow - 1) + 1: conv.sw]
                acc += window * w[None, :, i, j, None, None]
        acc = acc + ops.bias.reshape(-1)[lo:hi][None, :, None, None]
        acc = wrap_int32(acc)
        if ops.scale is None:
            return acc.reshape(out_shape)
        scale = ops.scale.reshape(-1)[lo:hi][None, :, None, None]
        codes = requantize_array(acc, scale, ops.y_zero_point, mode=self.requant, out_format=ops.out_format)
        return _activate(layer.name, codes, ",".join(layer.attrs.get("fused", ())), ops.y_zero_point).reshape(out_shape)


# -- helpers ---------------------------------------------------------------------------------------

def _dtype(fmt: NumberFormat) -> type:
    return np.int8 if fmt.signed else np.uint8  # 8-bit codes (checked when the machine is built)


def _activate(layer_name: str, codes: np.ndarray, activation: str, zero_point: int) -> np.ndarray:
    """``codes`` through the functions fused into a layer's output (``"relu"``: at least the zero point)."""
    for fn in filter(None, activation.split(",")):
        if fn != "relu":
            raise ExecutionError(f"Layer {layer_name!r}: the fused {fn!r} is not modelled on codes")
        codes = np.maximum(codes, zero_point)
    return codes


def _exact(data: np.ndarray, size: int) -> np.ndarray:
    if data.size != size:
        raise ExecutionError(f"{size} bytes named, {data.size} inside the memory")
    return data


def _elementwise(graph: Graph, layer: Layer, values: list[np.ndarray], mode: Requantization) -> np.ndarray:
    fn = layer.attrs.get("fn")
    if fn == "add":
        return add_codes(graph, layer, values[0], values[1], requant=mode)
    if fn == "mul":
        return mul_codes(graph, layer, values[0], values[1], requant=mode)
    if fn == "relu":
        q = graph.tensors[layer.inputs[0]].quant
        assert q is not None
        return np.maximum(values[0], q.zero_point[0])
    if fn == "sigmoid":  # the layer's lookup table (configuration, as onnxruntime builds it)
        return sigmoid_codes(graph, layer, values[0], requant=mode)
    if fn in ("identity", "passthrough"):
        return values[0]
    raise ExecutionError(f"Layer {layer.name!r}: element-wise {fn!r} is not modelled on codes")


def _widths_unsupported(graph: Graph, layer: Layer) -> str | None:
    """Why ``layer``'s codes do not fit the hardware (``None``: they do): the array and the vector unit
    read and write 8-bit codes (DRAM and the scratchpad hold them as bytes) and the array multiplies
    8-bit weights; 16-bit codes (onnxruntime's QInt16) and int32 results (``ConvInteger``) are not those."""
    for name in (*layer.inputs, *layer.outputs):
        t = graph.tensors[name]
        if t.is_constant or t.dtype in _CODE_DTYPES:
            continue
        role = "output" if name in layer.outputs else "input"
        return f"its {role} {name!r} holds {t.dtype} codes; {_WIDTHS}"
    if layer.gemm is not None and not _two_activations(graph, layer):
        weights = graph.tensors[layer.inputs[1]]
        if weights.dtype not in _CODE_DTYPES:
            return f"its weights {weights.name!r} are {weights.dtype} codes; {_WIDTHS}"
    return None


_CODE_DTYPES = ("int8", "uint8")
_WIDTHS = "functional execution models 8-bit codes (int8, uint8) in and out of every layer and 8-bit weights"


def _unsupported(graph: Graph, layer: Layer, images: frozenset[str]) -> str | None:
    """Why the executor cannot run ``layer`` (``None``: it can)."""
    reason = supported(graph, layer)
    if reason is not None:
        return reason
    if layer.gemm is not None:
        if layer.op is not OpKind.CONV:
            reason = _matrices_unsupported(graph, layer, images)
            if reason is not None:
                return reason
        if _two_activations(graph, layer):
            return None
        if layer.op is OpKind.CONV and conv_geometry(graph, layer) is None:
            return "a convolution without its geometry"
        ops = gemm_operands(graph, layer)
        if np.any(ops.w_zero_point != 0):
            return "asymmetric weights (a weight zero point) are not modelled"
        return None
    if layer.op is OpKind.POOL:
        if layer.attrs.get("kind") not in ("max", "avg"):
            return f"{layer.attrs.get('kind')} pooling is not modelled"
        return None
    if layer.op is OpKind.CONCAT:
        if any(graph.tensors[t].is_constant for t in layer.inputs):
            return "a concatenation with a constant operand is not modelled yet"
        if chunking(graph, layer, layer.inputs, 0) == ("", 0):  # not runs of the storage's rows
            out = graph.tensors[layer.outputs[0]]
            return (f"a concatenation along axis {int(layer.attrs.get('axis', 1)) % len(out.shape)} of {out.shape} "
                    "is not modelled (only along an image's channels, or the last axis of another tensor)")
        return None
    if layer.op in (OpKind.ELEMENTWISE, OpKind.ACTIVATION) and layer.attrs.get("fn") in _VECTOR_FUNCTIONS:
        return _elementwise_unsupported(graph, layer)
    return f"no functional model of {layer.source_op or layer.op.value} yet"


_VECTOR_FUNCTIONS = ("add", "mul", "relu", "sigmoid")  # the element-wise functions the vector unit runs on codes


def _mode_unsupported(graph: Graph, layer: Layer, mode: Requantization) -> str | None:
    """Why the executor cannot run ``layer`` in requantization ``mode`` (:mod:`sim.reference` models a
    quantized multiply in onnxruntime's mode only, an add in that and the TFLite modes)."""
    if _float_average(graph, layer) and mode is not Requantization.FLOAT32_HALF_EVEN:
        return f"a windowed average pool is modelled in float32-half-even mode only, not the design's {mode.value}"
    fn = layer.attrs.get("fn") if layer.op in (OpKind.ELEMENTWISE, OpKind.ACTIVATION) else None
    if fn == "sigmoid" and mode is not Requantization.FLOAT32_HALF_EVEN:
        return f"a quantized sigmoid is modelled in float32-half-even mode only, not the design's {mode.value}"
    if fn == "mul" and mode is not Requantization.FLOAT32_HALF_EVEN:
        return f"a quantized multiply is modelled in float32-half-even mode only, not the design's {mode.value}"
    if fn == "add" and mode is Requantization.DYADIC:
        return "a quantized add is modelled in the float32-half-even and TFLite modes, not the design's dyadic"
    return None


def _float_average(graph: Graph, layer: Layer) -> bool:
    """Whether ``layer`` is an average pool onnxruntime computes in float32 (a window smaller than its
    input, or padded; a window over the whole input is the global pool's integer kernel)."""
    if layer.op is not OpKind.POOL or layer.attrs.get("kind") != "avg" or layer.attrs.get("global"):
        return False
    return float_average(layer, graph.tensors[layer.inputs[0]].shape)


def _elementwise_unsupported(graph: Graph, layer: Layer) -> str | None:
    """Why the executor cannot run element-wise ``layer`` (``None``: it can): its chunks are runs of
    elements in storage order, so each activation operand has the output's shape; a constant operand (an
    add's or a multiply's, broadcast to the output: a bias over the last axis, a scalar scale) is the
    layer's configuration, as the requantizer's bias and scales are."""
    fn = layer.attrs["fn"]
    out = graph.tensors[layer.outputs[0]]
    for t in (graph.tensors[name] for name in layer.inputs):
        if not t.is_constant:
            if t.shape != out.shape and (fn not in ("add", "mul") or len(layer.inputs) != 2
                                         or not broadcasts(t.shape, out.shape)):
                return (f"an element-wise {fn} whose operand {t.name!r} of shape {t.shape} broadcasts to "
                        f"{out.shape} is not modelled (only a binary add's or multiply's operand may)")
            continue
        if fn in ("relu", "sigmoid"):
            return f"a {fn} with a constant operand is not modelled"
        if t.value is None:
            return f"its constant operand {t.name!r} has no values"
        if not broadcasts(t.shape, out.shape):
            return f"its constant operand {t.name!r} of shape {t.shape} does not broadcast to {out.shape}"
    if all(graph.tensors[name].is_constant for name in layer.inputs):
        return f"an element-wise {fn} of constants only"
    return None




def _two_activations(graph: Graph, layer: Layer) -> bool:
    """Whether ``layer`` is a matmul of two activations (its second operand computed, not constant)."""
    return layer.op is OpKind.MATMUL and not graph.tensors[layer.inputs[1]].is_constant


def _matrices_unsupported(graph: Graph, layer: Layer, images: frozenset[str]) -> str | None:
    """Why the executor cannot run GEMM or matmul ``layer`` (``None``: it can): its tiles read the
    ``batch x m x k`` input (and a matmul of two activations the ``batch x k x n`` second operand) and
    write the ``batch x m x n`` output as row-major matrices, so these tensors must be stored so."""
    g = layer.gemm
    assert g is not None
    x, second = (graph.tensors[t] for t in layer.inputs[:2])
    out = graph.tensors[layer.outputs[0]]
    matrices = [x, out]
    if _two_activations(graph, layer):
        if x.elements != g.batch * g.m * g.k or second.elements != g.batch * g.k * g.n:
            return (f"a matmul whose operands broadcast ({x.shape} x {second.shape}) is not modelled; each "
                    "tile reads its own batch of both")
        if code_format(second).bits != 8:
            return f"operand {second.name!r} holds {code_format(second).name} codes; the array multiplies 8-bit codes"
        matrices.insert(1, second)
        x_view = _operand_view(graph, layer, 0)
        if x_view is not None and x_view.transposed:
            return f"its first operand {x.name!r} views its source transposed (a read not modelled)"
        # an operand read through its views (mapper.layout.matrix_view): the source's storage is accounted for
        matrices = [t for i, t in enumerate(matrices) if i == len(matrices) - 1 or
                    _operand_view(graph, layer, i) is None]
    for t in matrices:
        if not row_major(t.shape, image=t.name in images):
            return (f"tensor {t.name!r} of shape {t.shape} is stored channels-last, not as the row-major matrix "
                    "the layer's tiles read and write")
    return None


def _operand_view(graph: Graph, layer: Layer, index: int) -> MatrixView | None:
    """How matmul-of-two-activations ``layer`` reads operand ``index`` through the views of a stored tensor
    (:func:`mapper.layout.matrix_view`, as the mapper's operands do), ``None`` if it reads it as stored."""
    g = layer.gemm
    if g is None or not _two_activations(graph, layer):
        return None
    rows, cols = (g.m, g.k) if index == 0 else (g.k, g.n)
    return matrix_view(graph, layer.inputs[index], g.batch, rows, cols)


def _read_through(graph: Graph, layer: Layer) -> bool:
    """Whether every reader of view ``layer``'s output reads the bytes of the tensor it views instead: a
    matmul that reads it through (:func:`_operand_view`), or a view read through itself."""
    y = graph.tensors[layer.outputs[0]]
    if not y.consumers or y.name in {t.name for t in graph.outputs}:
        return False
    for name in y.consumers:
        reader = graph.layer(name)
        if reader.op.is_view:
            if not _read_through(graph, reader):
                return False
        elif not any(t == y.name and _operand_view(graph, reader, i) is not None
                     for i, t in enumerate(reader.inputs[:2])):
            return False
    return True


def _check_view(graph: Graph, layer: Layer, images: frozenset[str]) -> None:
    """A view costs no command, so its output must be its input's bytes in the output's storage order."""
    x = graph.tensors[layer.inputs[0]]
    y = graph.tensors[layer.outputs[0]]
    if x.is_constant:
        return
    probe = np.arange(x.elements).reshape(x.shape)
    if layer.attrs.get("fn") == "transpose":
        viewed = np.transpose(probe, layer.attrs["perm"])
    else:
        viewed = probe.reshape(y.shape)
    stored = to_storage(probe, image=x.name in images)
    if not np.array_equal(stored, to_storage(viewed, image=y.name in images)) and not _read_through(graph, layer):
        raise ExecutionError(f"Layer {layer.name!r} ({layer.source_op or layer.op.value}) reorders bytes in "
                             "storage order (mapper.layout) and the mapper emits no copy for it; only a matmul's "
                             "second operand is read through a transpose of its last two axes (not executable yet)")


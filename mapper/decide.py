"""Per-layer decisions, made before any command is written: how each layer of a schedule runs.

:func:`decide_layers` turns a schedule (layers in order), each layer's working space and the
tensors kept on chip (a :class:`~mapper.residency.Residency`) into one :class:`LayerDecision` per
layer; :func:`mapper.emit.emit_program` then only writes the commands those decisions say.
:func:`working_space` picks, per layer, how much of the scratchpad it tiles in when it shares it.

Array layers (conv, GEMM, matmul) take the mapping :func:`mapper.search.search_gemm` finds in the
layer's working space, in one of two loop orders (:class:`~mapper.options.LoopOrder`):

``tile-outer``
    output tiles ``b x m x n`` outermost, the reduction ``k`` innermost, accumulating in the
    accumulator memory. Every tile pays its folds' full fill and drain.
``fold-outer``
    SCALE-Sim's order: the stationary operand is folded onto the array one ``R x C`` fold at a time
    and the streamed operand flows through in chunks that fit the scratchpad; a fold pays its fill
    once (first chunk) and its drain once (last chunk), so a layer's compute cycles are exactly
    ``folds x (fill + stream + drain)`` however its stream is chunked. When a weight- or
    input-stationary layer's partial sums do not fit the accumulator, they are stored to DRAM after
    one fold and loaded back for the next (32-bit partial-sum traffic).
``auto``
    per layer, the better of the two for the objective.

Half of the working space holds one tile's operands while the other half is being filled (double
buffering); the accumulator is split the same way for outputs. Bytes moved for an input tile are the
block of the input it reads (:mod:`mapper.layout`): for a GEMM its ``tm x tk`` share, for a
convolution the band of input rows and channels its windows cover (halo included, never the im2col
copy), priced at the largest band a tile of its size can need. Outputs are written once in the
input number format (the accumulator's read path requantizes).

**N:M weights** (:func:`operands`) run natively on a weight-stationary array that lists the pattern:
the array computes the compressed reduction ``ceil(k/M) x N``, each of its input elements standing
for ``M/N`` input bytes and each weight carrying its index bits; anything else runs the layer dense.

Vector layers run in chunks that fit half of the working space, streaming the operands that are not
resident. Depthwise convolutions run on the array or on the vector unit
(:class:`~mapper.options.Depthwise`; ``auto`` picks the better estimate). Concatenations are copies
through the vector unit (one element operation per output element); views (reshape, flatten,
transpose, pass-through) cost nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

from accel.errors import MappingError
from accel.hardware import Accelerator, Dataflow
from accel.timing import ceil_div
from mapper.layout import MatrixView, broadcasts, conv_geometry, image_tensors, matrix_view, storage_shape
from mapper.options import Depthwise, LoopOrder, MapOptions
from mapper.plan import LayerMapping
from mapper.residency import Residency
from mapper.schedules import Operands, largest, step_count
from mapper.search import INFEASIBLE, Choice, Cost, roofline_cycles, search_gemm, vector_cost
from workloads.graph import GemmShape, Graph, Layer, OpKind

__all__ = ["MAX_COMMANDS", "check_command_count",
           "ArrayDecision", "VectorDecision", "ViewDecision", "LayerDecision", "decide_layers", "working_space",
           "layer_estimate", "operands"]


@dataclass(frozen=True)
class ArrayDecision:
    """An array layer: the mapping ``choice`` of its ``operands`` (as the chosen dataflow runs them),
    tiled in the top ``working_bytes`` of the scratchpad."""

    layer: Layer
    working_bytes: int
    choice: Choice
    operands: Operands
    mapping: LayerMapping


@dataclass(frozen=True)
class VectorDecision:
    """A vector layer (``macs`` > 0: a depthwise convolution) in ``chunks`` chunks of the top
    ``working_bytes`` of the scratchpad: ``ops`` element operations over ``inputs`` and the layer's
    outputs, of which the ``streamed_*`` ones go through DRAM (the rest are resident at its step)."""

    layer: Layer
    working_bytes: int
    macs: int
    ops: int
    inputs: tuple[str, ...]
    size_bytes: Mapping[str, int]  # of every input and output
    streamed_in: tuple[str, ...]
    streamed_out: tuple[str, ...]
    chunks: int
    mapping: LayerMapping
    # what a chunk is a run of (:func:`chunking`): ``total`` elements of the tensors in storage order,
    # or ``total`` channels; ``total == 0``: equal shares of each operand's bytes (timing only)
    chunk_axis: str = ""
    chunk_total: int = 0

    def piece(self, i: int) -> tuple[int, int]:
        """``[lo, hi)`` of chunk ``i`` along :attr:`chunk_axis` (``(0, 0)`` without one)."""
        if not self.chunk_total:
            return 0, 0
        return self.chunk_total * i // self.chunks, self.chunk_total * (i + 1) // self.chunks


@dataclass(frozen=True)
class ViewDecision:
    """A layer without work (a view): no commands; its outputs are ready when its inputs are.
    ``working_bytes`` is ``None`` for a view proper (the working region stays as it was)."""

    layer: Layer
    mapping: LayerMapping
    working_bytes: int | None = None


LayerDecision = ArrayDecision | VectorDecision | ViewDecision

#: The most compute commands one plan may hold: decisions that need more are refused before any
#: command is emitted (a scratchpad of a few bytes, or a layer of 10^18 MACs, would otherwise emit and
#: simulate for hours). GPT-2 prefill on gemmini has about 90,000 computes (260,000 commands).
MAX_COMMANDS = 2_000_000


def check_command_count(graph: Graph, arch: Accelerator, decisions: Sequence[LayerDecision]) -> None:
    """Raise :class:`MappingError` if ``decisions`` need more than :data:`MAX_COMMANDS` computes in
    all (counted in closed form: :func:`mapper.schedules.step_count`, a vector layer's chunks)."""
    steps = {d.layer.name: step_count(d.operands, d.choice.plan, d.choice.dataflow) for d in decisions
             if isinstance(d, ArrayDecision)}
    steps |= {d.layer.name: d.chunks for d in decisions if isinstance(d, VectorDecision)}
    total = sum(steps.values())
    if total > MAX_COMMANDS:
        worst = max(steps, key=steps.__getitem__)
        half = min((d.working_bytes for d in decisions if not isinstance(d, ViewDecision)), default=0) // 2
        raise MappingError(
            f"{graph.name!r} on {arch.name}: its mapping needs {total:,} compute commands ({half:,} B of "
            f"scratchpad per buffer; layer {worst!r} alone {steps[worst]:,}), more than {MAX_COMMANDS:,}, the "
            "most a plan may hold; use a larger scratchpad or array, or a smaller workload")


def decide_layers(graph: Graph, arch: Accelerator, options: MapOptions, *, order: Sequence[str] | None = None,
                  working_bytes: Mapping[str, int] | None = None,
                  residency: Residency | None = None) -> tuple[LayerDecision, ...]:
    """How each layer of ``graph`` runs on ``arch``, in schedule order.

    ``order`` is the schedule (default: the graph's order); ``working_bytes`` the scratchpad bytes
    each layer may tile in (default: all of it); ``residency`` the tensors kept on chip between
    layers (default: none). The mapping choices come from ``options`` (its allocator is not used here).
    """
    if options.dataflow is not None and options.dataflow not in arch.array.dataflows:
        supported = ", ".join(d.value for d in arch.array.dataflows)
        raise MappingError(f"{arch.name} supports dataflows {supported}, not {options.dataflow.value}")
    layers = graph.layers if order is None else _ordered(graph, order)
    if residency is not None and tuple(residency.problem.steps) != tuple(layer.name for layer in layers):
        raise MappingError(f"The allocation of {graph.name!r} was made for another schedule than the one lowered")
    size = arch.scratchpad.size_bytes
    decisions: list[LayerDecision] = []
    for step, layer in enumerate(layers):
        if layer.op.is_view:
            decisions.append(ViewDecision(layer, LayerMapping(layer.name, layer.op, 0)))
            continue
        budget = size if working_bytes is None else working_bytes.get(layer.name, size)
        if not 0 < budget <= size:
            raise MappingError(f"Working space of step {step} must be 1..{size} B (the scratchpad), not {budget}")
        half = budget // 2
        if layer.gemm is not None and _is_depthwise(layer) and options.depthwise is not Depthwise.ARRAY and (
                options.depthwise is Depthwise.VECTOR or _vector_is_better(graph, arch, layer, options, half)):
            decisions.append(_vector_decision(graph, arch, layer, budget, layer.macs, residency, step))
        elif layer.gemm is not None:
            decisions.append(_array_decision(graph, arch, layer, budget, options))
        elif layer.op.uses_vector_unit or layer.op is OpKind.CONCAT:
            decisions.append(_vector_decision(graph, arch, layer, budget, 0, residency, step))
        else:
            decisions.append(ViewDecision(layer, LayerMapping(layer.name, layer.op, 0), budget))
    return tuple(decisions)


def working_space(graph: Graph, arch: Accelerator, options: MapOptions, *, knee: float) -> dict[str, int]:
    """Per non-view layer, the scratchpad bytes it tiles in when it shares the scratchpad.

    The smallest of ``size, size/2, size/4, ...`` (and not below the layer's minimal working set,
    :func:`mapper.lifetimes.default_reserved_bytes`) whose datasheet estimate (cycles) and DRAM
    traffic are both within ``knee`` (a fraction) of the layer's with the whole scratchpad, in at
    most twice as many tiles (commands cost simulation time and issue slots too).
    """
    from mapper.lifetimes import default_reserved_bytes

    size = arch.scratchpad.size_bytes
    working = {}
    for layer in graph.layers:
        if layer.op.is_view:
            continue
        floor = sum(default_reserved_bytes(layer, graph, arch).values())
        best = layer_estimate(graph, arch, layer, size, options)
        budget, candidate = size, size // 2
        while candidate >= max(floor, 2):
            cost = layer_estimate(graph, arch, layer, candidate, options)
            if cost.cycles > best.cycles * (1 + knee) or cost.dram_bytes > best.dram_bytes * (1 + knee) \
                    or cost.steps > 2 * max(best.steps, 1):
                break
            budget, candidate = candidate, candidate // 2
        working[layer.name] = max(budget, min(floor, size))
    return working


def layer_estimate(graph: Graph, arch: Accelerator, layer: Layer, budget: int, options: MapOptions) -> Cost:
    """The datasheet estimate of ``layer`` tiled in ``budget`` bytes (infinite when it does not fit)."""
    half = budget // 2
    try:
        if layer.gemm is not None:
            if _is_depthwise(layer) and options.depthwise is Depthwise.VECTOR:
                return _vector_cost(graph, arch, layer, layer.macs, half)
            cost = _choice(graph, arch, layer, options, half).cost
            if _is_depthwise(layer) and options.depthwise is Depthwise.AUTO:
                cost = min(cost, _vector_cost(graph, arch, layer, layer.macs, half),
                           key=lambda c: c.key(options.objective))
            return cost
        if layer.op.uses_vector_unit or layer.op is OpKind.CONCAT:
            return _vector_cost(graph, arch, layer, 0, half)
        return Cost(0.0, 0.0, 0.0)
    except MappingError:
        return INFEASIBLE


def operands(graph: Graph, arch: Accelerator, layer: Layer, dataflow: Dataflow) -> Operands:
    """The operands of array layer ``layer`` as ``dataflow`` runs them (N:M: see the module docstring)."""
    gemm = layer.gemm
    assert gemm is not None
    in_bytes, w_bytes = arch.array.input_format.size_bytes, arch.array.weight_format.size_bytes
    acc_bytes = arch.array.accumulator_format.size_bytes
    activations = [t for t in layer.inputs if not graph.tensors[t].is_constant]
    weights = [t for t in layer.inputs if graph.tensors[t].is_constant]
    if not activations:
        raise MappingError(f"Layer {layer.name!r}: a {layer.op.value} layer needs an activation input")
    w = activations[1] if len(activations) > 1 else (weights[0] if weights else None)
    x_bytes = graph.tensors[activations[0]].elements * in_bytes
    # a strided convolution's input is bigger than its GEMM's m x k: tiles carry their share of it
    x_rate = Fraction(x_bytes, gemm.batch * gemm.m * gemm.k)
    conv = conv_geometry(graph, layer)
    nm = layer.sparsity
    # N:M runs natively on a weight-stationary array that lists the pattern (the sparse PEs hold
    # each group's kept weights and indices); anything else runs the layer dense.
    if nm is None or nm not in arch.array.sparsity or w not in weights or dataflow is not Dataflow.WS:
        return Operands(x=activations[0], w=w, out=layer.outputs[0], gemm=gemm, x_bytes=x_bytes,
                        in_bytes=max(Fraction(in_bytes), x_rate), w_bytes=Fraction(w_bytes), x_rate=x_rate,
                        out_bytes=in_bytes, acc_bytes=acc_bytes, conv=conv, dense_k=gemm.k, x_word=in_bytes,
                        **_operand_views(graph, layer, w))
    compressed = GemmShape(gemm.m, ceil_div(gemm.k, nm.m) * nm.n, gemm.n, gemm.batch)
    return Operands(x=activations[0], w=w, out=layer.outputs[0], gemm=compressed, x_bytes=x_bytes,
                    in_bytes=max(Fraction(in_bytes * nm.m, nm.n),
                                 Fraction(x_bytes, gemm.batch * gemm.m * compressed.k)),
                    w_bytes=w_bytes + Fraction(nm.index_bits, 8), out_bytes=in_bytes,
                    acc_bytes=acc_bytes, sparsity=nm, w_value_bytes=w_bytes, conv=conv, dense_k=gemm.k,
                    x_word=in_bytes)


# -- one layer -----------------------------------------------------------------------------------

_LOOP_ORDERS = {LoopOrder.AUTO: ("tile-outer", "fold-outer"), LoopOrder.TILE_OUTER: ("tile-outer",),
                LoopOrder.FOLD_OUTER: ("fold-outer",)}


def _choice(graph: Graph, arch: Accelerator, layer: Layer, options: MapOptions, half_spad: int,
            by_dataflow: tuple[tuple[Dataflow, Operands], ...] | None = None) -> Choice:
    """The best mapping of array layer ``layer`` with ``half_spad`` bytes per scratchpad half
    (``by_dataflow``: the layer's :func:`_dataflow_operands`, when the caller has them)."""
    try:
        return search_gemm(arch, by_dataflow or _dataflow_operands(graph, arch, layer, options),
                           loop_orders=_LOOP_ORDERS[options.loop_order], half_spad=half_spad,
                           half_acc=arch.accumulator.size_bytes // 2, objective=options.objective,
                           keep=options.keep_operands)
    except MappingError as e:
        raise MappingError(f"Layer {layer.name!r}: {e}") from None


def _dataflow_operands(graph: Graph, arch: Accelerator, layer: Layer,
                       options: MapOptions) -> tuple[tuple[Dataflow, Operands], ...]:
    """The operands of array layer ``layer`` as each dataflow the search considers runs them."""
    dataflows = [options.dataflow] if options.dataflow is not None else list(arch.array.dataflows)
    return tuple((d, operands(graph, arch, layer, d)) for d in dataflows)


def _array_decision(graph: Graph, arch: Accelerator, layer: Layer, budget: int, options: MapOptions) -> ArrayDecision:
    by_dataflow = _dataflow_operands(graph, arch, layer, options)
    choice = _choice(graph, arch, layer, options, budget // 2, by_dataflow)
    ops = dict(by_dataflow)[choice.dataflow]
    g = ops.gemm
    compulsory = ops.x_bytes + (ops.w_size(g.batch, g.k, g.n) if ops.w is not None else 0) \
        + g.batch * g.m * g.n * ops.out_bytes
    mapping = LayerMapping(layer.name, layer.op, layer.macs, choice.dataflow, choice.tile, choice.order,
                           choice.cost.steps, layer.gemm, sparsity=ops.sparsity, estimate_cycles=choice.cost.cycles,
                           estimate_energy_pj=choice.cost.energy_pj,
                           roofline_cycles=roofline_cycles(arch, layer.macs, compulsory),
                           candidates=choice.evaluated, pareto=choice.pareto)
    return ArrayDecision(layer, budget, choice, ops, mapping)


def _vector_work(graph: Graph, layer: Layer, macs: int) -> tuple[list[str], int]:
    """The tensors a vector layer reads (weights too for a depthwise convolution or a concat of
    constants) and its element operations (one per output element for a concat)."""
    inputs = [t for t in layer.inputs if macs or layer.op is OpKind.CONCAT or not graph.tensors[t].is_constant]
    return inputs, max(macs or layer.vector_ops or graph.tensors[layer.outputs[0]].elements, 1)


def _vector_cost(graph: Graph, arch: Accelerator, layer: Layer, macs: int, half_spad: int) -> Cost:
    inputs, ops = _vector_work(graph, layer, macs)
    in_bytes = arch.array.input_format.size_bytes
    sizes = [graph.tensors[t].elements * in_bytes for t in (*inputs, *layer.outputs)]
    return vector_cost(arch, ops, sizes, half_spad)


def _vector_is_better(graph: Graph, arch: Accelerator, layer: Layer, options: MapOptions, half_spad: int) -> bool:
    """Whether a depthwise layer on the vector unit beats its best array mapping (by the objective)."""
    array = _choice(graph, arch, layer, options, half_spad).cost
    vector = _vector_cost(graph, arch, layer, layer.macs, half_spad)
    return vector.key(options.objective) < array.key(options.objective)


def _vector_decision(graph: Graph, arch: Accelerator, layer: Layer, budget: int, macs: int,
                     residency: Residency | None, step: int) -> VectorDecision:
    inputs, ops = _vector_work(graph, layer, macs)
    in_bytes = arch.array.input_format.size_bytes
    size = {t: graph.tensors[t].elements * in_bytes for t in (*inputs, *layer.outputs)}

    def streamed(tensor: str) -> bool:
        return residency is None or residency.place(tensor, step) is None

    streamed_in = tuple(t for t in inputs if streamed(t))
    streamed_out = tuple(t for t in layer.outputs if streamed(t))
    moved_sizes = [size[t] for t in (*streamed_in, *streamed_out)]
    moved = sum(moved_sizes)
    half = budget // 2
    chunks = _share_chunks(moved_sizes, half)
    axis, total = chunking(graph, layer, inputs, macs)
    if axis == "bands" and moved:
        x, out = graph.tensors[inputs[0]], graph.tensors[layer.outputs[0]]
        rows_in, rows_out = x.shape[0] * x.shape[2], out.shape[0] * out.shape[2]
        chunks = _band_chunks(layer, x.shape, out.shape, size[x.name] // rows_in if x.name in streamed_in else 0,
                              size[out.name] // rows_out if out.name in streamed_out else 0, half)
        if not chunks:  # not one row's band fits: runs of channels, all pixels of each
            axis, total, chunks = "channels", storage_shape(out.shape)[1], _share_chunks(moved_sizes, half)
    if axis != "bands" and total and moved:
        # the largest chunk (ceil(total / chunks) of the runs, and the whole of each broadcast operand
        # it reads a run of) must fit half the working space
        fixed = _broadcast_bytes(graph, layer, streamed_in, size) if axis == "elements" else 0
        per_run, room = Fraction(moved - fixed, total), half - fixed
        runs = 0
        if not per_run and room >= 0:  # only broadcast operands move: any run fits with them
            runs = total
        elif 0 < per_run <= room:
            runs = int(room // per_run)
        chunks = ceil_div(total, runs) if runs else chunks
        if chunks > total or not runs:
            axis, total, chunks = "", 0, _share_chunks(moved_sizes, half)
    mapping = LayerMapping(layer.name, layer.op, macs, tiles=chunks, gemm=layer.gemm,
                           loop_order="vector" if macs else "bands" if axis == "bands" else "")
    return VectorDecision(layer, budget, macs, ops, tuple(inputs), size, streamed_in, streamed_out, chunks, mapping,
                          axis, total)


def _operand_views(graph: Graph, layer: Layer, w: str | None) -> dict[str, MatrixView | None]:
    """A matmul of two activations reads an operand that views a stored tensor through the views
    (:func:`mapper.layout.matrix_view`): ``x_view`` and ``w_view`` of its :class:`Operands`."""
    g = layer.gemm
    if layer.op is not OpKind.MATMUL or g is None or w is None or graph.tensors[w].is_constant:
        return {}
    return {"x_view": matrix_view(graph, layer.inputs[0], g.batch, g.m, g.k),
            "w_view": matrix_view(graph, w, g.batch, g.k, g.n)}


def chunking(graph: Graph, layer: Layer, inputs: Sequence[str], macs: int) -> tuple[str, int]:
    """What the chunks of vector layer ``layer`` run along: ``("elements", E)`` for an element-wise layer
    whose operands all have its output's shape (runs of its tensors in storage order), ``("bands", N OH)``
    for a (windowed) pool of ``N`` images: runs of their output rows one image after another, each
    reading the input rows its windows cover (:func:`pool_band`), all channels: contiguous bytes in
    channels-last storage (:func:`_band_chunks` keeps a chunk to whole images or to rows of one);
    ``("channels", C)`` for a global pool or a depthwise convolution (all pixels of a run of channels),
    ``("rows", R)`` for a concatenation along the storage's columns (channels of an image; the last
    axis otherwise) of tensors with its output's ``R`` storage rows (runs of whole rows), else
    ``("", 0)``."""
    out = graph.tensors[layer.outputs[0]]
    if layer.op is OpKind.CONCAT:
        images = image_tensors(graph)
        rows, _ = storage_shape(out.shape, image=out.name in images)
        axis = int(layer.attrs.get("axis", 1)) % len(out.shape)
        columns = 1 if len(out.shape) == 4 and out.name in images else len(out.shape) - 1
        if axis == columns and all(storage_shape(graph.tensors[t].shape, image=t in images)[0] == rows
                                   for t in inputs):
            return "rows", rows
        return "", 0
    if layer.op in (OpKind.ELEMENTWISE, OpKind.ACTIVATION):
        if any(graph.tensors[t].shape != out.shape for t in inputs) and not _broadcast_read(graph, layer, inputs):
            return "", 0
        return "elements", out.elements
    if layer.op is OpKind.POOL or macs:
        if any(len(graph.tensors[t].shape) != len(out.shape) for t in inputs if not graph.tensors[t].is_constant):
            return "", 0
        if layer.op is OpKind.POOL and not layer.attrs.get("global") and len(out.shape) == 4 \
                and out.name in image_tensors(graph):
            return "bands", out.shape[0] * out.shape[2]
        return "channels", storage_shape(out.shape)[1]
    return "", 0


def _broadcast_read(graph: Graph, layer: Layer, inputs: Sequence[str]) -> bool:
    """Whether element-wise ``layer`` is a binary add or multiply whose operands broadcast to its output:
    the vector unit reads a broadcast operand by the layer's shapes, each chunk of output elements the
    run of it they combine with (:func:`mapper.layout.broadcast_span`)."""
    if layer.attrs.get("fn") not in ("add", "mul") or len(layer.inputs) != 2:
        return False
    out = graph.tensors[layer.outputs[0]].shape
    return all(broadcasts(graph.tensors[t].shape, out) for t in inputs)


def _broadcast_bytes(graph: Graph, layer: Layer, tensors: Sequence[str], size: dict[str, int]) -> int:
    """Bytes of the broadcast operands among ``tensors`` (of an element-wise layer chunked by elements):
    at most the whole of each, every chunk."""
    out = graph.tensors[layer.outputs[0]].shape
    return sum(size[t] for t in tensors if graph.tensors[t].shape != out)


def pool_band(layer: Layer, in_shape: Sequence[int], lo: int, hi: int) -> tuple[int, int]:
    """Input rows ``[r0, r1)`` of one image that its output rows ``[lo, hi)`` of pool ``layer`` read
    (its windows' rows, clipped to the input's ``N x C x H x W``)."""
    kh, _ = layer.attrs["kernel"]
    sh, _ = layer.attrs["stride"]
    dh = layer.attrs.get("dilation", (1, 1))[0]
    pt = layer.attrs["padding"][0]
    return max(0, lo * sh - pt), min(in_shape[2], (hi - 1) * sh - pt + (kh - 1) * dh + 1)


def band_images(layer: Layer, in_shape: Sequence[int], out_rows: int, lo: int, hi: int) -> list[tuple[int, int, int]]:
    """``(image, first output row, end output row)`` of each image a band chunk ``[lo, hi)`` of the
    images' output rows one after another (``out_rows`` an image) covers."""
    return [(n, max(lo, n * out_rows) - n * out_rows, min(hi, (n + 1) * out_rows) - n * out_rows)
            for n in range(lo // out_rows, ceil_div(hi, out_rows))]


def band_span(layer: Layer, in_shape: Sequence[int], out_rows: int, lo: int, hi: int, *,
              output: bool) -> tuple[int, int]:
    """Rows ``[start, end)`` of the images' rows one after another (``image x H + row``) that band chunk
    ``[lo, hi)`` of pool ``layer`` writes (``output``) or reads (its windows' input rows): whole
    images, or rows of one, so one contiguous run (:func:`_band_chunks`)."""
    images = band_images(layer, in_shape, out_rows, lo, hi)
    rows = [(n, a, b) if output else (n, *pool_band(layer, in_shape, a, b)) for n, a, b in images]
    height = out_rows if output else in_shape[2]
    return rows[0][0] * height + rows[0][1], rows[-1][0] * height + rows[-1][2]


def _band_chunks(layer: Layer, x_shape: Sequence[int], out_shape: Sequence[int], in_bytes: int, out_bytes: int,
                 half: int) -> int:
    """Chunks of a pool's output rows (:func:`chunking`'s ``"bands"``) whose input band (``in_bytes``
    an input row, 0: resident) and output rows (``out_bytes`` a row) fit ``half`` bytes: whole images
    (a divisor of the batch), or equal runs of each image's rows; 0 when not one row fits."""
    n, oh = out_shape[0], out_shape[2]
    sh, kh, dh = layer.attrs["stride"][0], layer.attrs["kernel"][0], layer.attrs.get("dilation", (1, 1))[0]

    def fits(rows: int) -> bool:  # any run of that many output rows of an image, with its band at its largest
        return min(x_shape[2], (rows - 1) * sh + (kh - 1) * dh + 1) * in_bytes + rows * out_bytes <= half
    rows = largest(fits, oh)
    if rows < oh:
        return n * ceil_div(oh, rows) if rows >= 1 else 0
    image = x_shape[2] * in_bytes + oh * out_bytes
    return next(d for d in range(1, n + 1) if n % d == 0 and (n // d) * image <= half or d == n)


def _share_chunks(sizes: Sequence[int], half: int) -> int:
    """The fewest chunks in which equal shares of every operand (each rounded up, as
    :func:`mapper.schedules.share` gives them) fit ``half`` bytes together."""
    chunks = max(1, ceil_div(sum(sizes), max(half, 1)))
    while half > 0 and sum(ceil_div(s, chunks) for s in sizes) > half and chunks < max(sizes, default=1):
        chunks += 1
    return chunks


def _ordered(graph: Graph, order: Sequence[str]) -> tuple[Layer, ...]:
    by_name = {layer.name: layer for layer in graph.layers}
    unknown = [name for name in order if name not in by_name]
    if unknown or len(order) != len(by_name) or len(set(order)) != len(order):
        raise MappingError(f"A schedule of {graph.name!r} must list each of its {len(by_name)} layers once "
                           f"(unknown: {unknown[:3]})")
    return tuple(by_name[name] for name in order)


def _is_depthwise(layer: Layer) -> bool:
    return layer.gemm is not None and layer.gemm.batch > 1 and layer.gemm.n == 1 and layer.op is OpKind.CONV

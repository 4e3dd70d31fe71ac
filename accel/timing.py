"""The timing datasheet: cycles of one command on one unit, as pure functions of the hardware.

The mapper uses these as its cost model and the simulator charges exactly these cycles per command,
adding only what a single command cannot know (contention, dependencies, overlap). So the two never
disagree about one command.

Systolic GEMM tile ``m x k @ k x n`` on an ``R x C`` array. The stationary operand is folded onto the
array in ``R x C`` pieces; each fold costs a preload / fill / drain overhead plus the streaming
length, and folds run back to back:

==========  =====================  ===================  ==========================
dataflow    array rows x cols      streams              folds
==========  =====================  ===================  ==========================
WS          k x n (weights)        m input rows         ceil(k/R) * ceil(n/C)
OS          m x n (outputs)        k reduction steps    ceil(m/R) * ceil(n/C)
IS          k x m (inputs)         n weight columns     ceil(k/R) * ceil(m/C)
==========  =====================  ===================  ==========================

One fold costs a fill overhead, the streaming length ``S`` and a drain overhead:

* WS and IS: ``R`` cycles to preload the stationary operand, ``R - 1`` cycles of input skew, then
  ``S`` streaming cycles, then ``C - 1`` cycles for the last partial sum to cross the array:
  ``2R + C + S - 2`` per fold;
* OS: nothing to preload: ``R - 1`` cycles of skew, ``S`` reduction steps, ``C - 1`` to drain:
  ``R + C + S - 2`` per fold.

**Double-buffered weights** (``array.weight_buffers = 2``, WS and IS; TPU v1: "the weights are
preloaded, and take effect with the advancing wave alongside the first data of a new block",
Jouppi et al., ISCA 2017; Gemmini's PEs likewise hold two weights): each PE has a second register
for the stationary operand, so fold ``g + 1``'s ``R`` weight rows shift into it while fold ``g``
streams, and fold ``g + 1``'s inputs follow fold ``g``'s last input at once, carrying the register
select with them. Fold ``g + 1``'s weights overwrite the registers fold ``g - 1`` used, so they
start shifting in once fold ``g - 1``'s last input has crossed all ``C`` columns: ``C`` cycles after
fold ``g`` started streaming; ``R`` cycles later fold ``g + 1`` may start, so it starts
``max(S_g, R + C)`` cycles after fold ``g`` (:func:`weight_shift_cycles`; ``rtl.systolic`` with
``weight_buffers=2`` is this schedule). A fold that follows another one so costs
``S + max(0, R + C - S_prev)``: its fill and the previous fold's drain are hidden. The first
fold of a run pays the full fill and drain; within one command every fold after the first follows
the one before, and a command's first fold follows the previous command's last one when the
mapper says so (:attr:`~accel.commands.Compute.follows`, the previous fold's stream length). A
fold split over several commands (``fill`` or ``drain`` false) is not overlapped. When the
command's operands arrive late, the overlap is lost (:func:`late_start_cycles`, charged by the
simulator). With one weight buffer (the default) nothing changes: SCALE-Sim's cycles.

When the array's operand streams need more scratchpad bytes per cycle than its banks and ports give
(:func:`scratchpad_stretch`), every streaming cycle stretches to ``ceil(demand / supply)`` cycles: a
bank conflict. Without conflicts these are SCALE-Sim v3's compute cycles exactly (checked layer by
layer against its reports in ``tests/fixtures/scalesim``), except that SCALE-Sim reports the
0-based index of the last cycle, one less than the count given here.
"""

from __future__ import annotations

from accel.commands import Block, Command, Compute, Load, Move, Store, Vector
from accel.hardware import Accelerator, Dataflow, SystolicArray

__all__ = [
    "fold_count", "fold_overhead", "gemm_tile_cycles", "scratchpad_stretch", "bank_conflict_cycles",
    "dma_cycles", "dma_row_cycles", "dma_requests", "vector_cycles", "command_cycles", "ceil_div",
    "weight_shift_cycles", "steady_fold_cycles",
    "overlaps_folds", "steady_follows", "steady_compute_cycles", "late_start_cycles", "issue_cycles",
]


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def fold_count(array: SystolicArray, dataflow: Dataflow, m: int, k: int, n: int) -> tuple[int, int]:
    """``(folds, streaming length per fold)`` for a GEMM tile."""
    r, c = array.rows, array.cols
    if dataflow is Dataflow.WS:
        return ceil_div(k, r) * ceil_div(n, c), m
    if dataflow is Dataflow.OS:
        return ceil_div(m, r) * ceil_div(n, c), k
    return ceil_div(k, r) * ceil_div(m, c), n


def fold_overhead(array: SystolicArray, dataflow: Dataflow) -> tuple[int, int]:
    """``(fill, drain)`` cycles every fold pays around its streaming cycles."""
    fill = array.rows - 1 if dataflow is Dataflow.OS else 2 * array.rows - 1
    return fill, array.cols - 1


def weight_shift_cycles(array: SystolicArray) -> int:
    """With double-buffered weights, the fewest cycles between the starts of two folds: the fold
    before last crosses the ``C`` columns, then ``R`` rows of weights shift in."""
    return array.rows + array.cols


def overlaps_folds(array: SystolicArray, dataflow: Dataflow) -> bool:
    """Whether consecutive folds of ``dataflow`` overlap on ``array`` (double-buffered stationary operand)."""
    return array.weight_buffers > 1 and dataflow is not Dataflow.OS


def _overlapped_fold(array: SystolicArray, stream, previous_stream):  # noqa: ANN001, ANN202
    hidden = weight_shift_cycles(array) - previous_stream  # elementwise: max(0, hidden) as arithmetic
    return stream + hidden * (hidden > 0)


def gemm_tile_cycles(array: SystolicArray, dataflow: Dataflow, m: int, k: int, n: int, *,
                     fill: bool = True, drain: bool = True, follows: int = 0) -> int:
    """Cycles from the first operand entering the array to the last result leaving it.

    A fold whose streaming is split over several commands pays its fill in the first (``fill``) and
    its drain in the last (``drain``); the commands in between only stream. With double-buffered
    weights (module docstring) folds after the first overlap the one before, and so does the first
    when ``follows`` (the previous fold's stream length) is positive.
    """
    folds, stream = fold_count(array, dataflow, m, k, n)
    return _folds_cycles(array, dataflow, folds, stream, fill, drain, follows if follows > 0 else None)


def _folds_cycles(array: SystolicArray, dataflow: Dataflow, folds, stream, fill: bool, drain: bool,  # noqa: ANN001, ANN202
                  follows):  # noqa: ANN001
    """:func:`gemm_tile_cycles` of ``folds`` folds of ``stream`` cycles (``follows``: the stream length of
    the fold before the first, or ``None``); elementwise when ``folds``, ``stream`` and ``follows`` are
    numpy arrays."""
    fill_cycles, drain_cycles = fold_overhead(array, dataflow)
    if not (overlaps_folds(array, dataflow) and fill and drain):
        return folds * (stream + fill_cycles * fill + drain_cycles * drain)
    first = fill_cycles + stream + drain_cycles if follows is None else _overlapped_fold(array, stream, follows)
    return first + (folds - 1) * _overlapped_fold(array, stream, stream)


def steady_follows(array: SystolicArray, dataflow: Dataflow, m: int, k: int, n: int) -> int:
    """:attr:`~accel.commands.Compute.follows` of a compute that runs right after one of the same shape
    (its stream length when folds overlap on ``array``, else 0): what the mapper's pricing assumes."""
    return fold_count(array, dataflow, m, k, n)[1] if overlaps_folds(array, dataflow) else 0


def late_start_cycles(arch: Accelerator, command: Command, operands_ready: float, array_free: float) -> int:
    """Cycles a compute that ``follows`` its predecessor pays beyond :func:`command_cycles` because its
    operands arrived too late for the overlap.

    Its first fold would have started streaming ``hidden`` cycles before the array became free
    (``array_free``, the predecessor's last result), ``hidden`` being what the overlap saves; operands
    ready (``operands_ready``, the last of its loads and other non-array dependencies) after that
    point delay it by as much, up to ``hidden`` (then it pays its full fill and drain).
    """
    if not isinstance(command, Compute) or command.follows <= 0 or not command.fill or not command.drain \
            or not overlaps_folds(arch.array, command.dataflow):
        return 0
    _, stream = fold_count(arch.array, command.dataflow, command.m, command.k, command.n)
    fill_cycles, drain_cycles = fold_overhead(arch.array, command.dataflow)
    hidden = fill_cycles + stream + drain_cycles - _overlapped_fold(arch.array, stream, command.follows)
    late = operands_ready - (array_free - hidden)
    return int(min(max(late, 0), hidden))


def dma_cycles(acc: Accelerator, size_bytes: int, block: Block | None = None) -> int:
    """One DMA transfer: setup and DRAM latency, then whole bursts at the DMA/DRAM bandwidth.

    With a request structure (``dma.max_request_bytes``, ``dma.max_in_flight``), each row of the
    transfer (of ``block``; the whole transfer when ``None``) goes out as requests of at most
    ``max_request_bytes``, and at most ``max_in_flight`` of them await DRAM at once: by Little's law
    a request is issued at most every ``round trip / max_in_flight`` cycles, which bounds the stream
    when that is slower than the bandwidth (Gemmini: 16 requests of 64 B in flight)."""
    return _dma_cycles(acc, size_bytes, dma_requests(acc, size_bytes, block) if acc.dma.max_in_flight and size_bytes
                       else 0)


def dma_row_cycles(acc: Accelerator, size_bytes: int, row_bytes: int) -> int:
    """:func:`dma_cycles` of ``size_bytes`` moved in rows of ``row_bytes`` (which divides it), the block
    ``Block(rows=size_bytes // row_bytes, row_bytes=row_bytes, row_stride=row_bytes)``; ``row_bytes`` 0
    or at least ``size_bytes``: no block. Without building the block (what the mapper's search prices
    a new transfer by; ``tests/test_timing.py`` checks it against :func:`dma_cycles`)."""
    requests = 0
    if acc.dma.max_in_flight and size_bytes:
        limit = acc.dma.max_request_bytes
        if row_bytes and row_bytes < size_bytes:  # dma_requests of the block: per row, then all its rows
            requests = size_bytes // row_bytes * (ceil_div(row_bytes, limit) if limit else 1)
        else:
            requests = ceil_div(size_bytes, limit) if limit else 1
    return _dma_cycles(acc, size_bytes, requests)


def _dma_cycles(acc: Accelerator, size_bytes: int, requests: int) -> int:
    """:func:`dma_cycles` of a transfer that goes out as ``requests`` requests (0: the DMA has no
    request structure, or nothing moves)."""
    dma = acc.dma
    burst = dma.burst_bytes
    moved = ceil_div(size_bytes, burst) * burst
    bandwidth = min(dma.bandwidth_bytes_per_cycle, acc.dram.bandwidth_bytes_per_cycle)
    stream = ceil_div(moved * 1000, round(bandwidth * 1000))
    round_trip = dma.latency_cycles + acc.dram.latency_cycles
    if requests:
        stream = max(stream, ceil_div((requests - 1) * round_trip, dma.max_in_flight))
    return round_trip + stream


def dma_requests(acc: Accelerator, size_bytes: int, block: Block | None = None) -> int:
    """The requests of a transfer: per row of ``block`` (or of the whole transfer), its bytes in
    requests of at most ``dma.max_request_bytes`` (0: one request per row)."""
    limit = acc.dma.max_request_bytes
    if block is None or block.size_bytes != size_bytes:
        return ceil_div(size_bytes, limit) if limit else 1
    per_row = ceil_div(block.row_bytes, limit) if limit else 1
    return block.rows * block.planes * per_row


def move_cycles(acc: Accelerator, size_bytes: int) -> int:
    """An on-chip move of ``size_bytes`` results: one scratchpad word per cycle through the
    accumulator's read path (its word holds as many results as the scratchpad word takes), plus the
    path's pipeline (``activation.latency_cycles``; a store hides it behind its DMA latency)."""
    return ceil_div(size_bytes, acc.scratchpad.word_bytes * acc.scratchpad.ports) + acc.activation.latency_cycles


def vector_cycles(acc: Accelerator, elements: int) -> int:
    """``elements`` operations on the vector unit: pipeline latency plus one cycle per lane-full."""
    return acc.vector.latency_cycles + ceil_div(elements, acc.vector.lanes)


def scratchpad_stretch(arch: Accelerator, dataflow: Dataflow) -> int:
    """How many cycles one streaming cycle takes, given the scratchpad bytes the array reads per cycle.

    The streamed operands enter along the array's edge every cycle: WS streams ``R`` inputs, IS ``R``
    weights, OS ``R`` inputs and ``C`` weights. The scratchpad supplies ``banks x ports x word_bytes``
    bytes per cycle; a shortfall stretches the stream (1 when there is none).
    """
    a = arch.array
    if dataflow is Dataflow.WS:
        demand = a.rows * a.input_format.size_bytes
    elif dataflow is Dataflow.IS:
        demand = a.rows * a.weight_format.size_bytes
    else:
        demand = a.rows * a.input_format.size_bytes + a.cols * a.weight_format.size_bytes
    return max(1, ceil_div(demand, arch.scratchpad.bandwidth_bytes_per_cycle))


def bank_conflict_cycles(arch: Accelerator, command: Compute) -> int:
    """The part of a compute command's cycles spent waiting on scratchpad banks."""
    folds, stream = fold_count(arch.array, command.dataflow, command.m, command.k, command.n)
    return _stretch_cycles(arch, command.dataflow, command.batch, folds, stream)


def _stretch_cycles(arch: Accelerator, dataflow: Dataflow, batch, folds, stream):  # noqa: ANN001, ANN202
    return batch * folds * stream * (scratchpad_stretch(arch, dataflow) - 1)


def issue_cycles(arch: Accelerator, command: Command) -> int:
    """Host cycles to issue ``command`` (``arch.control``; 0 when no host issues the program)."""
    return arch.control.issue_cycles


def compute_command_cycles(arch: Accelerator, command: Compute) -> int:
    """A compute command: its ``batch`` tiles' folds plus the stretch of scratchpad bank conflicts."""
    folds, stream = fold_count(arch.array, command.dataflow, command.m, command.k, command.n)
    cycles = _folds_cycles(arch.array, command.dataflow, folds, stream, command.fill, command.drain,
                           command.follows if command.follows > 0 else None)
    return command.batch * cycles + _stretch_cycles(arch, command.dataflow, command.batch, folds, stream)


def steady_compute_cycles(arch: Accelerator, dataflow: Dataflow, m, k, n, batch):  # noqa: ANN001, ANN201
    """:func:`compute_command_cycles` of a whole-fold compute (``fill`` and ``drain``) of ``batch`` tiles
    ``m x k @ k x n`` that runs right after one of its own shape (``follows`` is :func:`steady_follows`):
    the figure the mapper's search prices a tile's computes by. The same functions as the command's
    (:func:`_folds_cycles`, :func:`_stretch_cycles`), on the sizes only, so it is elementwise when they
    are numpy integer arrays (each at least 1): a layer's candidate tiles are priced in one call.
    ``tests/test_timing.py`` checks it against :func:`command_cycles` of the command."""
    folds, stream = fold_count(arch.array, dataflow, m, k, n)
    follows = stream if overlaps_folds(arch.array, dataflow) else None
    cycles = _folds_cycles(arch.array, dataflow, folds, stream, True, True, follows)
    return batch * cycles + _stretch_cycles(arch, dataflow, batch, folds, stream)


def steady_fold_cycles(arch: Accelerator, dataflow: Dataflow, stream: int) -> int:
    """What one fold of :func:`steady_compute_cycles` costs per tile of its ``batch``, with its
    ``stream`` cycles of streaming (:func:`fold_count`): a whole-fold compute after one of its own
    shape takes ``batch * folds * steady_fold_cycles(arch, dataflow, stream)`` (every fold pays the
    same: its fill and drain, or, when folds overlap, the part of the weight shift its predecessor's
    stream does not hide; and its stream stretched by the scratchpad's banks). So a sum of those
    cycles over tiles of a few sizes factors into one sum per dimension (what the mapper's search
    bounds a tiling's array cycles by); ``tests/test_timing.py`` checks it against
    :func:`steady_compute_cycles`."""
    array = arch.array
    if overlaps_folds(array, dataflow):
        cycles = _overlapped_fold(array, stream, stream)
    else:
        fill_cycles, drain_cycles = fold_overhead(array, dataflow)
        cycles = stream + fill_cycles + drain_cycles
    return cycles + stream * (scratchpad_stretch(arch, dataflow) - 1)


def transfer_command_cycles(arch: Accelerator, command: Load | Store) -> int:
    return dma_cycles(arch, command.size_bytes, command.dram)


def move_command_cycles(arch: Accelerator, command: Move) -> int:
    return move_cycles(arch, command.size_bytes)


def vector_command_cycles(arch: Accelerator, command: Vector) -> int:
    return vector_cycles(arch, command.elements)


def command_cycles(arch: Accelerator, command: Command) -> int:
    """The cycles one command holds its unit: the figure above for its kind, nothing else
    (the kind's entry in :data:`accel.pricing.PRICING`)."""
    from accel.pricing import pricing

    return pricing(command).cycles(arch, command)

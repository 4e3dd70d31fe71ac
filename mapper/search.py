"""Per-layer mapping search: dataflow, loop order and tile sizes, priced by the datasheet.

:func:`search_gemm` enumerates the mappings of one array layer that fit a working space (half of it
for one tile's operands, double-buffered, and half of the accumulator for its outputs), prices each
with :class:`Cost` (cycles, energy, DRAM bytes) from the same functions the
simulator charges (:func:`accel.timing.command_cycles`, :func:`accel.timing.dma_cycles`,
:func:`accel.energy.command_energy_pj`; a new compute shape by the datasheet's closed forms of those,
:func:`accel.timing.steady_compute_cycles` and :func:`accel.energy.compute_energy_function`, equal to
them bit for bit and cheaper than building the command), drops dominated mappings, and returns the best for the
objective (``latency``: cycles, then energy; ``energy``: energy, then cycles; ``edp``: their product).

The space, per supported dataflow:

``tile-outer``
    tiles ``b x m x k x n``: along ``b``, ``k`` and ``n`` every power-of-two multiple of the array
    dimension and the whole extent; then, within a factor of two of the best of those along each
    dimension, the balanced non-divisor sizes ``ceil(extent / j)`` (rounded up to the array
    dimension, ``j = 2..8``; the last tile takes the remainder); along ``m`` the most rows that fit
    and the balanced size with the same tile count. Priced in closed form over the distinct tile
    shapes, not tile by tile. Then the same two rounds over tiles that keep an operand on chip
    across tiles (:attr:`mapper.plan.Tile.keep`); what they find is taken only where its schedule
    moves at most the DRAM bytes of the best mapping without them (keeping never adds traffic).
``fold-outer``
    SCALE-Sim's order with the longest stream chunk that fits (:mod:`mapper.schedules`), priced in
    closed form over first / middle / last folds and chunks.

Energy counts dynamic energy plus the static power of the whole design over the estimated cycles,
so a slower mapping is charged for its leakage. Results are cached per (hardware, priced operands,
working space, objective): layers of the same shape (ResNet's repeated blocks, GPT-2's attention
matmuls, which read views of each block's own tensors) are searched once.
The caches are bounded (:mod:`mapper.caches`); :func:`clear_caches` empties them.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import operator
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, fields, replace

from accel.commands import Buffer, Compute, Vector
from accel.energy import command_energy_pj, compute_energy_function, static_power_mw, transfer_energy_function
from accel.errors import MappingError
from accel.hardware import Accelerator, Dataflow
from accel.timing import (
    ceil_div,
    command_cycles,
    dma_row_cycles,
    steady_compute_cycles,
    steady_fold_cycles,
    vector_cycles,
)
from mapper import search_arrays
from mapper.caches import PriceTables
from mapper.layout import MatrixView, conv_band_most
from mapper.makers import maker, value_maker
from mapper.options import OBJECTIVES
from mapper.plan import Tile
from mapper.schedules import (
    FoldPlan,
    Operands,
    Step,
    fold_outer,
    keeps_inputs,
    keeps_weights,
    kept_bytes,
    largest,
    share,
    tile_outer,
    tile_outer_bytes,
    tile_sizes,
)

__all__ = ["Cost", "Choice", "INFEASIBLE", "search_gemm", "vector_cost", "roofline_cycles", "pareto", "clear_caches"]


@dataclass(frozen=True, order=True)
class Cost:
    """A mapping's datasheet estimate. ``cycles`` sums, step by step (one compute and the transfers
    that overlap it under double buffering), the longer of the array's and the DMA's busy cycles."""

    cycles: float
    energy_pj: float
    dram_bytes: float
    steps: int = field(default=0, compare=False)  # compute commands (or vector chunks) it runs as

    def key(self, objective: str) -> tuple[float, ...]:
        """What ``objective`` (a :class:`mapper.options.Objective` or its value) ranks by, first term first."""
        if objective == "latency":
            return (self.cycles, self.energy_pj, self.dram_bytes)
        if objective == "energy":
            return (self.energy_pj, self.cycles, self.dram_bytes)
        if objective == "edp":
            return (self.energy_pj * self.cycles, self.cycles, self.dram_bytes)
        raise MappingError(f"Mapping objective must be one of {', '.join(OBJECTIVES)}, not {objective!r}")

    def dominates(self, other: Cost) -> bool:
        """No worse on cycles, energy and DRAM bytes, and better on one."""
        return (self.cycles <= other.cycles and self.energy_pj <= other.energy_pj
                and self.dram_bytes <= other.dram_bytes
                and (self.cycles, self.energy_pj, self.dram_bytes) != (other.cycles, other.energy_pj, other.dram_bytes))


INFEASIBLE = Cost(float("inf"), float("inf"), float("inf"), 1 << 62)
_make_cost = value_maker(Cost)  # Cost(...), made with its __dict__ at once (mapper.makers): the search makes thousands


@dataclass(frozen=True)
class Choice:
    """One mapping of an array layer: its loop order, dataflow, tile (for reports), how to generate
    its schedule, its cost, and how many mappings were priced / not dominated."""

    order: str
    dataflow: Dataflow
    tile: Tile
    plan: Tile | FoldPlan
    cost: Cost
    evaluated: int = 1
    pareto: int = 1

    def steps(self, ops: Operands, arch: Accelerator) -> Iterator[Step]:
        if isinstance(self.plan, FoldPlan):
            return fold_outer(ops, self.plan, self.dataflow, arch.array.rows, arch.array.cols)
        return tile_outer(ops, self.plan, self.dataflow)


_make_choice = value_maker(Choice)  # Choice(...), as _make_cost


def pareto(choices: Iterable[Choice]) -> list[Choice]:
    """The choices no other choice dominates (on cycles, energy and DRAM bytes)."""
    ranked = sorted(choices, key=lambda c: (c.cost.cycles, c.cost.energy_pj, c.cost.dram_bytes))
    front: list[Choice] = []
    others: list[tuple[float, float]] = []  # the front's energy and DRAM bytes
    for c in ranked:
        # one ranked before has at most its cycles: it dominates or equals it when it has at most
        # its energy and bytes too
        energy, moved = c.cost.energy_pj, c.cost.dram_bytes
        if not any(e <= energy and d <= moved for e, d in others):
            front.append(c)
            others.append((energy, moved))
    return front


def search_gemm(arch: Accelerator, operands: tuple[tuple[Dataflow, Operands], ...], *, loop_orders: tuple[str, ...],
                half_spad: int, half_acc: int, objective: str, keep: bool = True) -> Choice:
    """The best mapping of one array layer (see the module docstring); ``operands`` gives, per
    dataflow to consider, the layer's operands as that dataflow runs them (N:M runs WS only).
    ``keep`` offers tiles that keep an operand on chip across tiles (:attr:`mapper.plan.Tile.keep`);
    what that search finds is chosen over the choice without them only where its schedule moves at
    most that one's DRAM bytes, so keeping never adds DRAM traffic to a layer.

    Raises :class:`MappingError` (without a layer name; the caller adds it) when nothing fits.
    Layers whose operands differ only in what the search does not price share one search: its key
    holds the operands' :func:`_priced` content (not tensor names, nor a view's source and batch stride).
    """
    if not _MEMO:  # the reference: every layer searched on its own operands
        return _search.__wrapped__(arch, operands, loop_orders, half_spad, half_acc, objective, keep)
    return _search(arch, tuple((d, _priced(ops)) for d, ops in operands), loop_orders, half_spad, half_acc,
                   objective, keep)


#: Whether the search shares work: layers of the same :func:`_priced` operands share one search;
#: within a search the dataflows that run the same operands share their candidate tiles, DRAM
#: bounds, priced transfers and row-count searches (:class:`_Candidates`, :class:`_Loads`,
#: :class:`_Rows`, and the tiles' transfer bounds), a tile size's array bound is computed once, and
#: tiles are priced one by one in bound order. It also takes the shortcuts that give the same
#: numbers without the objects: the array bound summed per dimension (:func:`_array_bound`), a
#: convolution's most rows in closed form (:meth:`_Rows.most`), the transfer bound's sums per
#: reduction (:func:`_transfer_cycles`), a fold-outer block's steps priced without making them
#: (:func:`_fold_block_steps`), a tile-outer schedule's bytes summed without its steps
#: (:func:`mapper.schedules.tile_outer_bytes`), candidates keyed by their id(), a round's candidates
#: collected once for the dataflows (:attr:`_Candidates.rounds`) and their bounds computed inline
#: from per-dimension sums, their DRAM bounds summed as they are made. False: a search per
#: call on the layer's own operands, nothing memoised within it, tiles priced in batches, every figure
#: from the schedule's steps or shape by shape (the reference these are checked against:
#: ``tests/test_search_speedups.py``).
_MEMO = True


def _priced(ops: Operands) -> Operands:
    """``ops`` with only what the search prices: the tensors renamed ``x``, ``w`` (when there are weights)
    and ``y``, and a view (:class:`mapper.layout.MatrixView`) reduced to its row and column strides
    (:meth:`Operands.x_row_bytes` and :meth:`Operands.w_row_bytes` read those; nothing in the search
    reads a view's source tensor or its batch stride). The search of ``_priced(ops)`` chooses what the
    search of ``ops`` does (``tests/test_search_speedups.py`` checks it on the zoo and the ONNX graphs)."""
    return replace(ops, x="x", w=None if ops.w is None else "w", out="y", x_view=_strides(ops.x_view),
                   w_view=_strides(ops.w_view))


def _strides(view: MatrixView | None) -> MatrixView | None:
    return None if view is None else MatrixView("", 0, view.row_stride, view.col_stride)


@functools.lru_cache(maxsize=8192)
def _search(arch: Accelerator, operands: tuple[tuple[Dataflow, Operands], ...], loop_orders: tuple[str, ...],
            half_spad: int, half_acc: int, objective: str, keep: bool) -> Choice:
    plain: list[Choice] = []  # the mappings of the search without kept operands
    kept: list[Choice] = []  # those the kept operands' rounds add
    shared: dict[Operands, _Loads] = {}  # dataflows that run the same operands share their priced transfers
    pricer = _pricer(arch)  # looked up once (its key hashes the whole design)
    for dataflow, ops in operands:
        if "tile-outer" in loop_orders:
            # the candidate tiles depend on the operands and the working space only: every search of
            # them (any dataflow, any design with these halves of the buffers) shares them
            if _MEMO:
                candidates = _candidates(ops, half_spad, half_acc)
                ops = candidates.ops  # equal operands whose input shares (Operands.x_share) are known
            else:
                candidates = _Candidates(ops, half_spad, half_acc, memo=False)
            loads = shared.get(ops) if _MEMO else None
            if loads is None:
                loads = shared[ops] = _Loads(pricer, ops, memo=_MEMO)
            without, added = _tile_outer_choices(arch, ops, dataflow, half_spad, half_acc, objective, keep,
                                                 candidates, loads)
            plain.extend(without)
            kept.extend(added)
        if "fold-outer" in loop_orders:
            fold = _fold_plan(arch, ops, dataflow, half_spad, half_acc)
            if fold is not None:
                plain.append(_fold_choice(arch, ops, dataflow, fold, pricer))
    if not plain and "tile-outer" not in loop_orders and not arch.array.split_folds:
        raise MappingError("no fold's whole stream fits half of the scratchpad and of the accumulator, and the "
                           "array cannot split a fold over Computes (array.split_folds is false): map it tile-outer")
    if not plain:
        raise MappingError(f"not even a 1x1x1 tile fits half of the scratchpad ({half_spad} B) and of the "
                           f"accumulator ({half_acc} B)")

    dataflows: dict[Dataflow, int] = {}  # each dataflow's first place in operands
    for i, (d, _) in enumerate(operands):
        dataflows.setdefault(d, i)

    def rank(c: Choice) -> tuple[object, ...]:
        return c.cost.key(objective), loop_orders.index(c.order), dataflows[c.dataflow]

    # keeping never adds DRAM traffic: what the search finds besides the choice without kept
    # operands must move at most that one's bytes (as its schedule moves them: the prices bound a
    # convolution's bands by the largest)
    reference = min(plain, key=rank)
    front = pareto(plain + kept)
    least = rank(reference)
    best, better = reference, [c for c in sorted(front, key=rank) if rank(c) < least]
    if better:
        by_dataflow = dict(operands)
        most = _moved(reference, by_dataflow[reference.dataflow], arch)
        best = next((c for c in better if _moved(c, by_dataflow[c.dataflow], arch) <= most), reference)
    return Choice(best.order, best.dataflow, best.tile, best.plan, best.cost, evaluated=len(plain) + len(kept),
                  pareto=len(front))


def _moved(choice: Choice, ops: Operands, arch: Accelerator) -> float:
    """The DRAM bytes ``choice``'s schedule moves: a GEMM's price says them exactly; a convolution's
    prices bound each input band by the largest, so its schedule is summed (memoised when
    :data:`_MEMO`: the schedule is :meth:`Choice.steps`', a function of the plan, the dataflow, the
    operands and, for fold-outer plans, the array's rows and columns)."""
    if ops.conv is None:
        return choice.cost.dram_bytes
    if not _MEMO:
        return _schedule_bytes.__wrapped__(choice.plan, choice.dataflow, ops, arch.array.rows, arch.array.cols)
    rows, cols = (arch.array.rows, arch.array.cols) if isinstance(choice.plan, FoldPlan) else (0, 0)
    return _schedule_bytes(choice.plan, choice.dataflow, ops, rows, cols)


@functools.lru_cache(maxsize=4096)
def _schedule_bytes(plan: Tile | FoldPlan, dataflow: Dataflow, ops: Operands, rows: int, cols: int) -> int:
    """The bytes the loads and stores of ``plan``'s schedule move (``rows`` and ``cols``: the array's,
    read by fold-outer plans only; a tile-outer plan's are summed without its steps,
    :func:`mapper.schedules.tile_outer_bytes`, except by the reference)."""
    if _MEMO and isinstance(plan, Tile):
        return tile_outer_bytes(ops, plan)
    steps = fold_outer(ops, plan, dataflow, rows, cols) if isinstance(plan, FoldPlan) \
        else tile_outer(ops, plan, dataflow)
    return sum(t.size_bytes for step in steps for t in (*step.loads, *step.stores))


# -- pricing ---------------------------------------------------------------------------------------

# command prices by the part of the design they depend on (bounded: see mapper.caches)
_COMPUTE_PRICES = PriceTables(designs=16, entries=1 << 18)
_TRANSFER_PRICES = PriceTables(designs=16, entries=1 << 16)
_TRANSFER_ENERGY = PriceTables(designs=16, entries=1 << 16)
_COMPUTE_CYCLES = PriceTables(designs=16, entries=1 << 18)


class _Pricer:
    """Datasheet cycles and energy of commands on one design, memoised (keys are plain tuples:
    hashing the whole design per lookup would cost more than the lookup saves)."""

    def __init__(self, arch: Accelerator) -> None:
        self.arch = arch
        # a new compute shape's and transfer's energy, the design's constants looked up once
        # (both elementwise on numpy arrays: mapper.search_arrays prices many tiles' computes at once)
        self.compute_energy, self._transfer_energy = compute_energy_function(arch), transfer_energy_function(arch)
        self.static_pj_per_cycle = sum(static_power_mw(arch).values()) * 1e-3 / arch.clock_hz * 1e12
        # prices depend on part of the design only: designs that differ elsewhere (a sweep over DRAM
        # bandwidth, say) share them
        # a compute's price does not depend on which dataflows the array supports (it has its own):
        # designs that differ in those share the tables
        array = tuple(getattr(arch.array, f.name) for f in fields(arch.array) if f.name != "dataflows")
        self._computes = _COMPUTE_PRICES.table((array, arch.scratchpad, arch.accumulator, arch.energy))
        self._cycles = _COMPUTE_CYCLES.table((array, arch.scratchpad))
        self._fold_cycles: dict[tuple[Dataflow, int], int] = {}  # fold_cycles (a few streams per layer)
        self._transfers = _TRANSFER_PRICES.table((arch.dma, arch.dram, arch.scratchpad, arch.accumulator, arch.energy))
        # a transfer's energy reads the DMA's bursts, the DRAM's energy per byte, the buffer and the
        # energy table (accel.energy.transfer_energy_pj), not the DRAM's bandwidth or latency: designs
        # that differ in those share it (its cycles are priced per design)
        self._transfer_pj = _TRANSFER_ENERGY.table((arch.dma, arch.dram.energy_pj_per_byte, arch.scratchpad,
                                                   arch.accumulator, arch.energy))

    def compute(self, dataflow: Dataflow, m: int, k: int, n: int, batch: int, accumulate: bool, fill: bool,
                drain: bool, sparsity: object) -> tuple[int, float]:
        key = (dataflow, m, k, n, batch, accumulate, fill, drain, sparsity)
        price = self._computes.get(key)
        if price is None:
            # a compute runs after one of its own shape (the first of a layer is priced the same); its
            # energy does not depend on fill, drain or what it follows (accel.energy.compute_energy_pj)
            if fill and drain:
                cycles = self.array_cycles(dataflow, m, k, n, batch, sparsity)
            else:
                cycles = command_cycles(self.arch, _make_compute(
                    id=0, layer="", m=m, k=k, n=n, batch=batch, dataflow=dataflow, accumulate=accumulate,
                    fill=fill, drain=drain, sparsity=sparsity, follows=0))
            price = self._computes[key] = (cycles, self.compute_energy(dataflow, m, k, n, batch, accumulate, sparsity))
        return price

    def array_cycles(self, dataflow: Dataflow, m: int, k: int, n: int, batch: int, sparsity: object) -> int:
        """The cycles of one whole-fold compute of this shape (:meth:`compute`'s, without its energy:
        the cycles do not depend on ``accumulate``)."""
        key = (dataflow, m, k, n, batch, sparsity)
        cycles = self._cycles.get(key)
        if cycles is None:  # command_cycles of the compute that follows one of its shape
            cycles = self._cycles[key] = steady_compute_cycles(self.arch, dataflow, m, k, n, batch)
        return cycles

    def fold_cycles(self, dataflow: Dataflow, stream: int) -> int:
        """:func:`accel.timing.steady_fold_cycles` on this design."""
        key = (dataflow, stream)
        cycles = self._fold_cycles.get(key)
        if cycles is None:
            cycles = self._fold_cycles[key] = steady_fold_cycles(self.arch, dataflow, stream)
        return cycles

    def transfer(self, size_bytes: int, buffer: Buffer, store: bool, row_bytes: int = 0) -> tuple[int, float]:
        """A transfer of ``size_bytes`` in rows of ``row_bytes`` (0: contiguous); the rows matter only
        to a DMA with a request structure (:func:`accel.timing.dma_requests`)."""
        if not self.arch.dma.max_in_flight or not row_bytes or size_bytes % row_bytes:
            row_bytes = 0
        key = (size_bytes, buffer, store, row_bytes)
        price = self._transfers.get(key)
        if price is None:  # dma_cycles of the rows' block (accel.timing.dma_row_cycles, without building it)
            price = self._transfers[key] = (dma_row_cycles(self.arch, size_bytes, row_bytes),
                                            self.transfer_energy(size_bytes, buffer, store))
        return price

    def transfer_energy(self, size_bytes: int, buffer: Buffer, store: bool) -> float:
        """The dynamic energy of a contiguous transfer of ``size_bytes`` (its rows do not change it)."""
        key = (size_bytes, buffer, store)
        energy = self._transfer_pj.get(key)
        if energy is None:  # a load's and a store's are the same (no fused activation)
            energy = self._transfer_pj[key] = self._transfer_energy(size_bytes, buffer)
        return energy

    def total(self, cycles: float, energy: float, moved: float, steps: int) -> Cost:
        return _make_cost(cycles, energy + cycles * self.static_pj_per_cycle, moved, steps)


_pricer = functools.lru_cache(maxsize=16)(_Pricer)
_make_compute = maker(Compute)  # Compute(**fields), twice as fast (mapper.makers)

# Tile-outer candidates of a round priced together as arrays (mapper.search_arrays); False: one by one
# with _tile_outer_cost, the reference the array pricing is checked against.
_VECTORIZED = False
_BATCH = 16  # candidates priced together (after dropping those whose bound already loses)


def clear_caches() -> None:
    """Forget every memoised search result and price (e.g. between the designs of a sweep), and the
    programs emitted from them (:mod:`mapper.programs`)."""
    from mapper.programs import clear

    clear()
    _search.cache_clear()
    _candidates.cache_clear()
    _schedule_bytes.cache_clear()
    _splits.cache_clear()
    _sizes.cache_clear()
    _k_runs.cache_clear()
    _pricer.cache_clear()
    _COMPUTE_PRICES.clear()
    _TRANSFER_PRICES.clear()
    _TRANSFER_ENERGY.clear()
    _COMPUTE_CYCLES.clear()


def _price_sequence(pricer: _Pricer, steps: list[tuple[Step, int]],
                    ops: Operands | None = None) -> tuple[float, float, float, int, list]:
    """``(cycles, energy, bytes, steps)`` of a repeating sequence of steps, each ``(step, times)``
    (``times`` identical steps in a row), and each step's ``(times, array, loads, stores)`` cycles.
    Double buffering overlaps compute ``i`` with the stores of step ``i`` and the loads of step
    ``i + 1``; after the last step comes the first again (the next repetition), so a step costs
    ``max(array, stores + next loads)``. The steps are one layer's (one dataflow and sparsity); each is
    read as :data:`_StepPrice` and priced by :func:`_price_steps`."""
    first = steps[0][0].compute
    dataflow, sparsity = first.dataflow, first.sparsity
    prices = []
    for step, times in steps:
        c = step.compute
        if (c.dataflow, c.sparsity) != (dataflow, sparsity):
            raise ValueError("a sequence of steps must be one layer's: one dataflow and one sparsity")
        transfers = tuple((t.size_bytes, t.buffer, store, 0 if ops is None else ops.row_bytes(t))
                          for t, store in itertools.chain(((t, False) for t in step.loads),
                                                          ((t, True) for t in step.stores)))
        prices.append((((c.m, c.k, c.n, c.batch, c.accumulate, c.fill, c.drain), transfers), times))
    return _price_steps(pricer, dataflow, sparsity, prices)


#: A step as :func:`_price_steps` reads it: its compute's ``(m, k, n, batch, accumulate, fill, drain)``
#: and its transfers, each ``(size_bytes, buffer, store, row_bytes)``, loads first, in the step's order.
_StepPrice = tuple[tuple[int, int, int, int, bool, bool, bool], tuple[tuple[int, Buffer, bool, int], ...]]


def _price_steps(pricer: _Pricer, dataflow: Dataflow, sparsity: object,
                 steps: list[tuple[_StepPrice, int]]) -> tuple[float, float, float, int, list]:
    """:func:`_price_sequence` of steps given as :data:`_StepPrice`, each with its ``times``."""
    priced = []
    energy = moved = 0.0
    count = 0
    compute, transfer = pricer.compute, pricer.transfer
    for ((m, k, n, batch, accumulate, fill, drain), transfers), times in steps:
        array, pj = compute(dataflow, m, k, n, batch, accumulate, fill, drain, sparsity)
        energy += times * pj
        loads = stores = 0
        for size, buffer, store, row_bytes in transfers:
            busy, pj = transfer(size, buffer, store, row_bytes)
            energy += times * pj
            moved += times * size
            if store:
                stores += busy
            else:
                loads += busy
        priced.append((times, array, loads, stores))
        count += times
    return _overlapped(priced), energy, moved, count, priced


def _fold_block_steps(ops: Operands, fold: FoldPlan, dataflow: Dataflow, tb: int,
                      extent: dict[str, int]) -> list[_StepPrice]:
    """The steps :func:`fold_outer` yields for one block of ``tb`` groups of ``extent`` (``m``, ``k``
    and ``n``; one block of S2 folds), as :data:`_StepPrice`, without making them: what
    :func:`_fold_outer_cost` prices (for operands without N:M weights, whose input tiles do not
    depend on the GEMM's extents; ``tests/test_search_speedups.py`` checks it against the steps)."""
    s1, s2, t = {Dataflow.WS: ("k", "n", "m"), Dataflow.OS: ("m", "n", "k"), Dataflow.IS: ("k", "m", "n")}[dataflow]
    partial_sums = dataflow is not Dataflow.OS
    has_w = ops.w is not None
    steps: list[_StepPrice] = []
    s1_starts, chunks = range(0, extent[s1], fold.s1_block), range(0, extent[t], fold.chunk)
    size2 = min(fold.s2_block, extent[s2])
    for f0 in s1_starts:
        size1 = min(fold.s1_block, extent[s1] - f0)
        first_fold, last_fold = f0 == 0, f0 == s1_starts[-1]
        for c0 in chunks:
            size = {s2: size2, s1: size1, t: min(fold.chunk, extent[t] - c0)}
            start = {s2: 0, s1: f0, t: c0}
            tm, tk, tn = size["m"], size["k"], size["n"]
            first_chunk, last_chunk = c0 == 0, c0 == chunks[-1]
            transfers = []
            if dataflow is not Dataflow.IS or first_chunk:
                transfers.append((ops.x_tile(0, tb, start["m"], tm, start["k"], tk), Buffer.SCRATCHPAD, False,
                                  ops.x_row_bytes(tb, tk)))
            if has_w and (dataflow is not Dataflow.WS or first_chunk):
                transfers.append((ops.w_size(tb, tk, tn), Buffer.SCRATCHPAD, False, ops.w_row_bytes(tk, tn)))
            outputs = tb * tm * tn
            final = (outputs * ops.out_bytes, Buffer.ACCUMULATOR, True, ops.out_row_bytes(tb, tn))
            if not partial_sums:
                accumulate = not first_chunk
                stores = [final] if last_chunk else []
            elif fold.resident:
                accumulate = not first_fold
                stores = [final] if last_fold else []
            else:  # partial sums go to a scratch area of their own: contiguous
                accumulate = not first_fold
                partial = outputs * ops.acc_bytes
                if not first_fold:
                    transfers.append((partial, Buffer.ACCUMULATOR, False, 0))
                stores = [final if last_fold else (partial, Buffer.ACCUMULATOR, True, 0)]
            steps.append(((tm, tk, tn, tb, accumulate, first_chunk, last_chunk), (*transfers, *stores)))
    return steps


def _overlapped(priced: list[tuple[int, float, float, float]]) -> float:
    """Cycles of runs of equal steps ``(times, array, loads, stores)`` repeating in a cycle: a step
    costs ``max(array, stores + the next step's loads)``, the next step being the same run's until
    its last, then the next run's first (after the last run, the first's)."""
    cycles = 0.0
    if len(priced) == 1:  # the common case, without the loop
        times, array, loads, stores = priced[0]
        return cycles + ((times - 1) * max(array, stores + loads) + max(array, stores + loads))
    for i, (times, array, loads, stores) in enumerate(priced):
        following = priced[(i + 1) % len(priced)][2]
        cycles += (times - 1) * max(array, stores + loads) + max(array, stores + following)
    return cycles


def _edges(first_loads: float, last: tuple[int, float, float, float], wrap_loads: float) -> float:
    """What a cyclic price misses at the ends of a run: the first loads overlap nothing, and the
    last compute and stores overlap no next loads (the cyclic price overlapped them with ``wrap_loads``)."""
    _, array, _, stores = last
    return first_loads + array + stores - max(array, stores + wrap_loads)


def _reduced(extent: int, block: int) -> tuple[int, list[int]]:
    """An extent of at most three blocks standing for ``extent``: first, one middle (weighted by
    the number of middle blocks) and last (the remainder); and the weight of each block."""
    n = ceil_div(extent, block)
    if n <= 3:
        return extent, [1] * n
    return 2 * block + (extent - (n - 1) * block), [1, n - 2, 1]


def _fold_outer_cost(arch: Accelerator, ops: Operands, fold: FoldPlan, dataflow: Dataflow,
                     pricer: _Pricer | None = None) -> Cost:
    """:func:`fold_outer` priced in closed form: per distinct block of groups x S2 folds, the steps of
    a block with its S1 folds and stream chunks reduced to first / middle / last, weighted
    (``pricer``: ``arch``'s, when the caller has it at hand)."""
    g = ops.gemm
    pricer = pricer or _pricer(arch)
    s1, s2, t = {Dataflow.WS: ("k", "n", "m"), Dataflow.OS: ("m", "n", "k"), Dataflow.IS: ("k", "m", "n")}[dataflow]
    extent = {"m": g.m, "k": g.k, "n": g.n}
    e1, fold_weights = _reduced(extent[s1], fold.s1_block)
    et, chunk_weights = _reduced(extent[t], fold.chunk)
    cycles = energy = moved = 0.0
    count = 0
    first_loads: float | None = None
    last, wrap = (1, 0, 0.0, 0.0), 0.0
    direct = _MEMO and ops.sparsity is None  # the steps' prices without making them (_fold_block_steps)
    price: Callable[[list], tuple[float, float, float, int, list]] = (
        functools.partial(_price_steps, pricer, dataflow, None) if direct
        else functools.partial(_price_sequence, pricer, ops=ops))
    for (tb, cb), (size2, c2) in itertools.product(_splits(g.batch, fold.tb), _splits(extent[s2], fold.s2_block)):
        shape = {s1: e1, s2: size2, t: et}
        if direct:
            steps: list = _fold_block_steps(ops, fold, dataflow, tb, shape)
        else:
            block = replace(ops, gemm=replace(g, batch=tb, **shape))
            steps = list(fold_outer(block, replace(fold, tb=tb), dataflow, arch.array.rows, arch.array.cols))
        # the steps come fold by fold, each fold's chunks in order; a middle fold stands for
        # ``weight`` folds: its chunk sequence is priced once more, scaled by the others
        sequence: list[tuple[Step | _StepPrice, int]] = []  # (a step, or its prices; times)
        per_fold = len(chunk_weights)
        for f, weight in enumerate(fold_weights):
            chunk_run = list(zip(steps[f * per_fold:(f + 1) * per_fold], chunk_weights, strict=True))
            if weight > 1:  # the middle folds: price its runs once and scale
                c, e, m, n, _ = price(chunk_run)
                cycles += cb * c2 * (weight - 1) * c
                energy += cb * c2 * (weight - 1) * e
                moved += cb * c2 * (weight - 1) * m
                count += cb * c2 * (weight - 1) * n
            sequence.extend(chunk_run)
        c, e, m, n, priced = price(sequence)
        cycles += cb * c2 * c
        energy += cb * c2 * e
        moved += cb * c2 * m
        count += cb * c2 * n
        first_loads = priced[0][2] if first_loads is None else first_loads
        last, wrap = priced[-1], priced[0][2]
    if first_loads is None:
        return pricer.total(0.0, 0.0, 0.0, 0)
    return pricer.total(cycles + _edges(first_loads, last, wrap), energy, moved, count)


@functools.lru_cache(maxsize=1 << 14)
def _splits(extent: int, size: int) -> tuple[tuple[int, int], ...]:
    """``(tile size, count)`` of the tiles along one dimension: the full ones and the remainder."""
    full, rest = divmod(extent, size)
    return ((size, full),) * bool(full) + ((rest, 1),) * bool(rest)


class _Loads:
    """``(bytes, DMA cycles, pJ)`` of the transfers of tile-outer tiles of one layer's operands on one
    design: an input tile, a weight tile, an output tile, by size (transfers priced with the rows
    they move, :meth:`_Pricer.transfer`). Memoised when ``memo`` (the dataflows of a search share
    one); else priced anew on each call (the reference)."""

    def __init__(self, pricer: _Pricer, ops: Operands, *, memo: bool) -> None:
        self.pricer, self.ops, self.memo = pricer, ops, memo
        self._x: dict[tuple[int, int, int], tuple[int, int, float]] = {}
        self._w: dict[tuple[int, int, int], tuple[int, int, float]] = {}
        self._out: dict[tuple[int, int, int], tuple[int, int, float]] = {}
        self._rows: dict[tuple[str, int, int], int] = {}  # the rows of x and out transfers, by what they read
        # _transfer_cycles' sums over a reduction's k tiles (of the size that is the key's last)
        self.x_sums: dict[tuple[int, int, int], int] = {}  # of the input loads of (tb, tm)
        self.w_sums: dict[tuple[int, int, int], int] = {}  # of the weight loads of (tb, tn)
        self.bounds: dict[int, tuple[Tile, int]] = {}  # _transfer_cycles by the tile's id (when memoised)

    def x(self, tb: int, tm: int, tk: int) -> tuple[int, int, float]:
        if not self.memo:
            return self._priced(lambda: self.ops.x_share(tb, tm, tk), Buffer.SCRATCHPAD, False,
                                lambda: self.ops.x_row_bytes(tb, tk))
        known = self._x.get((tb, tm, tk))
        if known is None:  # a new size: its rows are its (tb, tk)'s
            rows = self._rows.get(("x", tb, tk))
            if rows is None:
                rows = self._rows["x", tb, tk] = self.ops.x_row_bytes(tb, tk)
            size = self.ops.x_share(tb, tm, tk)
            known = self._x[tb, tm, tk] = (size, *self.pricer.transfer(size, Buffer.SCRATCHPAD, False, rows))
        return known

    def w(self, tb: int, tk: int, tn: int) -> tuple[int, int, float]:
        if not self.memo:
            return self._priced(lambda: self.ops.w_size(tb, tk, tn), Buffer.SCRATCHPAD, False,
                                lambda: self.ops.w_row_bytes(tk, tn))
        known = self._w.get((tb, tk, tn))
        if known is None:
            size = self.ops.w_size(tb, tk, tn)
            known = self._w[tb, tk, tn] = (size, *self.pricer.transfer(size, Buffer.SCRATCHPAD, False,
                                                                       self.ops.w_row_bytes(tk, tn)))
        return known

    def out(self, tb: int, tm: int, tn: int) -> tuple[int, int, float]:
        if not self.memo:
            return self._priced(lambda: tb * tm * tn * self.ops.out_bytes, Buffer.ACCUMULATOR, True,
                                lambda: self.ops.out_row_bytes(tb, tn))
        known = self._out.get((tb, tm, tn))
        if known is None:
            rows = self._rows.get(("out", tb, tn))
            if rows is None:
                rows = self._rows["out", tb, tn] = self.ops.out_row_bytes(tb, tn)
            size = tb * tm * tn * self.ops.out_bytes
            known = self._out[tb, tm, tn] = (size, *self.pricer.transfer(size, Buffer.ACCUMULATOR, True, rows))
        return known

    def _priced(self, size_of: Callable[[], int], buffer: Buffer, store: bool,
                row_bytes: Callable[[], int]) -> tuple[int, int, float]:
        """``(size_bytes, cycles, energy)`` of one transfer, priced anew (the reference)."""
        size = size_of()
        return (size, *self.pricer.transfer(size, buffer, store, row_bytes()))


def _tile_outer_cost(arch: Accelerator, ops: Operands, tile: Tile, dataflow: Dataflow,
                     pricer: _Pricer | None = None, loads: _Loads | None = None) -> Cost:
    """:func:`_price_steps` of :func:`tile_outer`, in closed form over the distinct tile shapes
    (``pricer``: ``arch``'s, when the caller has it at hand; ``loads``: the transfers of ``ops``
    priced, when the caller shares them between tiles)."""
    g = ops.gemm
    pricer = pricer or _pricer(arch)
    loads = loads or _Loads(pricer, ops, memo=False)
    compute, sparsity = pricer.compute, ops.sparsity
    known_computes = pricer._computes  # compute's own table, read here first (without the call)
    cycles = energy = moved = 0.0
    steps_run = 0
    first_loads: float | None = None
    last, wrap = (1, 0, 0.0, 0.0), 0.0
    k_tiles = _splits(g.k, tile.k)
    k_steps = -(-g.k // tile.k)  # the steps of one output tile (its k tiles: the counts of k_tiles)
    keep_w, keep_x = keeps_weights(ops, tile), keeps_inputs(ops, tile)
    kept = keep_w or keep_x
    has_w = ops.w is not None
    steps = _k_runs(g.k, tile.k)
    whole_m, whole_n = min(tile.m, g.m), min(tile.n, g.n)
    load_x, load_w, load_out = loads.x, loads.w, loads.out
    # loads' own tables, read here first (without the call) when it memoises
    known_x, known_w, known_out = (loads._x, loads._w, loads._out) if loads.memo else ({}, {}, {})
    for (tb, cb), (tn, cn), (tm, cm) in itertools.product(_splits(g.batch, tile.b), _splits(g.n, tile.n),
                                                          _splits(g.m, tile.m)):
        count = cb * cn * cm
        stored = known_out.get((tb, tm, tn))
        out, store_busy, store_pj = load_out(tb, tm, tn) if stored is None else stored
        energy += count * store_pj
        moved += count * out
        x_loads = []
        for tk, _ in k_tiles:
            x = known_x.get((tb, tm, tk))
            x_loads.append(load_x(tb, tm, tk) if x is None else x)
        if has_w:
            w_loads: list[tuple[int, int, float]] | None = []
            for tk, _ in k_tiles:
                w = known_w.get((tb, tk, tn))
                w_loads.append(load_w(tb, tk, tn) if w is None else w)
        else:
            w_loads = None
        # each run's compute (array cycles, pJ), the same for every kind of output tile below
        runs = []  # (k tile, times, last, array cycles, pJ)
        for tk, j, times, accumulate, final in steps:
            price = known_computes.get((dataflow, tm, tk, tn, tb, accumulate, True, True, sparsity))
            if price is None:
                price = compute(dataflow, tm, tk, tn, tb, accumulate, True, True, sparsity)
            runs.append((j, times, final, *price))
        kinds = _kinds(keep_w, keep_x, has_w, (cb, cn, cm), tm == whole_m, tn == whole_n) if kept \
            else ((count, True, has_w),)  # _kinds' of a tile that keeps nothing
        first_runs = last_run = None
        for tiles, with_x, with_w in kinds:
            if not tiles:
                continue
            priced = []  # per run of equal steps: (times, array cycles, load cycles, store cycles)
            for j, times, final, array, pj in runs:
                energy += tiles * times * pj
                busy = 0
                if with_x:
                    size, busy, pj = x_loads[j]
                    energy += tiles * times * pj
                    moved += tiles * times * size
                if with_w and w_loads is not None:
                    size, w_busy, pj = w_loads[j]
                    busy += w_busy
                    energy += tiles * times * pj
                    moved += tiles * times * size
                priced.append((times, array, busy, store_busy if final else 0))
            # compute i overlaps the loads of step i + 1 (the next output tile's first, after the last);
            # only the last k step stores, so a run of several steps has no stores
            if len(priced) == 1:  # _overlapped's common case, inline
                times, array, busy, stores = priced[0]
                step = max(array, stores + busy)
                cycles += tiles * (0.0 + ((times - 1) * step + step))
            else:
                cycles += tiles * _overlapped(priced)
            steps_run += tiles * k_steps
            if first_runs is None:
                first_runs = priced
            last_run = priced
        assert first_runs is not None and last_run is not None
        first_loads = first_runs[0][2] if first_loads is None else first_loads
        last, wrap = last_run[-1], first_runs[0][2]
    assert first_loads is not None
    return pricer.total(cycles + _edges(first_loads, last, wrap), energy, moved, steps_run)


@functools.lru_cache(maxsize=1 << 12)
def _k_runs(extent: int, size: int) -> tuple[tuple[int, int, int, bool, bool], ...]:
    """One output tile's runs of equal steps along a reduction of ``extent`` in tiles of ``size``,
    each ``(k tile, its index in _splits, times, accumulate, last)``: the first step (which does
    not accumulate), the middle ones, the last (which stores)."""
    k_tiles = _splits(extent, size)
    steps = []
    for j, (tk, ck) in enumerate(k_tiles):
        first, final = j == 0, j == len(k_tiles) - 1
        head = 1 if first else 0
        tail = 1 if final and ck - head > 0 else 0
        if head:
            steps.append((tk, j, 1, False, final and ck == 1))
        if ck - head - tail > 0:
            steps.append((tk, j, ck - head - tail, True, False))
        if tail:
            steps.append((tk, j, 1, True, True))
    return tuple(steps)


def _transfer_cycles(ops: Operands, tile: Tile, loads: _Loads) -> int:
    """The DMA cycles of :func:`tile_outer`'s transfers for ``tile`` (its loads and stores as
    :func:`_tile_outer_cost` prices them, summed): a lower bound of that closed form's cycles, whose
    steps each cost at least their stores and the next step's loads, the first loads and the last
    stores overlapping nothing (:func:`_overlapped`, :func:`_edges`). Per output tile shape, its
    input tiles' loads (a reduction's, per ``(tb, tm)``) and weight tiles' (per ``(tb, tn)``) are
    summed once; :func:`_kinds` says which of its output tiles load them (memoised per tile in
    ``loads`` when it is: the transfers do not depend on the dataflow, and the dataflows of a
    search share ``loads``)."""
    known = loads.bounds.get(id(tile)) if loads.memo else None
    if known is not None:
        return known[1]
    g = ops.gemm
    k_tiles = _splits(g.k, tile.k)
    keep_w, keep_x = keeps_weights(ops, tile), keeps_inputs(ops, tile)
    has_w = ops.w is not None
    whole_m, whole_n = min(tile.m, g.m), min(tile.n, g.n)
    m_tiles, n_tiles = _splits(g.m, tile.m), _splits(g.n, tile.n)
    load_x, load_w, load_out = loads.x, loads.w, loads.out
    known_out = loads._out if loads.memo else {}  # out's own table, read here first (without the call)
    cycles = 0
    x_sums, w_sums, size_k = loads.x_sums, loads.w_sums, tile.k
    for tb, cb in _splits(g.batch, tile.b):
        xs = []
        for tm, _ in m_tiles:  # a reduction's input loads, summed once per (tb, tm) and k tile size
            x = x_sums.get((tb, tm, size_k))
            if x is None:
                x = x_sums[tb, tm, size_k] = sum(ck * load_x(tb, tm, tk)[1] for tk, ck in k_tiles)
            xs.append(x)
        ws = []
        for tn, _ in n_tiles:  # and its weight loads
            w = w_sums.get((tb, tn, size_k)) if has_w else 0
            if w is None:
                w = w_sums[tb, tn, size_k] = sum(ck * load_w(tb, tk, tn)[1] for tk, ck in k_tiles)
            ws.append(w)
        for (tn, cn), w in zip(n_tiles, ws, strict=True):
            for (tm, cm), x in zip(m_tiles, xs, strict=True):
                count = cb * cn * cm
                if keep_w:  # the first output tile of each column loads its weights (_kinds)
                    cycles += count * x + (cb * cn if tm == whole_m else 0) * w
                elif keep_x:  # the first of each row its inputs
                    cycles += count * w + (cb * cm if tn == whole_n else 0) * x
                else:
                    cycles += count * (x + w)
                stored = known_out.get((tb, tm, tn))
                cycles += count * (load_out(tb, tm, tn) if stored is None else stored)[1]
    if loads.memo:
        loads.bounds[id(tile)] = (tile, cycles)  # by id, holding the tile (so that no other takes its id)
    return cycles


def _transfer_cycles_by_kinds(ops: Operands, tile: Tile, loads: _Loads) -> int:
    """:func:`_transfer_cycles` summed shape by shape over :func:`_kinds` (the reference's)."""
    g = ops.gemm
    k_tiles = _splits(g.k, tile.k)
    keep_w, keep_x = keeps_weights(ops, tile), keeps_inputs(ops, tile)
    has_w = ops.w is not None
    whole_m, whole_n = min(tile.m, g.m), min(tile.n, g.n)
    cycles = 0
    for (tb, cb), (tn, cn), (tm, cm) in itertools.product(_splits(g.batch, tile.b), _splits(g.n, tile.n),
                                                          _splits(g.m, tile.m)):
        x = sum(ck * loads.x(tb, tm, tk)[1] for tk, ck in k_tiles)
        w = sum(ck * loads.w(tb, tk, tn)[1] for tk, ck in k_tiles) if has_w else 0
        for tiles, with_x, with_w in _kinds(keep_w, keep_x, has_w, (cb, cn, cm), tm == whole_m, tn == whole_n):
            cycles += tiles * (x * with_x + w * with_w)
        cycles += cb * cn * cm * loads.out(tb, tm, tn)[1]
    return cycles


def _kinds(keep_w: bool, keep_x: bool, has_w: bool, counts: tuple[int, int, int], whole_m: bool,
           whole_n: bool) -> tuple[tuple[int, bool, bool], ...]:
    """The kinds of :func:`tile_outer`'s output tiles of one shape, ``(output tiles, load inputs, load
    weights)``: ``counts`` tiles along ``b``, ``n`` and ``m``; a kept column's (row's) first output tile
    loads its weights (inputs), the others read them; that first tile is a whole one (``whole_m``,
    ``whole_n``: this shape spans the tile's rows, columns) or the only one."""
    cb, cn, cm = counts
    count = cb * cn * cm
    if keep_w:
        firsts = cb * cn if whole_m else 0
        return (firsts, True, True), (count - firsts, True, False)
    if keep_x:
        firsts = cb * cm if whole_n else 0
        return (firsts, True, True), (count - firsts, False, True)
    return ((count, True, has_w),)


def _array_bound(pricer: _Pricer, ops: Operands, tile: Tile, dataflow: Dataflow,
                 sums: dict[tuple[int, int], int] | None = None) -> int:
    """The array cycles of :func:`tile_outer`'s computes for ``tile``: a lower bound of its closed-form
    cycles, since a run of steps costs at least its computes and the ends' correction never takes a
    step below its compute (:func:`_edges`). A compute's cycles are ``batch x folds x`` a fold's
    (:func:`accel.timing.steady_fold_cycles` of its stream), its folds the product of its two folded
    dimensions' over the array's rows and columns (:func:`accel.timing.fold_count`): the sum over
    the tile sizes along each dimension factors into one sum per dimension (equal to
    :func:`_array_bound_by_shapes`, which sums the computes shape by shape: the reference's).
    ``sums``: the per-dimension sums of earlier calls on the same operands and dataflow, by
    ``(dimension, tile size)``, when the caller keeps them."""
    g = ops.gemm
    rows, cols = pricer.arch.array.rows, pricer.arch.array.cols
    r_name, c_name, s_name = _ARRAY_DIMENSIONS[dataflow]
    if sums is None:
        sums = {}
    r_size, c_size, s_size = getattr(tile, r_name), getattr(tile, c_name), getattr(tile, s_name)
    r_folds = sums.get((0, r_size))
    if r_folds is None:
        r_folds = sums[0, r_size] = _fold_sum(getattr(g, r_name), r_size, rows)
    c_folds = sums.get((1, c_size))
    if c_folds is None:
        c_folds = sums[1, c_size] = _fold_sum(getattr(g, c_name), c_size, cols)
    streams = sums.get((2, s_size))
    if streams is None:
        streams = sums[2, s_size] = _stream_sum(pricer, dataflow, getattr(g, s_name), s_size)
    return g.batch * r_folds * c_folds * streams  # the groups' tiles sum to the batch


#: The GEMM dimensions a dataflow folds over the array's rows, over its columns, and streams.
_ARRAY_DIMENSIONS = {Dataflow.WS: ("k", "n", "m"), Dataflow.OS: ("m", "n", "k"), Dataflow.IS: ("k", "m", "n")}


def _fold_sum(extent: int, size: int, unit: int) -> int:
    """The folds over ``unit`` array rows (or columns) of the tiles of ``size`` along ``extent``, summed."""
    return sum(count * -(-tile // unit) for tile, count in _splits(extent, size))


def _stream_sum(pricer: _Pricer, dataflow: Dataflow, extent: int, size: int) -> int:
    """The cycles of a fold (:meth:`_Pricer.fold_cycles`) streaming each tile of ``size`` along ``extent``, summed."""
    return sum(count * pricer.fold_cycles(dataflow, tile) for tile, count in _splits(extent, size))


def _array_bound_by_shapes(pricer: _Pricer, ops: Operands, tile: Tile, dataflow: Dataflow) -> int:
    """:func:`_array_bound` summed over the computes' distinct shapes, each priced by
    :meth:`_Pricer.array_cycles` (the reference search's)."""
    g = ops.gemm
    k_tiles = _splits(g.k, tile.k)
    n_tiles, m_tiles = _splits(g.n, tile.n), _splits(g.m, tile.m)
    array_cycles, sparsity = pricer.array_cycles, ops.sparsity
    known = pricer._cycles  # array_cycles' own table, read here first (without the call)
    cycles = 0
    for tb, cb in _splits(g.batch, tile.b):
        for tn, cn in n_tiles:
            for tm, cm in m_tiles:
                per_tile = 0
                for tk, ck in k_tiles:
                    shape_cycles = known.get((dataflow, tm, tk, tn, tb, sparsity))
                    if shape_cycles is None:
                        shape_cycles = array_cycles(dataflow, tm, tk, tn, tb, sparsity)
                    per_tile += ck * shape_cycles
                cycles += cb * cn * cm * per_tile
    return cycles


def _balanced(extent: int, unit: int) -> Iterator[int]:
    """Non-divisor tile sizes: ``ceil(extent / j)`` rounded up to a multiple of ``unit``."""
    for j in range(2, 9):
        size = ceil_div(ceil_div(extent, j), unit) * unit
        if 0 < size < extent:
            yield size


@functools.lru_cache(maxsize=1 << 12)
def _sizes(extent: int, unit: int) -> tuple[int, ...]:
    """The tile sizes along one dimension the second round looks among: :func:`tile_sizes` and
    :func:`_balanced`, ascending (memoised: every search asks for its extents again and again)."""
    return tuple(sorted(set(tile_sizes(extent, unit)) | set(_balanced(extent, unit))))


def _row_counts(ops: Operands, tb: int, tn: int, half_acc: int, by_spad: int) -> set[int]:
    """Row counts worth trying for ``tb x ? x tn`` output tiles: the most rows that fit (``by_spad``
    in the scratchpad; the outputs in half the accumulator) and the balanced size of that (equal
    tiles of at most as many rows); none when not even one row fits."""
    m = ops.gemm.m
    most = min(m, by_spad, half_acc // (tb * tn * ops.acc_bytes))
    return {most, -(-m // -(-m // most))} if most >= 1 else set()  # most, ceil(m / ceil(m / most))


def _plain_tms(ops: Operands, tb: int, tk: int, tn: int, half_spad: int, half_acc: int,
               rows: _Rows | None = None) -> set[int]:
    """:func:`_row_counts` of plain tiles: their inputs and weights fit half the scratchpad
    (``rows``: the searches for the most rows, shared between calls)."""
    spad_room = half_spad - ops.w_size(tb, tk, tn)
    if spad_room <= 0:
        return set()
    if ops.conv is not None:  # input bands: the largest that fits, by their bound
        by_spad = rows.most("x", tb, tk, spad_room) if rows is not None \
            else largest(lambda tm: ops.x_share(tb, tm, tk) <= spad_room, ops.gemm.m)
    else:
        by_spad = int(spad_room // (tb * tk * ops.in_bytes))
    return _row_counts(ops, tb, tn, half_acc, by_spad)


def _kept_tms(ops: Operands, role: str, tb: int, tk: int, tn: int, half_spad: int, half_acc: int,
              rows: _Rows | None = None) -> set[int]:
    """Row counts of tiles that keep what ``role`` says (``Tile.keep``): ``"w"``, a split
    reduction's column of weights, with the most rows whose input tile fits half the scratchpad
    below it; ``"x"``, a row of input tiles, with the most rows whose row fits there with a weight
    tile; both with their outputs in half the accumulator, and the balanced size of that. None
    where there is nothing to keep or no room (``rows``: as for :func:`_plain_tms`)."""
    g = ops.gemm
    if ops.w is None or (role == "w" and tk >= g.k) or (role == "x" and tn >= g.n):
        return set()
    if role == "w":
        room = half_spad - kept_bytes(ops, "w", tb, 0, tk, tn)
        fits = (lambda tm: ops.x_share(tb, tm, tk) <= room) if room > 0 else None
    else:
        room = half_spad - ops.w_size(tb, tk, tn)
        fits = (lambda tm: kept_bytes(ops, "x", tb, tm, tk, tn) <= room) if room > 0 else None
    if fits is None:
        return set()
    if rows is not None:
        return _row_counts(ops, tb, tn, half_acc, rows.most("x" if role == "w" else "row", tb, tk, room))
    return _row_counts(ops, tb, tn, half_acc, largest(fits, g.m))


class _Rows:
    """:func:`mapper.schedules.largest` for the row counts of one layer's tiles, sharing what it
    learns: :meth:`most` is the most rows ``tm`` (of ``1..m``, 0 if none) whose input tile
    (``"x"``: :meth:`Operands.x_share`) or row of input tiles (``"row"``: :func:`kept_bytes` of
    ``"x"``) of ``tb`` groups and ``tk`` reduction fits ``room`` bytes. Both sizes never shrink
    as ``tm`` grows (a band of more output pixels covers the bands of fewer; a GEMM's share is
    ``ceil(rate * tm)``). A convolution's are its band's most pixels times bytes per pixel
    (:meth:`Operands.x_pixel_bytes`), so the answer is the closed form
    :func:`mapper.layout.conv_band_most` of the pixels the room holds; a GEMM's are searched for:
    the sizes computed for a ``(tb, tk)``, in order, bracket the answer for any room, and the
    binary search runs only between them. Both give what searching all of ``1..m`` gives."""

    def __init__(self, ops: Operands) -> None:
        self.ops = ops
        self._known: dict[tuple[str, int, int], tuple[list[int], list[int]]] = {}  # row counts, their sizes

    def most(self, kind: str, tb: int, tk: int, room: int) -> int:
        ops = self.ops
        if ops.conv is not None:  # x_share is conv_band_pixels times x_pixel_bytes (both at least 1)
            per_pixel = ops.x_pixel_bytes(tb, tk)
            if kind != "x":  # a row of input tiles: kept_bytes, the whole k tiles' and the rest's
                full, rest = divmod(ops.gemm.k, tk)
                per_pixel = full * per_pixel + (ops.x_pixel_bytes(tb, rest) if rest else 0)
            return min(ops.gemm.m, conv_band_most(ops.conv, room // per_pixel))
        tms, sizes = self._known.setdefault((kind, tb, tk), ([], []))
        i = bisect.bisect_right(sizes, room)  # sizes[:i] fit, sizes[i:] do not
        lo = tms[i - 1] if i else 0
        hi = tms[i] - 1 if i < len(tms) else ops.gemm.m
        while lo < hi:
            mid = (lo + hi + 1) // 2
            size = ops.x_share(tb, mid, tk) if kind == "x" else kept_bytes(ops, "x", tb, mid, tk, 0)
            j = bisect.bisect_left(tms, mid)
            tms.insert(j, mid)
            sizes.insert(j, size)
            if size <= room:
                lo = mid
            else:
                hi = mid - 1
        return lo


#: A kept operand must save at least this share of the DRAM bytes its tile shape moves without it
#: (by the search's DRAM bound): keeping is for traffic; below it a kept tile differs only in
#: the order of its steps, which the per-layer estimate cannot rank against the next layer's overlap.
KEEP_MIN_SAVING = 0.05


def _worth_keeping(ops: Operands, role: str, tb: int, tm: int, tk: int, tn: int, weights: int | None = None) -> bool:
    """Whether keeping ``role`` (``"w"`` or ``"x"``) in ``tb x tm x tk x tn`` tiles saves
    :data:`KEEP_MIN_SAVING` of the DRAM bytes the same tiles move without it (a pass over the input
    costs its tiles' shares, a convolution's bands with their halo; a row of kept inputs gives up
    the weights a one-tile reduction keeps; ``weights``: the bytes of all of them, when the caller
    has them)."""
    g = ops.gemm
    if weights is None:
        weights = ops.w_size(g.batch, g.k, g.n)
    w_reads = -(-g.m // tm)  # ceil_div, inline: the search asks thousands of times
    x_pass = -(-g.batch // tb) * w_reads * kept_bytes(ops, "x", tb, tm, tk, tn)
    x_reads = -(-g.n // tn)
    plain_w_reads = 1 if tk >= g.k else w_reads
    plain = x_pass * x_reads + weights * plain_w_reads + g.batch * g.m * g.n * ops.out_bytes
    saved = (weights * (w_reads - 1) if role == "w"
             else x_pass * (x_reads - 1) - weights * (w_reads - plain_w_reads))
    return saved >= KEEP_MIN_SAVING * plain


#: ``Tile(m, k, n, b, keep)``, made with its ``__dict__`` at once rather than field by field through the
#: frozen dataclass's ``object.__setattr__`` (the same object: a Tile validates nothing; the search
#: makes thousands; ``tests/test_search_speedups.py`` checks they are equal).
_tile: Callable[..., Tile] = value_maker(Tile)


class _Candidates:
    """What the tile-outer rounds of a search ask about a layer's operands again and again, whatever
    the dataflow and the design: the tiles worth pricing for each ``tb x tk x tn`` (:func:`_plain_tms`,
    and :func:`_kept_tms` with :func:`_worth_keeping`) and each tile's DRAM bytes bound. All are
    functions of the operands and the two halves of the buffers only (no price, no array, no DRAM),
    so every search of the same operands in the same working space shares one (:func:`_candidates`,
    when memoised: the dataflows of a search, the searches of a sweep's designs that differ in the
    bandwidth or the dataflows). Memoised when ``memo``; else computed anew on each call (the reference)."""

    def __init__(self, ops: Operands, half_spad: int, half_acc: int, *, memo: bool) -> None:
        self.ops, self.half_spad, self.half_acc, self.memo = ops, half_spad, half_acc, memo
        self._rows = _Rows(ops) if memo else None
        g = ops.gemm
        self._weights = ops.w_size(g.batch, g.k, g.n) if ops.w is not None else 0
        self._outputs = g.batch * g.m * g.n * ops.out_bytes
        self._plain: dict[tuple[int, int, int], tuple[Tile, ...]] = {}
        self._kept: dict[tuple[int, int, int], tuple[Tile, ...]] = {}
        self.known_moved: dict[int, int] = {}  # moved() by the id of a tile this holds (when memoised)
        # the tile-outer rounds' candidates by (round, kept, plain), each by id and in the round's
        # order, once (read by mapper.search._tile_outer_choices; the rounds depend on the array's
        # rows and columns, which their keys hold)
        self.rounds: dict[tuple[object, bool, bool], dict[object, Tile]] = {}

    def plain(self, tb: int, tk: int, tn: int) -> tuple[Tile, ...]:
        """Plain ``tb x ? x tk x tn`` tiles, in :func:`_plain_tms`' order."""
        known = self._plain.get((tb, tk, tn)) if self.memo else None
        if known is None:
            tms = _plain_tms(self.ops, tb, tk, tn, self.half_spad, self.half_acc, self._rows)
            known = tuple(_tile(tm, tk, tn, tb, "") for tm in tms)
            if self.memo:
                self._plain[tb, tk, tn] = known
                # _dram_bytes of each: a plain tile keeps its weights only when its reduction is whole
                g, known_moved = self.ops.gemm, self.known_moved
                once = self.ops.x_bytes * -(-g.n // tn) + self._outputs  # the inputs' reads and the outputs
                whole = self.ops.w is not None and tk >= g.k
                for tile in known:
                    known_moved[id(tile)] = once + self._weights * (1 if whole else -(-g.m // tile.m))
        return known

    def kept(self, tb: int, tk: int, tn: int) -> tuple[Tile, ...]:
        """``tb x ? x tk x tn`` tiles keeping a split reduction's column of weights, then a row of
        input tiles, that fit and are worth keeping."""
        known = self._kept.get((tb, tk, tn)) if self.memo else None
        if known is None:
            ops = self.ops
            known = tuple(_tile(tm, tk, tn, tb, role) for role in ("w", "x")
                          for tm in _kept_tms(ops, role, tb, tk, tn, self.half_spad, self.half_acc, self._rows)
                          if _worth_keeping(ops, role, tb, tm, tk, tn, self._weights if self.memo else None))
            if self.memo:
                self._kept[tb, tk, tn] = known
                # _dram_bytes of each (there are weights: _kept_tms makes none without): keeping the
                # weights reads each once, keeping the inputs reads the input once
                g, known_moved = ops.gemm, self.known_moved
                x_reads = ops.x_bytes * -(-g.n // tn)
                for tile in known:
                    known_moved[id(tile)] = (x_reads + self._weights if tile.keep == "w"
                                             else ops.x_bytes + self._weights * -(-g.m // tile.m)) + self._outputs
        return known

    def moved(self, tile: Tile) -> int:
        """A bound of the DRAM bytes ``tile``'s schedule moves: every ``n`` column of tiles reads all of
        the input (unless it keeps its inputs), every ``m`` row all of the weights (unless it keeps them).
        Memoised for the tiles :meth:`plain` and :meth:`kept` made (by id: they hold them)."""
        known = self.known_moved.get(id(tile)) if self.memo else None
        return self._dram_bytes(tile) if known is None else known

    def _dram_bytes(self, tile: Tile) -> int:
        ops, g = self.ops, self.ops.gemm
        reads = 1 if keeps_weights(ops, tile) else -(-g.m // tile.m)  # of each weight
        x_reads = 1 if keeps_inputs(ops, tile) else -(-g.n // tile.n)  # of the input
        return ops.x_bytes * x_reads + self._weights * reads + self._outputs


@functools.lru_cache(maxsize=1024)
def _candidates(ops: Operands, half_spad: int, half_acc: int) -> _Candidates:
    """The memoised :class:`_Candidates` of ``ops`` in ``half_spad`` and ``half_acc`` (its key is every
    argument its constructor reads)."""
    return _Candidates(ops, half_spad, half_acc, memo=True)


def _tile_outer_choices(arch: Accelerator, ops: Operands, dataflow: Dataflow, half_spad: int,
                        half_acc: int, objective: str, keep: bool,
                        shared: _Candidates | None = None,
                        loads: _Loads | None = None) -> tuple[list[Choice], list[Choice]]:
    """Tile-outer mappings in two rounds: power-of-two multiples of the array (and whole extents)
    along ``b``, ``k`` and ``n``; then the balanced non-divisor sizes within a factor of two of the
    best tile of the first round along each dimension. Returns the mappings of those rounds over
    plain tiles, then (with ``keep``) those that the same rounds over tiles keeping an operand
    (:func:`_kept_tms`) add, which look near the best of all. ``shared``: the candidates of ``ops``
    in ``half_spad`` and ``half_acc`` (:class:`_Candidates`) and ``loads`` (the transfers of ``ops``
    priced on ``arch``, :class:`_Loads`), when the caller shares them.

    A tile is not priced when a lower bound of the objective's first term already exceeds the best
    so far: its DRAM bytes (every ``n`` column of tiles reads all of the input, every ``m`` row all
    of the weights) over the bandwidth bound the cycles, and so do its computes' array cycles (every
    step of the closed form costs at least its compute's; see :func:`_array_bound`); the DRAM bytes
    times DRAM energy per byte bound the energy. A tile that passes that bound is priced only if the
    DMA cycles of its transfers (:func:`_transfer_cycles`, a closer bound of the cycles and dearer,
    so asked of these tiles only) do not lose either.
    """
    g = ops.gemm
    rows, cols = arch.array.rows, arch.array.cols
    bandwidth = min(arch.dram.bandwidth_bytes_per_cycle, arch.dma.bandwidth_bytes_per_cycle * arch.dma.channels)
    dram_pj = arch.dram.energy_pj_per_byte
    latency, by_energy = objective == "latency", objective == "energy"
    pricer = loads.pricer if loads is not None else _pricer(arch)
    shared = shared or _Candidates(ops, half_spad, half_acc, memo=_MEMO)
    known_moved = shared.known_moved
    loads = loads or _Loads(pricer, ops, memo=_MEMO)
    # What the rounds learn of each candidate is kept by its tag: the tile itself, or, when memoised,
    # its id() (an int hashes at C speed, a Tile by its dataclass __hash__; the memoised candidates
    # are the same objects in every round and dataflow, held by ``shared`` for the whole search).
    tag: Callable[[Tile], object] = id if _MEMO else _itself
    priced: dict[object, Choice] = {}
    best: list[Choice] = []
    limit = float("inf")  # the best's first term: a tile whose bound exceeds it is not priced
    bounds: dict[object, float] = {}
    closer: dict[object, float] = {}  # transfers_bound by tile
    array_bounds: dict[tuple[int, int, int, int], int] = {}  # _array_bound by tile size (kept or not)
    dimension_sums: dict[tuple[int, int], int] = {}  # _array_bound's sums
    order: dict[object, int] = {}  # each candidate's place in the search's order (rounds, then sizes)
    # the memoised rounds' inline bound: _array_bound's dimensions (folded over the rows, over the
    # columns, streamed) and its sums by their tile size
    names = _ARRAY_DIMENSIONS[dataflow]
    dims_of = operator.attrgetter(*names)
    r_extent, c_extent, s_extent = (getattr(g, name) for name in names)
    r_sums: dict[int, int] = {}
    c_sums: dict[int, int] = {}
    s_sums: dict[int, int] = {}

    def bound(tile: Tile) -> float:
        t = tag(tile)
        known = bounds.get(t)
        if known is not None:
            return known
        moved = known_moved.get(t) if _MEMO else None  # shared.moved(tile), read without the call
        if moved is None:
            moved = shared.moved(tile)
        energy = moved * dram_pj
        if objective == "energy":
            known = energy
        else:
            dims = (tile.b, tile.m, tile.k, tile.n)
            array = array_bounds.get(dims) if _MEMO else None
            if array is None:
                array = array_bounds[dims] = _array_bound(pricer, ops, tile, dataflow, dimension_sums) if _MEMO \
                    else _array_bound_by_shapes(pricer, ops, tile, dataflow)
            cycles = max(moved / bandwidth, array)
            known = cycles if objective == "latency" else cycles * energy
        bounds[t] = known
        return known

    def transfers_bound(tile: Tile) -> float:
        # the objective's bound with the cycles bounded by the tile's transfers too (_transfer_cycles):
        # a closer bound, dearer than bound()'s, so asked only of the tiles that bound() lets through
        if objective == "energy":  # transfers' cycles do not bound the energy
            return bound(tile)
        t = tag(tile)
        known = closer.get(t)
        if known is None:
            cycles = (_transfer_cycles if _MEMO else _transfer_cycles_by_kinds)(ops, tile, loads)
            known = closer[t] = max(cycles if objective == "latency" else cycles * shared.moved(tile) * dram_pj,
                                       bound(tile))
        return known

    def price(round_key: tuple[object, ...], sizes: Callable[[], Iterable[tuple[int, int, int]]], kept: bool,
              plain: bool = True) -> None:
        nonlocal limit
        # the round's candidates not priced yet, by tag, in order, each once; a round's tiles depend
        # on its sizes and kinds only, so the dataflows of a search share them (_Candidates.rounds)
        collected = shared.rounds.get((round_key, kept, plain)) if _MEMO else None
        if collected is None:
            collected = {}
            for tb, tk, tn in sizes():
                for tile in shared.plain(tb, tk, tn) if plain else ():
                    collected.setdefault(tag(tile), tile)
                # a split reduction's column of weight tiles, or a row of input tiles, that fits: keep it
                for tile in shared.kept(tb, tk, tn) if kept else ():
                    collected.setdefault(tag(tile), tile)
            if _MEMO:
                shared.rounds[round_key, kept, plain] = collected
        # read only below: when nothing of the round is priced yet, the shared dict itself
        candidates = {t: tile for t, tile in collected.items() if t not in priced} \
            if priced and not priced.keys().isdisjoint(collected) else collected
        if not candidates:
            return
        for t in candidates:
            order.setdefault(t, len(order))
        # Priced most promising first (the least bound), so that the best so far prunes the most; a
        # tile whose bound loses is not priced (the best only improves). The priced are kept in the
        # search's own order, and ties go to the earlier in it, so the choice is the one pricing every
        # tile in that order makes. Taken in that order one by one, the tiles up to the first whose
        # bound loses are priced; the reference prices them in batches, dropping from a batch those
        # whose bound loses before pricing it and after pricing each. Both price the same tiles: the
        # best only improves, so a tile dropped before is dropped after.
        tiles = list(candidates.values())
        found: dict[object, Choice] = {}
        ranked: list[Tile] = []  # for the batches below: the reference, and the array pricing
        if _MEMO and not _VECTORIZED:
            best_key = best[0].cost.key(objective) if best else None
            best_order = order[id(best[0].tile)] if best else 0
            ranked_values = []
            for tile in tiles:  # bound(tile), inline (a round asks it of every candidate)
                t = id(tile)
                value = bounds.get(t)
                if value is None:
                    moved = known_moved[t]  # the candidates are shared's: it knows their bytes
                    if by_energy:
                        value = moved * dram_pj
                    else:  # _array_bound's product of per-dimension sums
                        r, c, s = dims_of(tile)
                        r_folds = r_sums.get(r)
                        if r_folds is None:
                            r_folds = r_sums[r] = _fold_sum(r_extent, r, rows)
                        c_folds = c_sums.get(c)
                        if c_folds is None:
                            c_folds = c_sums[c] = _fold_sum(c_extent, c, cols)
                        streams = s_sums.get(s)
                        if streams is None:
                            streams = s_sums[s] = _stream_sum(pricer, dataflow, s_extent, s)
                        cycles = max(moved / bandwidth, g.batch * r_folds * c_folds * streams)
                        value = cycles if latency else cycles * (moved * dram_pj)
                    bounds[t] = value
                ranked_values.append((value, tile))
            for value, tile in sorted(ranked_values, key=_first):
                if value > limit:  # and so do all that follow
                    break
                t = id(tile)
                if not by_energy:  # transfers_bound(tile), knowing bound(tile)
                    closer_value = closer.get(t)
                    if closer_value is None:
                        cycles = _transfer_cycles(ops, tile, loads)
                        closer_value = closer[t] = max(cycles if latency else cycles * shared.moved(tile) * dram_pj,
                                                       value)
                    if closer_value > limit:
                        continue
                cost = _tile_outer_cost(arch, ops, tile, dataflow, pricer, loads)
                choice = found[t] = _make_choice("tile-outer", dataflow, tile, tile, cost)
                key = cost.key(objective)
                if best_key is None or (key, order[t]) < (best_key, best_order):
                    best[:], best_key, best_order, limit = [choice], key, order[t], key[0]
        else:
            values = [bound(t) for t in tiles]
            ranked = [tiles[i] for i in sorted(range(len(tiles)), key=values.__getitem__)]
        for at in range(0, len(ranked), _BATCH):
            batch = [t for t in ranked[at:at + _BATCH] if not bound(t) > limit]
            if not batch:
                continue
            if _VECTORIZED:  # tiles that keep an operand have the scalar form only
                arrays = [t for t in batch if not (t.keep or keeps_weights(ops, t))]
                priced_arrays = search_arrays.tile_outer_costs(pricer, loads, ops, arrays, dataflow) if arrays else []
                by_tile = dict(zip(arrays, (pricer.total(*f) for f in priced_arrays), strict=True))
                costs = [by_tile[t] if t in by_tile else _tile_outer_cost(arch, ops, t, dataflow, pricer, loads)
                         for t in batch]
            else:
                costs = [_tile_outer_cost(arch, ops, tile, dataflow, pricer, loads) for tile in batch]
            for tile, cost in zip(batch, costs, strict=True):
                if bound(tile) > limit or transfers_bound(tile) > limit:
                    continue
                choice = found[tag(tile)] = Choice("tile-outer", dataflow, tile, tile, cost)
                if not best or (choice.cost.key(objective), order[tag(tile)]) < (best[0].cost.key(objective),
                                                                                    order[tag(best[0].tile)]):
                    best[:] = [choice]
                    limit = choice.cost.key(objective)[0]
        priced.update((t, found[t]) for t in candidates if t in found)

    def first() -> list[tuple[int, int, int]]:
        return sorted(itertools.product(tile_sizes(g.batch, 1), tile_sizes(g.k, rows), tile_sizes(g.n, cols)),
                      key=lambda size: (-size[2], -size[0], -size[1]))  # big n first: fewest input re-reads

    def near(extent: int, unit: int, size: int) -> list[int]:
        return [x for x in _sizes(extent, unit) if size // 2 <= x <= 2 * size]

    def around(tile: Tile, kept: bool, plain: bool = True) -> None:
        price(("around", rows, cols, tile.b, tile.k, tile.n),
              lambda: itertools.product(near(g.batch, 1, tile.b), near(g.k, rows, tile.k), near(g.n, cols, tile.n)),
              kept, plain)

    price(("first", rows, cols), first, False)
    if not best:
        return [], []
    center = best[0].tile
    around(center, False)
    plain = list(priced.values())
    if keep:  # the same rounds with kept operands (plain tiles only where they are new), the
        # second near both kinds' best of the first
        price(("first", rows, cols), first, True, plain=False)
        if best[0].tile != center:
            around(best[0].tile, True)
        around(center, True, plain=False)
    return plain, list(priced.values())[len(plain):]


def _itself(tile: Tile) -> Tile:
    return tile


_first = operator.itemgetter(0)


def _fold_plan(arch: Accelerator, ops: Operands, dataflow: Dataflow, half_spad: int, half_acc: int) -> FoldPlan | None:
    """The longest stream chunk of one fold; when a whole stream fits, the biggest block of folds
    and groups per compute (``None`` when not even one row fits, or when the stream does not fit
    whole and the array cannot split a fold over Computes: ``arch.array.split_folds``)."""
    g = ops.gemm
    rows, cols = arch.array.rows, arch.array.cols
    s1 = g.m if dataflow is Dataflow.OS else g.k
    s2 = g.m if dataflow is Dataflow.IS else g.n
    stream = {Dataflow.WS: g.m, Dataflow.OS: g.k, Dataflow.IS: g.n}[dataflow]

    def fits(tb: int, chunk: int, resident: bool, r: int = min(rows, s1), c: int = min(cols, s2)) -> bool:
        if dataflow is Dataflow.WS:  # inputs chunk x r, weights r x c
            tm, tk, tn = chunk, r, c
            acc = (g.m if resident else chunk) * c
        elif dataflow is Dataflow.OS:  # inputs r x chunk, weights chunk x c
            tm, tk, tn = r, chunk, c
            acc = r * c
        else:  # inputs r x c (k x m), weights r x chunk
            tm, tk, tn = c, r, chunk
            acc = c * (g.n if resident else chunk)
        if ops.conv is not None:  # input bands, by their bound
            spad = ops.x_share(tb, tm, tk) + tb * ops.w_size(1, tk, tn)
        else:
            spad = tb * (tm * tk * ops.in_bytes + ops.w_size(1, tk, tn))
        return spad <= half_spad and tb * acc * ops.acc_bytes <= half_acc

    resident = dataflow is not Dataflow.OS and fits(1, 1, True)
    chunk = largest(lambda size: fits(1, size, resident), stream)
    if chunk < 1 or chunk < stream and not arch.array.split_folds:
        return None
    if chunk < stream:
        return FoldPlan(tb=1, chunk=chunk, resident=resident, s1_block=rows, s2_block=cols)
    c_folds = largest(lambda i: fits(1, chunk, resident, c=min(i * cols, s2)), ceil_div(s2, cols))
    c = min(c_folds * cols, s2)
    r_folds = largest(lambda j: fits(1, chunk, resident, r=min(j * rows, s1), c=c), ceil_div(s1, rows))
    r = min(r_folds * rows, s1)
    tb = largest(lambda size: fits(size, chunk, resident, r=r, c=c), g.batch)
    return FoldPlan(tb=tb, chunk=chunk, resident=resident, s1_block=r_folds * rows, s2_block=c_folds * cols)


def _fold_choice(arch: Accelerator, ops: Operands, dataflow: Dataflow, fold: FoldPlan,
                 pricer: _Pricer | None = None) -> Choice:
    r, c = fold.s1_block, fold.s2_block
    dims = {Dataflow.WS: dict(m=fold.chunk, k=r, n=c), Dataflow.OS: dict(m=r, k=fold.chunk, n=c),
            Dataflow.IS: dict(m=c, k=r, n=fold.chunk)}[dataflow]
    tile = Tile(b=fold.tb, **{d: min(v, getattr(ops.gemm, d)) for d, v in dims.items()})
    return Choice("fold-outer", dataflow, tile, fold, _fold_outer_cost(arch, ops, fold, dataflow, pricer))


def vector_cost(arch: Accelerator, ops: int, sizes: list[int], half_spad: int) -> Cost:
    """A vector layer streamed in chunks that fit ``half_spad``: ``ops`` element operations, the
    tensors of ``sizes`` bytes loaded (inputs) or stored (outputs) once."""
    chunks = max(1, ceil_div(sum(sizes), half_spad)) if half_spad > 0 else 0
    if not chunks:
        return INFEASIBLE
    pricer = _pricer(arch)
    vector = sum(vector_cycles(arch, share(ops, i, chunks)) for i in range(chunks))
    dma = energy = 0.0
    for size in sizes:
        for i in range(chunks):
            cycles, pj = pricer.transfer(share(size, i, chunks), Buffer.SCRATCHPAD, False)
            dma += cycles
            energy += pj
    for i in range(chunks):
        energy += sum(command_energy_pj(arch, Vector(id=0, layer="", op="", elements=share(ops, i, chunks))).values())
    return pricer.total(max(vector, dma), energy, sum(sizes), chunks)


def roofline_cycles(arch: Accelerator, macs: int, compulsory_bytes: int) -> float:
    """The layer's roofline bound: ``max(MACs / peak MACs per cycle, compulsory bytes / DRAM bytes per cycle)``."""
    bandwidth = min(arch.dram.bandwidth_bytes_per_cycle, arch.dma.bandwidth_bytes_per_cycle * arch.dma.channels)
    return max(macs / arch.peak_macs_per_cycle, compulsory_bytes / bandwidth)

"""The abstract schedules of one array layer: which computes run, and what moves around each.

A schedule is an iterator of :class:`Step` (one compute command with its loads and stores, in
operand terms: tensor names and bytes). :func:`tile_outer` and :func:`fold_outer` are the two loop
orders described in :mod:`mapper.decide`; :mod:`mapper.search` prices them and
:mod:`mapper.emit` turns the chosen one into commands with addresses and dependencies.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from fractions import Fraction

from accel.commands import Buffer
from accel.hardware import Dataflow, Sparsity
from accel.hashonce import hash_once
from accel.timing import ceil_div
from mapper.layout import (
    ConvGeometry,
    MatrixView,
    conv_band,
    conv_band_channels,
    conv_band_pixels,
    dense_k_range,
)
from mapper.makers import value_maker
from mapper.plan import Tile
from workloads.graph import GemmShape

__all__ = ["Transfer", "ComputeSpec", "Step", "Operands", "FoldPlan", "tile_outer", "tile_outer_bytes", "tile_segments",
           "fold_outer", "keeps_weights", "keeps_inputs", "kept_bytes", "largest", "tile_sizes", "share"]


@dataclass(frozen=True)
class Transfer:
    tensor: str
    size_bytes: int
    buffer: Buffer
    key: tuple[int, ...] | None = None  # partial sums: a reload waits for the store with the same key
    role: str = ""  # "x" (input), "w" (weights), "out" (results; partial sums with a key)
    origin: tuple[int, int, int, int] = (0, 0, 0, 0)  # (b0, m0, k0, n0) of the tile moved
    extent: tuple[int, int, int, int] = (0, 0, 0, 0)  # (tb, tm, tk, tn)
    stays: bool = False  # the following steps read it where it is (placed at the top of its half)


@dataclass(frozen=True)
class ComputeSpec:
    """What one compute command does: the fields of :class:`~accel.commands.Compute` a schedule decides
    (its addresses and dependencies are the emission's)."""

    m: int
    k: int
    n: int
    batch: int
    dataflow: Dataflow
    accumulate: bool = False  # add to what the accumulator holds (a later k-tile or fold)
    fill: bool = True  # starts its folds (False: continues the previous command's)
    drain: bool = True  # ends its folds (False: the next command continues them)
    sparsity: Sparsity | None = None
    origin: tuple[int, int, int, int] = (0, 0, 0, 0)  # (b0, m0, k0, n0) of the tile in the layer's GEMM
    acc_offset: int = 0  # accumulator words from its block's first word to this tile's first


@dataclass(frozen=True)
class Step:
    """One compute with the transfers around it.

    ``loads`` go to the next scratchpad half (operands) or to the current accumulator half (partial
    sums); ``new_block`` switches to the other accumulator half first; ``stores`` leave after it.
    ``reuses`` names the roles whose operand is the one an earlier step loaded with ``stays`` (the
    same bytes, still in the scratchpad), so the step loads it no more.
    """

    compute: ComputeSpec
    loads: tuple[Transfer, ...] = ()
    stores: tuple[Transfer, ...] = ()
    new_block: bool = False
    reuses: tuple[str, ...] = ()


@hash_once
@dataclass(frozen=True)
class Operands:
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
    in_bytes: Fraction  # input bytes per element of (m, k), at least the tensor's bytes over m x k
    w_bytes: Fraction  # weight bytes per element of (k, n)
    out_bytes: int  # bytes of one output (the input number format)
    acc_bytes: int
    sparsity: Sparsity | None = None
    w_value_bytes: int = 1  # bytes of one weight value (without its index)
    x_rate: Fraction | None = None  # input tensor bytes per element of (b, m, k); None: x_bytes over gemm's
    conv: ConvGeometry | None = None  # a convolution's geometry: its tiles read input bands (mapper.layout)
    dense_k: int = 0  # the layer's dense reduction (N:M: before compression; 0: gemm.k)
    x_word: int = 1  # bytes of one input element
    # a matmul's operands read through the views that reorder a stored tensor (mapper.layout.matrix_view)
    x_view: MatrixView | None = None
    w_view: MatrixView | None = None

    def __post_init__(self) -> None:
        if self.x_rate is None:
            g = self.gemm
            object.__setattr__(self, "x_rate", Fraction(self.x_bytes, g.batch * g.m * g.k))
        object.__setattr__(self, "_shares", {})  # x_share by tile shape: the search asks again and again
        object.__setattr__(self, "_pixel_bytes", {})  # x_pixel_bytes by (tb, tk), likewise
        object.__setattr__(self, "_w_sizes", {})  # w_size by a tile's elements (emission and search alike)

    def x_share(self, tb: int, tm: int, tk: int) -> int:
        """The most bytes of the input tensor a ``tb x tm x tk`` tile reads, wherever it is: its share of
        the input (rounded up) for a GEMM, the largest input band (:func:`mapper.layout.conv_band_bound`)
        for a convolution."""
        shares: dict[tuple[int, int, int], int] = self._shares  # type: ignore[attr-defined]
        share = shares.get((tb, tm, tk))
        if share is None:
            share = shares[tb, tm, tk] = self._x_share(tb, tm, tk)
        return share

    def _x_share(self, tb: int, tm: int, tk: int) -> int:
        if self.conv is not None:
            return max(1, self.x_pixel_bytes(tb, tk) * conv_band_pixels(self.conv, tm))
        if self._dense_nm_input:  # the dense groups a slice covers; one more when it may start mid-group
            assert self._nm is not None
            lo, hi = dense_k_range(0, tk, self._nm)
            span = hi - lo + (self._nm[1] if tk % self._nm[0] else 0)
            return max(1, self.x_word * tb * tm * min(span, self._k))
        rate = self.x_rate
        assert rate is not None
        return max(1, ceil_div(rate.numerator * tb * tm * tk, rate.denominator))

    def x_pixel_bytes(self, tb: int, tk: int) -> int:
        """A convolution's input bytes per pixel of a ``tb x ? x tk`` tile's band, at most
        (:func:`mapper.layout.conv_band_channels`): :meth:`x_share` is this times the band's most
        pixels (:func:`mapper.layout.conv_band_pixels`)."""
        assert self.conv is not None
        known: dict[tuple[int, int], int] = self._pixel_bytes  # type: ignore[attr-defined]
        per_pixel = known.get((tb, tk))
        if per_pixel is None:
            lo, hi = dense_k_range(0, tk, self._nm)
            span = hi - lo + (self._nm[1] if self._nm else 0)  # N:M: a slice may start mid-group
            per_pixel = known[tb, tk] = self.x_word * conv_band_channels(self.conv, tb, min(span, self._k))
        return per_pixel

    def x_tile(self, b0: int, tb: int, m0: int, tm: int, k0: int, tk: int) -> int:
        """Bytes of the input the tile at ``(b0, m0, k0)`` reads (:func:`mapper.layout.x_block`'s size):
        at most :meth:`x_share`."""
        if self.conv is not None:
            p0, p1, ch0, ch1 = conv_band(self.conv, b0, tb, m0, tm, *dense_k_range(k0, tk, self._nm))
            return self.x_word * (p1 - p0) * (ch1 - ch0)
        if self._dense_nm_input:
            lo, hi = dense_k_range(k0, tk, self._nm)
            return self.x_word * tb * tm * (min(hi, self._k) - lo)
        return self.x_share(tb, tm, tk)

    @property
    def _k(self) -> int:
        """The layer's dense reduction."""
        return self.dense_k or self.gemm.k

    @property
    def _dense_input(self) -> bool:
        """A GEMM whose input is its dense ``groups x m x k`` matrix (a tile reads a block of it)."""
        g = self.gemm
        return self.conv is None and self.x_bytes == self.x_word * g.batch * g.m * self._k

    @property
    def _dense_nm_input(self) -> bool:
        """An N:M GEMM whose input is its dense ``groups x m x k`` matrix: tiles read the groups they cover."""
        return self.sparsity is not None and self._dense_input

    @property
    def _nm(self) -> tuple[int, int] | None:
        return None if self.sparsity is None else (self.sparsity.n, self.sparsity.m)

    # -- the rows a tile's transfer moves (what a DMA with a request structure issues requests for) --

    def x_row_bytes(self, tb: int, tk: int) -> int:
        """Bytes of one row of an input tile (0: the tile is contiguous): a GEMM tile's rows are its
        ``tk`` (dense) reduction elements, a convolution band's its channels."""
        lo, hi = dense_k_range(0, tk, self._nm)
        if self.conv is not None:
            channels = conv_band_channels(self.conv, tb, hi - lo)
            return 0 if channels >= self.conv.c else self.x_word * channels
        if not self._dense_input:
            return 0  # priced as a share of the input's bytes
        if self.x_view is not None:  # runs of tk elements, rows apart in the source unless they abut
            return 0 if hi - lo == self.x_view.row_stride else self.x_word * (hi - lo)
        return 0 if hi - lo >= self._k else self.x_word * (hi - lo)

    def w_row_bytes(self, tk: int, tn: int) -> int:
        """Bytes of one row of a weight tile (0: contiguous; N:M tiles are packed): ``tn`` weights, or a
        second operand read through its view (:attr:`w_view`: runs of ``tn``, or of ``tk`` transposed)."""
        view = self.w_view
        if view is not None and view.transposed:
            return 0 if tk == view.col_stride else self.x_word * tk
        if view is not None:
            return 0 if tn == view.row_stride else self.x_word * tn
        return 0 if self.sparsity is not None or tn >= self.gemm.n else self.w_value_bytes * tn

    def out_row_bytes(self, tb: int, tn: int) -> int:
        """Bytes of one row of an output tile (0: contiguous): ``tn`` results of the output matrix's
        ``groups * n`` columns (a convolution) or ``n`` (a GEMM)."""
        g = self.gemm
        whole = tn >= g.n and (self.conv is None or tb >= g.batch)
        return 0 if whole else self.out_bytes * tn

    def row_bytes(self, t: Transfer) -> int:
        """:meth:`x_row_bytes`, :meth:`w_row_bytes` or :meth:`out_row_bytes` of a schedule's transfer
        (partial sums go to a scratch area of their own: contiguous)."""
        tb, _, tk, tn = t.extent
        if t.role == "x":
            return self.x_row_bytes(tb, tk)
        if t.role == "w":
            return self.w_row_bytes(tk, tn)
        if t.role == "out" and t.key is None:
            return self.out_row_bytes(tb, tn)
        return 0

    def w_size(self, tb: int, tk: int, tn: int) -> int:
        """Bytes of a ``tb x tk x tn`` weight tile (a function of its elements; memoised by them)."""
        elements = tb * tk * tn
        sizes: dict[int, int] = self._w_sizes  # type: ignore[attr-defined]
        size = sizes.get(elements)
        if size is None:
            if self.sparsity is not None:  # kept values and their indices, as sim.numerics stores them
                size = self.sparsity.compressed_bytes(elements, 8 * self.w_value_bytes)
            else:
                size = ceil_div(elements * self.w_bytes.numerator, self.w_bytes.denominator)
            sizes[elements] = size
        return size


#: Fast constructors of the values a schedule yields by the thousand (mapper.makers.value_maker).
_transfer, _compute, _step = value_maker(Transfer), value_maker(ComputeSpec), value_maker(Step)


def keeps_weights(ops: Operands, tile: Tile) -> bool:
    """Whether :func:`tile_outer` keeps each column of weight tiles for its whole column of output
    tiles: the first output tile of a column loads them (one per ``k`` tile), they stay in the
    scratchpad (stacked at the top of the half the first was loaded into) and the column's other
    output tiles read them there while their input tiles stream. Always when the reduction is one
    tile (unless the tile keeps its inputs instead); with a split reduction when the tile says so
    (``Tile.keep == "w"``: the search checks that the column and an input tile fit half the working
    space, :func:`kept_bytes`)."""
    return ops.w is not None and tile.keep != "x" and (tile.k >= ops.gemm.k or tile.keep == "w")


def keeps_inputs(ops: Operands, tile: Tile) -> bool:
    """Whether :func:`tile_outer` runs the output tiles row by row (``Tile.keep == "x"``): the first
    output tile of a row loads its input tiles (one per ``k`` tile), which stay in the scratchpad as
    kept weights do, and the row's other output tiles read them there while their weights stream;
    the input is then read once, however many columns of output tiles the layer has."""
    return ops.w is not None and tile.keep == "x"


def kept_bytes(ops: Operands, role: str, tb: int, tm: int, tk: int, tn: int) -> int:
    """Bytes of what a tile keeps on chip over the whole reduction: a column of ``tb x tk x tn``
    weight tiles (``role`` ``"w"``) or a row of ``tb x tm x tk`` input tiles, each at its largest
    (:meth:`Operands.x_share`) (``"x"``)."""
    full, rest = divmod(ops.gemm.k, tk)
    if role == "w":
        return full * ops.w_size(tb, tk, tn) + (ops.w_size(tb, rest, tn) if rest else 0)
    return full * ops.x_share(tb, tm, tk) + (ops.x_share(tb, tm, rest) if rest else 0)


def tile_outer(ops: Operands, tile: Tile, dataflow: Dataflow) -> Iterator[Step]:
    """Output tiles (groups, then columns, then rows; rows then columns when the tile keeps its
    inputs) with the reduction innermost; see :func:`keeps_weights` and :func:`keeps_inputs`."""
    keep_w, keep_x = keeps_weights(ops, tile), keeps_inputs(ops, tile)
    for b0, n0, m0 in _tile_order(ops, tile, keep_x):
        yield from _output_tile(ops, tile, dataflow, keep_w, keep_x, b0, n0, m0)


def tile_outer_bytes(ops: Operands, tile: Tile) -> int:
    """The bytes the loads and stores of :func:`tile_outer`'s steps move, summed without making them:
    each input tile once per column of output tiles (once per row when the tile keeps its inputs),
    each weight tile once per row of output tiles (once per column when it keeps them), every
    output once. A convolution's input tiles are summed position by position (their bands differ)."""
    g = ops.gemm
    keep_w, keep_x = keeps_weights(ops, tile), keeps_inputs(ops, tile)
    b_starts, m_starts, k_starts = range(0, g.batch, tile.b), range(0, g.m, tile.m), range(0, g.k, tile.k)
    n_tiles, m_tiles = ceil_div(g.n, tile.n), len(m_starts)
    x = 0
    for b0 in b_starts:
        tb = min(tile.b, g.batch - b0)
        for m0 in m_starts:
            tm = min(tile.m, g.m - m0)
            x += sum(ops.x_tile(b0, tb, m0, tm, k0, min(tile.k, g.k - k0)) for k0 in k_starts)
    w = 0
    if ops.w is not None:
        w = sum(ops.w_size(min(tile.b, g.batch - b0), min(tile.k, g.k - k0), min(tile.n, g.n - n0))
                for b0 in b_starts for n0 in range(0, g.n, tile.n) for k0 in k_starts)
    return (x * (1 if keep_x else n_tiles) + w * (1 if keep_w else m_tiles)
            + g.batch * g.m * g.n * ops.out_bytes)


def tile_segments(ops: Operands, tile: Tile, dataflow: Dataflow,
                  size: int) -> Iterator[tuple[Hashable, tuple[int, int, int, int], Callable[[], Iterator[Step]]]]:
    """:func:`tile_outer`'s steps cut into segments, each ``(key, origin, steps)``: up to ``size``
    output tiles of one line (a column of output tiles, or a row when the tile keeps its inputs),
    the ``(b0, m0, 0, n0)`` of its first tile, and a function giving its steps (those of
    :func:`tile_outer`, in its order, segment after segment).

    Two segments with equal keys have equal steps but for their origins, all moved by the difference
    of the segments' origins: the key holds each tile's position from the segment's first, its
    extents and what it reuses, and for a convolution (whose input bands are not a shift of each
    other from row to row, nor from group to group) the segment's group and first row, so that its
    segments are alike only along the columns; but for a pointwise one (1x1, stride 1, no padding:
    :attr:`mapper.layout.ConvGeometry.pointwise`), whose bands are its rows of pixels, as a GEMM's.
    N:M operands are not cut (their inputs' sizes depend on where a tile starts)."""
    if ops.sparsity is not None:
        raise ValueError("N:M operands are not cut into segments")
    g = ops.gemm
    keep_w, keep_x = keeps_weights(ops, tile), keeps_inputs(ops, tile)
    lines = itertools.product(range(0, g.batch, tile.b), range(0, g.m, tile.m)) if keep_x \
        else itertools.product(range(0, g.batch, tile.b), range(0, g.n, tile.n))
    inner_extent, inner_step = (g.n, tile.n) if keep_x else (g.m, tile.m)
    for b0, line0 in lines:
        tb = min(tile.b, g.batch - b0)
        t_line = min(tile.m if keep_x else tile.n, (g.m if keep_x else g.n) - line0)
        for first in range(0, inner_extent, inner_step * size):
            starts = range(first, min(inner_extent, first + inner_step * size), inner_step)
            tiles = [(b0, i, line0) if keep_x else (b0, line0, i) for i in starts]  # (b0, n0, m0)
            shape = tuple((i - first, min(inner_step, inner_extent - i), i > 0) for i in starts)
            where = (b0, line0 if keep_x else first) if ops.conv is not None and not ops.conv.pointwise else None
            key = (keep_w, keep_x, tb, t_line, shape, where)
            origin = (b0, line0, 0, first) if keep_x else (b0, first, 0, line0)

            def steps(tiles: list[tuple[int, int, int]] = tiles) -> Iterator[Step]:
                for b, n, m in tiles:
                    yield from _output_tile(ops, tile, dataflow, keep_w, keep_x, b, n, m)

            yield key, origin, steps


def _tile_order(ops: Operands, tile: Tile, keep_x: bool) -> Iterator[tuple[int, int, int]]:
    """The ``(b0, n0, m0)`` of :func:`tile_outer`'s output tiles in its order."""
    g = ops.gemm
    outer = (range(0, g.batch, tile.b), range(0, g.n, tile.n), range(0, g.m, tile.m))
    if keep_x:
        return ((b0, n0, m0) for b0, m0, n0 in itertools.product(outer[0], outer[2], outer[1]))
    return itertools.product(*outer)


def _output_tile(ops: Operands, tile: Tile, dataflow: Dataflow, keep_w: bool, keep_x: bool,
                 b0: int, n0: int, m0: int) -> Iterator[Step]:
    """The steps of :func:`tile_outer`'s output tile at ``(b0, m0, n0)``: its reduction's tiles."""
    g = ops.gemm
    tb, tn, tm = min(tile.b, g.batch - b0), min(tile.n, g.n - n0), min(tile.m, g.m - m0)
    k_starts = range(0, g.k, tile.k)
    last_k = k_starts[-1]
    # the first output tile of a column (row) loaded this k tile's weights (inputs)
    reused = ("w",) if keep_w and m0 > 0 else ("x",) if keep_x and n0 > 0 else ()
    load_x, load_w = "x" not in reused, ops.w is not None and "w" not in reused
    x, w, sparsity, scratchpad = ops.x, ops.w, ops.sparsity, Buffer.SCRATCHPAD
    for k0 in k_starts:
        tk = min(tile.k, g.k - k0)
        at, size = (b0, m0, k0, n0), (tb, tm, tk, tn)
        loads = []
        if load_x:
            loads.append(_transfer(x, ops.x_tile(b0, tb, m0, tm, k0, tk), scratchpad, role="x", origin=at,
                                   extent=size, stays=keep_x))
        if load_w:
            loads.append(_transfer(w, ops.w_size(tb, tk, tn), scratchpad, role="w", origin=at, extent=size,
                                   stays=keep_w))
        stores = (_transfer(ops.out, tb * tm * tn * ops.out_bytes, Buffer.ACCUMULATOR, role="out", origin=at,
                            extent=size),) if k0 == last_k else ()
        yield _step(
            compute=_compute(m=tm, k=tk, n=tn, batch=tb, dataflow=dataflow, accumulate=k0 > 0, sparsity=sparsity,
                             origin=at),
            loads=tuple(loads),
            stores=stores,
            new_block=k0 == 0,
            reuses=reused,
        )


@dataclass(frozen=True)
class FoldPlan:
    """Fold-outer sizes: groups per compute, the stream chunk, and whether partial sums stay on chip.

    When a fold's whole stream fits in one chunk, one compute may cover a block of ``s1_block x
    s2_block`` (multiples of the array) folds, each paying its full fill and drain.
    """

    tb: int
    chunk: int
    resident: bool
    s1_block: int
    s2_block: int


def fold_outer(ops: Operands, plan: FoldPlan, dataflow: Dataflow, rows: int, cols: int) -> Iterator[Step]:
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
                    start = {s2: a0, s1: f0, t: c0}
                    at, ext = (b0, start["m"], start["k"], start["n"]), (tb, tm, tk, tn)
                    # the block's words: chunks of the stream one after another (OS: one tile)
                    acc_offset = {Dataflow.WS: tb * c0 * tn, Dataflow.IS: tb * tm * c0, Dataflow.OS: 0}[dataflow]
                    first_chunk, last_chunk = c0 == 0, c0 == chunks[-1]
                    first_fold, last_fold = f0 == 0, f0 == s1_starts[-1]
                    # the streamed operand every chunk; the stationary one with the fold's first chunk
                    x_needed = dataflow is not Dataflow.IS or first_chunk
                    w_needed = ops.w is not None and (dataflow is not Dataflow.WS or first_chunk)
                    loads = []
                    if x_needed:
                        loads.append(_transfer(ops.x, ops.x_tile(b0, tb, at[1], tm, at[2], tk), Buffer.SCRATCHPAD,
                                               role="x", origin=at, extent=ext))
                    if w_needed:
                        loads.append(_transfer(ops.w, ops.w_size(tb, tk, tn), Buffer.SCRATCHPAD, role="w", origin=at,
                                               extent=ext))
                    stores = []
                    outputs = tb * tm * tn
                    final = _transfer(ops.out, outputs * ops.out_bytes, Buffer.ACCUMULATOR, role="out", origin=at,
                                      extent=ext)
                    if not partial_sums:
                        new_block, accumulate = first_chunk, not first_chunk
                        if last_chunk:
                            stores.append(final)
                    elif plan.resident:
                        new_block, accumulate = first_fold and first_chunk, not first_fold
                        if last_fold:
                            stores.append(final)
                    else:
                        new_block, accumulate, acc_offset = True, not first_fold, 0
                        key = (b0, a0, c0)
                        partial = _transfer(ops.out, outputs * ops.acc_bytes, Buffer.ACCUMULATOR, key, role="out",
                                            origin=at, extent=ext)
                        if not first_fold:
                            loads.append(partial)
                        stores.append(final if last_fold else partial)
                    yield _step(
                        compute=_compute(m=tm, k=tk, n=tn, batch=tb, dataflow=dataflow, accumulate=accumulate,
                                         fill=first_chunk, drain=last_chunk, sparsity=ops.sparsity, origin=at,
                                         acc_offset=acc_offset),
                        loads=tuple(loads), stores=tuple(stores), new_block=new_block,
                    )


def step_count(ops: Operands, plan: Tile | FoldPlan, dataflow: Dataflow) -> int:
    """How many steps (compute commands) :func:`tile_outer` or :func:`fold_outer` yields for ``plan``,
    in closed form: the mapper checks a layer's command count before emitting anything."""
    g = ops.gemm
    if isinstance(plan, Tile):
        return ceil_div(g.batch, plan.b) * ceil_div(g.n, plan.n) * ceil_div(g.m, plan.m) * ceil_div(g.k, plan.k)
    s1, s2, t = {Dataflow.WS: ("k", "n", "m"), Dataflow.OS: ("m", "n", "k"), Dataflow.IS: ("k", "m", "n")}[dataflow]
    extent = {"m": g.m, "k": g.k, "n": g.n}
    return (ceil_div(g.batch, plan.tb) * ceil_div(extent[s2], plan.s2_block) * ceil_div(extent[s1], plan.s1_block)
            * ceil_div(extent[t], plan.chunk))


def largest(ok: object, limit: int) -> int:
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


def tile_sizes(extent: int, unit: int) -> Iterator[int]:
    """Tile sizes worth trying along one dimension: multiples of ``unit`` in powers of two, and all."""
    size = unit
    while size < extent:
        yield size
        size *= 2
    yield extent


def share(total: int, i: int, parts: int) -> int:
    """The ``i``-th of ``parts`` nearly equal integer shares of ``total`` (they sum to ``total``)."""
    return total * (i + 1) // parts - total * i // parts

"""Where the bytes of a plan are: tensors in DRAM, tiles in the buffers, and the blocks commands move.

The contract between the mapper (which writes addresses and :class:`~accel.commands.Block` patterns
into commands) and everything that runs a plan on data (:func:`sim.execute.execute`, an RTL top level):

**Storage order of a tensor** (:func:`storage_shape`). An image (an activation of rank 4, ``N x C x H
x W``, that a convolution or a pool reads or writes, or that layers other than views, GEMMs and
matmuls connect to one: :func:`image_tensors`) is stored channels-last, as the ``N*H*W x C`` matrix
of its pixels; any other tensor (attention's rank-4 heads and scores too) row-major, as the
``rows x last`` matrix of its leading dimensions by its last, each element in the bytes of its number
format (one byte for the codes of an 8-bit format; :func:`to_storage` / :func:`from_storage` convert).

**Weights in DRAM** are laid out for the array ahead of time, as a compiler does: the ``groups x k x
n`` matrix of the layer's GEMM, row-major, ``k`` running over input channel, kernel row, kernel column
(:func:`weight_matrix`).

**Tiles.** A compute's tile ``(b0, m0, k0, n0)`` of extent ``(tb, tm, tk, tn)`` reads

* its input: for a GEMM or matmul the ``tb x tm x tk`` block of the ``groups x m x k`` input; for a
  convolution the *band* of input pixels and channels its output pixels and reduction need
  (:func:`conv_band`: whole input rows between the first and the last kernel window, or exactly the
  tile's pixels for a 1x1 stride-1 unpadded kernel; the channels of the reduction slice), which the
  array's input feeder turns into im2col rows as it streams them;
* its weights: the ``tb x tk x tn`` block of the weight matrix; for an N:M layer (``k`` then counts
  kept entries, :func:`dense_k_range`) the tile as the compiler packed it (:class:`PackedTile`); for
  a matmul of two activations the ``tb x tk x tn`` block of its second operand's ``batch x k x n``
  matrix;

and accumulates into ``tb x tm x tn`` 32-bit words, packed. An N:M tile's input is the dense
reduction its groups cover (:func:`dense_k_range`), which the sparse array indexes by each weight's
in-group index. Its output goes to the ``tb x tm x tn``
block of the output matrix ``m x (groups * n)`` (a convolution's group ``g`` owns columns ``g*n ..``).

**Views read through.** An operand of a matmul of two activations that is a view reordering a stored
tensor's bytes (attention's head split, ``k^T``) is never copied: its tiles read their bytes in that
tensor (:func:`matrix_view`, :func:`view_block`), runs along the tile's columns, or, for a second
operand whose reduction runs along the source's contiguous axis (``x @ y^T``), ``tn`` runs of ``tk``
that the array takes transposed (a layer setting, as Gemmini's ``b_transpose``).

**Broadcast operands.** An element-wise add or multiply whose activation operand broadcasts to the
output (a squeeze-excite scale ``1 x C x 1 x 1`` against ``1 x C x H x W``) runs in runs of output
elements in storage order; each chunk reads the run of the operand's storage that its elements
combine with (:func:`broadcast_positions`, :func:`broadcast_span`: all ``C`` codes of a per-channel
scale, for a chunk of whole pixels), which the vector unit indexes as the layer's shapes say (a
layer setting, as the pool's window geometry).
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Hashable
from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np

from accel.commands import Block
from accel.timing import ceil_div
from workloads.graph import Graph, Layer, OpKind

__all__ = ["ConvGeometry", "PackedTile", "conv_geometry", "conv_band", "conv_band_bound", "conv_band_channels",
           "conv_band_pixels", "conv_band_most",
           "dense_k_range", "image_tensors", "make_block", "MatrixView", "matrix_view", "view_block", "row_major",
           "storage_shape",
           "to_storage", "from_storage", "weight_matrix", "x_block", "w_block", "out_block", "broadcast_positions",
           "broadcast_span", "broadcasts"]


@dataclass(frozen=True)
class ConvGeometry:
    """A convolution's shapes: input ``n x c x h x w``, output ``n x oc x oh x ow``, its kernel."""

    n: int
    c: int
    h: int
    w: int
    oc: int
    oh: int
    ow: int
    kh: int
    kw: int
    sh: int
    sw: int
    dh: int
    dw: int
    pt: int
    pl: int
    groups: int

    @property
    def group_channels(self) -> int:
        return self.c // self.groups

    @cached_property  # a function of the fields (frozen): the band functions ask it thousands of times
    def pointwise(self) -> bool:
        """Whether input pixel ``p`` feeds exactly output pixel ``p`` (1x1, stride 1, no padding)."""
        return (self.kh, self.kw, self.sh, self.sw, self.pt, self.pl) == (1, 1, 1, 1, 0, 0) and \
            (self.h, self.w) == (self.oh, self.ow)


def conv_geometry(graph: Graph, layer: Layer) -> ConvGeometry | None:
    """The geometry of a convolution layer (``None`` for any other layer)."""
    a = layer.attrs
    x, y = graph.tensors[layer.inputs[0]].shape, graph.tensors[layer.outputs[0]].shape
    if layer.op is not OpKind.CONV or "kernel" not in a or "stride" not in a or len(x) != 4 or len(y) != 4:
        return None  # (a convolution given only as its GEMM, as SCALE-Sim topologies give it: a GEMM)
    n, c, h, w = x
    _, oc, oh, ow = y
    if layer.gemm is None or layer.gemm.m != n * oh * ow or layer.gemm.k != (c // int(a.get("groups", 1))) * \
            a["kernel"][0] * a["kernel"][1]:
        return None
    (kh, kw), (sh, sw) = a["kernel"], a["stride"]
    dh, dw = a.get("dilation", (1, 1))
    pt, pl, _, _ = a.get("padding", (0, 0, 0, 0))
    return ConvGeometry(n, c, h, w, oc, oh, ow, kh, kw, sh, sw, dh, dw, pt, pl, int(a.get("groups", 1)))


@dataclass(frozen=True)
class PackedTile:
    """One tile of N:M weights as the compiler stores it, ``offset`` bytes from its tensor's DRAM address.

    The tile is the ``tb x tk x tn`` block at ``(b0, k0, n0)`` of the compressed weight matrix (``groups
    x ceil(k/M)*N x n``: kept entry ``kc`` of a column is slot ``kc % N`` of group ``kc // N``, in
    ascending in-group index, :func:`sim.numerics.nm_compress`'s order). Its bytes are two little-endian
    bit streams, each padded to a whole byte: every entry's value (the weight format's bits), then
    every entry's in-group index (``ceil(log2 M)`` bits), both in the order group, column, ``kc``
    (:meth:`accel.hardware.Sparsity.compressed_bytes` of ``tb * tk * tn`` entries). The mapper packs
    each distinct tile its program loads once, one after another in the order first loaded; the
    plan lists them (:attr:`mapper.plan.Plan.weight_tiles`) so that whoever writes the DRAM image
    writes the same bytes.
    """

    origin: tuple[int, int, int]  # (b0, k0, n0)
    extent: tuple[int, int, int]  # (tb, tk, tn)
    offset: int
    size_bytes: int


def dense_k_range(k0: int, tk: int, nm: tuple[int, int] | None) -> tuple[int, int]:
    """The dense reduction ``[lo, hi)`` a reduction slice covers (for N:M, ``k`` is the compressed one:
    kept element ``i`` belongs to the group of ``m`` dense elements ``i // n``)."""
    if nm is None:
        return k0, k0 + tk
    n, m = nm
    return (k0 // n) * m, ((k0 + tk - 1) // n + 1) * m


def conv_band(g: ConvGeometry, b0: int, tb: int, m0: int, tm: int, k_lo: int, k_hi: int) -> tuple[int, int, int, int]:
    """``(p0, p1, ch0, ch1)``: the input pixels ``[p0, p1)`` (of ``n*h*w``) and channels ``[ch0, ch1)`` a
    tile of groups ``[b0, b0 + tb)``, output pixels ``[m0, m0 + tm)`` and dense reduction ``[k_lo, k_hi)`` reads."""
    kk = g.kh * g.kw
    cg = g.group_channels
    c_lo, c_hi = k_lo // kk, min(cg, ceil_div(k_hi, kk))
    ch0, ch1 = b0 * cg + c_lo, (b0 + tb - 1) * cg + c_hi
    if g.pointwise:
        return m0, m0 + tm, ch0, ch1
    per_image = g.oh * g.ow
    first, last = m0, m0 + tm - 1
    n_a, oh_a = first // per_image, (first % per_image) // g.ow
    n_b, oh_b = last // per_image, (last % per_image) // g.ow
    row_lo = max(0, oh_a * g.sh - g.pt)
    row_hi = min(g.h, oh_b * g.sh - g.pt + (g.kh - 1) * g.dh + 1)
    return (n_a * g.h + row_lo) * g.w, (n_b * g.h + row_hi) * g.w, ch0, ch1


def conv_band_bound(g: ConvGeometry, tb: int, tm: int, k_span: int) -> int:
    """The most bytes :func:`conv_band` gives for any tile of ``tb`` groups, ``tm`` output pixels and a
    reduction slice spanning ``k_span`` dense elements (what a tile's scratchpad share must hold): its
    most pixels (:func:`conv_band_pixels`) times its most channels (:func:`conv_band_channels`)."""
    return conv_band_pixels(g, tm) * conv_band_channels(g, tb, k_span)


def conv_band_pixels(g: ConvGeometry, tm: int) -> int:
    """The most input pixels :func:`conv_band` gives for a run of ``tm`` output pixels (at least 1 for
    ``tm >= 1``; never fewer for more)."""
    if g.pointwise:
        return tm
    rows = min(g.n * g.oh, ceil_div(tm, g.ow) + 1)  # output rows a run of tm pixels touches
    in_rows = (rows - 1) * g.sh + (g.kh - 1) * g.dh + 1
    if g.n > 1:  # a run across images: each image's band starts at its own padding
        in_rows += g.pt + g.kh * g.dh
    images = min(g.n, ceil_div(rows, g.oh) + 1)
    return min(g.n * g.h * g.w, in_rows * g.w, images * g.h * g.w)


def conv_band_most(g: ConvGeometry, pixels: int) -> int:
    """The most output pixels ``tm`` (of ``1..n*oh*ow``; 0 if none) whose :func:`conv_band_pixels` are at
    most ``pixels``, in closed form (what searching them for the largest gives: the pixels never
    shrink as ``tm`` grows)."""
    most = g.n * g.oh * g.ow
    if g.pointwise:
        return max(0, min(most, pixels))
    if pixels >= g.n * g.h * g.w:  # the whole input
        return most
    # the most output rows (conv_band_pixels' ``rows``) whose input rows, or whose images, fit
    base = (g.kh - 1) * g.dh + 1 + (g.pt + g.kh * g.dh if g.n > 1 else 0)
    by_rows = (pixels // g.w - base) // g.sh + 1
    images = pixels // (g.h * g.w)
    by_images = (images - 1) * g.oh  # images = min(n, ceil(rows / oh) + 1): n > images here
    rows = max(by_rows, by_images)
    if rows >= g.n * g.oh:
        return most
    return max(0, min(most, (rows - 1) * g.ow))  # ceil(tm / ow) + 1 <= rows


def conv_band_channels(g: ConvGeometry, tb: int, k_span: int) -> int:
    """The most channels :func:`conv_band` gives for ``tb`` groups and a reduction slice spanning
    ``k_span`` dense elements (a slice may start inside a channel's kernel window)."""
    cg = g.group_channels
    return (tb - 1) * cg + min(cg, ceil_div(k_span, g.kh * g.kw) + 1)


def make_block(row_bytes: int, rows: int = 1, row_stride: int = 0, planes: int = 1,
               plane_stride: int = 0) -> Block | None:
    """The :class:`Block` of ``planes x rows`` runs of ``row_bytes``, merged where runs are adjacent;
    ``None`` when it is one contiguous run."""
    if rows == 1:
        row_stride = row_bytes
    if row_stride == row_bytes:
        row_bytes, rows, row_stride = row_bytes * rows, 1, row_bytes * rows
    if planes == 1:
        plane_stride = rows * row_stride
    if planes > 1 and plane_stride == rows * row_stride:
        if rows == 1:
            row_bytes, row_stride, planes = row_bytes * planes, row_bytes * planes, 1
        else:
            rows, planes = rows * planes, 1
        plane_stride = rows * row_stride
    if planes == 1 and rows == 1:
        return None
    return _shared_block(rows, row_bytes, row_stride, planes, plane_stride)


# Blocks are immutable and a layer's tiles repeat a few shapes: one object per shape (a GPT-2 prefill's
# 133,000 DRAM blocks have a few hundred), so a program holds no copy of a block per command.
_shared_block = lru_cache(maxsize=1 << 16)(Block)


# -- tensors ---------------------------------------------------------------------------------------

_MEMO: dict[int, tuple[weakref.ref[Graph], dict[Hashable, object]]] = {}


def _memo(graph: Graph) -> dict[Hashable, object]:
    """Results computed for ``graph`` (graphs are immutable), kept while it lives."""
    key = id(graph)
    entry = _MEMO.get(key)
    if entry is None or entry[0]() is not graph:
        entry = (weakref.ref(graph, lambda _, key=key: _MEMO.pop(key, None)), {})  # type: ignore[misc]
        _MEMO[key] = entry
    return entry[1]


def image_tensors(graph: Graph) -> frozenset[str]:
    """The rank-4 tensors of ``graph`` stored channels-last: images, the tensors a convolution or a pool
    reads or writes and every rank-4 tensor a layer other than a view, a GEMM or a matmul connects to
    one (element-wise layers, activations, norms and concatenations see one storage order in all
    their operands). Other rank-4 tensors (attention's heads and scores) are stored row-major."""
    memo = _memo(graph)
    if "images" not in memo:
        memo["images"] = _image_tensors(graph)
    return memo["images"]  # type: ignore[return-value]


def _image_tensors(graph: Graph) -> frozenset[str]:
    parent: dict[str, str] = {}

    def root(name: str) -> str:
        while parent.setdefault(name, name) != name:
            name = parent[name]
        return name

    seeds = set()
    for layer in graph.layers:
        if layer.op.is_view or layer.op in (OpKind.GEMM, OpKind.MATMUL):
            continue
        ranked = [t for t in (*layer.inputs, *layer.outputs)
                  if len(graph.tensors[t].shape) == 4 and not graph.tensors[t].is_constant]
        for t in ranked[1:]:
            parent[root(t)] = root(ranked[0])
        if layer.op in (OpKind.CONV, OpKind.POOL):
            seeds.update(ranked)
    images = {root(t) for t in seeds}
    return frozenset(name for name, t in graph.tensors.items()
                     if len(t.shape) == 4 and not t.is_constant and root(name) in images)


def storage_shape(shape: tuple[int, ...], *, image: bool = True) -> tuple[int, int]:
    """``(rows, columns)`` of a tensor of ``shape`` as stored (see the module docstring; ``image``: a rank-4
    tensor is an image, :func:`image_tensors`)."""
    if len(shape) == 4 and image:
        n, c, h, w = shape
        return n * h * w, c
    if not shape:
        return 1, 1
    return math.prod(shape[:-1]), shape[-1]


def row_major(shape: tuple[int, ...], *, image: bool = True) -> bool:
    """Whether a tensor of ``shape`` is stored in row-major order (its bytes in numpy's order): any tensor
    but an image (rank 4, :func:`image_tensors`) with both several channels and several pixels."""
    return len(shape) != 4 or not image or shape[1] == 1 or shape[2] * shape[3] == 1


def to_storage(values: np.ndarray, *, image: bool = True) -> np.ndarray:
    """A tensor's values in storage order, flat (``image``: a rank-4 tensor is an image)."""
    values = np.asarray(values)
    if values.ndim == 4 and image:
        values = values.transpose(0, 2, 3, 1)
    return values.reshape(-1)


def from_storage(flat: np.ndarray, shape: tuple[int, ...], *, image: bool = True) -> np.ndarray:
    """The inverse of :func:`to_storage`: a tensor of ``shape`` from its values in storage order."""
    flat = np.asarray(flat)
    if len(shape) == 4 and image:
        n, c, h, w = shape
        return flat.reshape(n, h, w, c).transpose(0, 3, 1, 2)
    return flat.reshape(shape)


def broadcasts(shape: tuple[int, ...], out_shape: tuple[int, ...]) -> bool:
    """Whether a ``shape`` operand broadcasts to ``out_shape`` (numpy's rules) without widening it."""
    try:
        return np.broadcast_shapes(shape, out_shape) == tuple(out_shape)
    except ValueError:
        return False


def _broadcast_axes(shape: tuple[int, ...], out_shape: tuple[int, ...], image: bool,
                    out_image: bool) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The output's axes in storage order (sizes) and, along each, the stride of a broadcast operand of
    ``shape``'s storage position (0 where it broadcasts): the position is linear in the output's
    storage multi-index. Raises ``ValueError`` if ``shape`` does not broadcast to ``out_shape``."""
    if not broadcasts(shape, out_shape):
        raise ValueError(f"shape {shape} does not broadcast to {out_shape}")
    rank = len(out_shape)
    padded = (1,) * (rank - len(shape)) + tuple(shape)

    def order(r: int, is_image: bool) -> tuple[int, ...]:  # logical axes in storage order
        return (0, 2, 3, 1) if r == 4 and is_image else tuple(range(r))
    stride, strides = 1, [0] * rank
    for axis in reversed(order(len(shape), image)):  # the operand's own storage strides
        strides[axis + rank - len(shape)] = stride if padded[axis + rank - len(shape)] > 1 else 0
        stride *= shape[axis]
    axes = order(rank, out_image)
    return tuple(out_shape[a] for a in axes), tuple(strides[a] for a in axes)


def broadcast_positions(shape: tuple[int, ...], out_shape: tuple[int, ...], lo: int, hi: int, *, image: bool,
                        out_image: bool) -> np.ndarray:
    """For elements ``[lo, hi)`` of an ``out_shape`` tensor in storage order, the storage position of the
    element of a ``shape`` tensor that broadcasts onto each (numpy broadcasting; ``image`` and
    ``out_image``: each is stored as an image, :func:`image_tensors`)."""
    dims, strides = _broadcast_axes(tuple(shape), tuple(out_shape), image, out_image)
    index = np.unravel_index(np.arange(lo, hi), dims)
    return sum((i * s for i, s in zip(index, strides, strict=True) if s), np.zeros(hi - lo, dtype=np.int64))


def broadcast_span(shape: tuple[int, ...], out_shape: tuple[int, ...], lo: int, hi: int, *, image: bool,
                   out_image: bool) -> tuple[int, int]:
    """``[start, end)``: the run of a broadcast operand's storage that output elements ``[lo, hi)`` read
    (the least and the greatest of :func:`broadcast_positions`, found digit by digit of the output's
    storage index, without listing them)."""
    dims, strides = _broadcast_axes(tuple(shape), tuple(out_shape), image, out_image)
    least, most = _extremes(lo, hi, dims, strides)
    return least, most + 1


def _extremes(lo: int, hi: int, dims: tuple[int, ...], strides: tuple[int, ...]) -> tuple[int, int]:
    """Least and greatest ``sum(stride * digit)`` over the row-major indices ``[lo, hi)`` of ``dims``
    (non-negative strides): the first and last leading digits' partial runs, and the full ones between."""
    if not dims:
        return 0, 0
    inner = math.prod(dims[1:])
    first, last = lo // inner, (hi - 1) // inner
    head = strides[0]
    if first == last:
        least, most = _extremes(lo - first * inner, hi - first * inner, dims[1:], strides[1:])
        return head * first + least, head * first + most
    a = _extremes(lo - first * inner, inner, dims[1:], strides[1:])
    b = _extremes(0, hi - last * inner, dims[1:], strides[1:])
    least, most = min(head * first + a[0], head * last + b[0]), max(head * first + a[1], head * last + b[1])
    if last - first > 1:  # whole runs of the inner digits between
        full = sum(s * (d - 1) for d, s in zip(dims[1:], strides[1:], strict=True))
        least, most = min(least, head * (first + 1)), max(most, head * (last - 1) + full)
    return least, most


def weight_matrix(graph: Graph, layer: Layer, values: np.ndarray) -> np.ndarray:
    """``groups x k x n``: the constant weight of a conv or GEMM layer as the array reads it."""
    gemm = layer.gemm
    assert gemm is not None
    w = np.asarray(values)
    if layer.op is OpKind.CONV:
        return w.reshape(gemm.batch, gemm.n, -1).transpose(0, 2, 1)  # (g, k, n): k = (c, kh, kw)
    layout = layer.attrs.get("weight_layout") or ("nk" if tuple(w.shape[-2:]) == (gemm.n, gemm.k) else "kn")
    w = w.reshape(-1, *w.shape[-2:])
    return w.transpose(0, 2, 1) if layout == "nk" else w


@dataclass(frozen=True)
class MatrixView:
    """Where the ``batch x rows x cols`` elements of a matmul operand that views (reshapes, transposes) a
    stored tensor lie in that tensor's storage: element ``(b, r, c)`` at element offset
    ``b * batch_stride + r * row_stride + c * col_stride`` from ``source``'s first (an affine view).
    Tiles read runs along ``cols`` (``col_stride`` 1), or along ``rows`` (``row_stride`` 1: :attr:`transposed`,
    the tile arrives as ``tc`` runs of ``tr`` and the array takes it transposed)."""

    source: str
    batch_stride: int
    row_stride: int
    col_stride: int

    @property
    def transposed(self) -> bool:
        return self.col_stride != 1


def matrix_view(graph: Graph, name: str, batch: int, rows: int, cols: int) -> MatrixView | None:
    """The :class:`MatrixView` of tensor ``name`` as a ``batch x rows x cols`` matrix when it is the output
    of views of a stored tensor that reorder its bytes and the view is affine with a unit stride along
    ``cols`` or ``rows`` (``None`` for a tensor stored itself, or a view the tiles cannot read)."""
    memo = _memo(graph)
    key = ("matrix_view", name, batch, rows, cols)
    if key not in memo:
        memo[key] = _matrix_view(graph, name, batch, rows, cols)
    return memo[key]  # type: ignore[return-value]


def _matrix_view(graph: Graph, name: str, batch: int, rows: int, cols: int) -> MatrixView | None:
    chain = []
    source = name
    while (producer := graph.tensors[source].producer) is not None and graph.layer(producer).op is OpKind.RESHAPE:
        layer = graph.layer(producer)
        if graph.tensors[layer.inputs[0]].is_constant:
            return None
        chain.append(layer)
        source = layer.inputs[0]
    if not chain:
        return None
    src = graph.tensors[source]
    if src.elements != batch * rows * cols:
        return None
    image = source in image_tensors(graph)
    strides = _view_strides(src.shape, image, [(layer, graph.tensors[layer.outputs[0]].shape)
                                                for layer in reversed(chain)], (batch, rows, cols))
    if strides is None:  # some reshape is not a strided view: probe the elements
        strides = _probed_strides(graph, source, image, chain, (batch, rows, cols))
        if strides is None:
            return None
    batch_stride, row_stride, col_stride = strides
    if cols == 1:
        col_stride = 1
    if col_stride != 1 and row_stride != 1:
        return None
    return MatrixView(source, batch_stride, row_stride, col_stride)


def _view_strides(shape: tuple[int, ...], image: bool, steps: list[tuple[Layer, tuple[int, ...]]],
                  matrix: tuple[int, int, int]) -> list[int] | None:
    """The element strides of ``matrix`` viewing a tensor of ``shape`` (stored as ``image`` or row-major)
    through the reshapes and transposes ``steps`` (each layer and its output shape), as numpy's views
    compose them; ``None`` where a reshape is not a view of strided elements. A dimension of one element
    has stride 0."""
    if len(shape) == 4 and image:  # channels-last storage: n, c, h, w at these element strides
        n, c, h, w = shape
        dims, strides = list(shape), [h * w * c, 1, w * c, c]
    else:
        dims, strides = list(shape), _row_major(shape)
    for layer, out in steps:
        if layer.attrs.get("fn") == "transpose":
            perm = layer.attrs["perm"]
            dims, strides = [dims[i] for i in perm], [strides[i] for i in perm]
            continue
        reshaped = _reshape_strides(dims, strides, list(out))
        if reshaped is None:
            return None
        dims, strides = list(out), reshaped
    final = _reshape_strides(dims, strides, list(matrix))
    if final is None:
        return None
    return [stride if size > 1 else 0 for size, stride in zip(matrix, final, strict=True)]


def _row_major(shape: tuple[int, ...] | list[int]) -> list[int]:
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= size
    return strides[::-1]


def _reshape_strides(dims: list[int], strides: list[int], new: list[int]) -> list[int] | None:
    """The strides of a reshape of the strided ``dims`` to ``new`` without moving elements (numpy's
    no-copy reshape), or ``None`` when it would have to."""
    old = [(size, stride) for size, stride in zip(dims, strides, strict=True) if size != 1]
    result = [0] * len(new)
    oi = ni = 0
    while ni < len(new) and oi < len(old):
        oj, nj = oi + 1, ni + 1
        op, np_ = old[oi][0], new[ni]
        while op != np_:
            if np_ < op:
                np_ *= new[nj]
                nj += 1
            else:
                op *= old[oj][0]
                oj += 1
        if any(old[k][1] != old[k + 1][0] * old[k + 1][1] for k in range(oi, oj - 1)):
            return None  # the old dimensions merged here are not contiguous in one another
        result[nj - 1] = old[oj - 1][1]
        for k in range(nj - 1, ni, -1):
            result[k - 1] = result[k] * new[k]
        oi, ni = oj, nj
    return result


def _probed_strides(graph: Graph, source: str, image: bool, chain: list[Layer],
                    matrix: tuple[int, int, int]) -> list[int] | None:
    """The strides of an affine view found from every element's position (views that are not strided
    step by step), or ``None`` when the view is not affine or does not start at the source's first."""
    src = graph.tensors[source]
    position = from_storage(np.arange(src.elements), src.shape, image=image)
    for layer in reversed(chain):
        out = graph.tensors[layer.outputs[0]]
        position = np.transpose(position, layer.attrs["perm"]) if layer.attrs.get("fn") == "transpose" \
            else position.reshape(out.shape)
    values = position.reshape(matrix)
    strides = [int(np.diff(values, axis=a).flat[0]) if values.shape[a] > 1 else 0 for a in range(3)]
    b, r, c = np.ix_(*(np.arange(size) for size in matrix))
    if int(values[0, 0, 0]) != 0 or not np.array_equal(values, b * strides[0] + r * strides[1] + c * strides[2]):
        return None
    return strides


def view_block(view: MatrixView, origin: tuple[int, int, int], extent: tuple[int, int, int],
               word: int = 1) -> tuple[int, Block | None]:
    """``(offset, block)`` of the ``(b0, r0, c0)`` tile of extent ``(tb, tr, tc)`` of ``view`` in its source's
    bytes: ``tb x tr`` runs of ``tc`` elements, or (:attr:`MatrixView.transposed`) ``tb x tc`` runs of ``tr``."""
    (b0, r0, c0), (tb, tr, tc) = origin, extent
    offset = word * (b0 * view.batch_stride + r0 * view.row_stride + c0 * view.col_stride)
    if view.transposed:
        return offset, make_block(word * tr, tc, word * view.col_stride, tb, word * view.batch_stride)
    return offset, make_block(word * tc, tr, word * view.row_stride, tb, word * view.batch_stride)


# -- the blocks of a tile ---------------------------------------------------------------------------

def x_block(graph: Graph, layer: Layer, conv: ConvGeometry | None, origin: tuple[int, int, int],
            extent: tuple[int, int, int], nm: tuple[int, int] | None = None,
            word: int = 1) -> tuple[int, Block | None, int]:
    """``(offset, block, size_bytes)`` of the input a ``(b0, m0, k0)`` tile of extent ``(tb, tm, tk)`` reads,
    ``offset`` bytes from the input tensor's first byte (``word`` bytes per element)."""
    (b0, m0, k0), (tb, tm, tk) = origin, extent
    gemm = layer.gemm
    assert gemm is not None
    if conv is not None:
        p0, p1, ch0, ch1 = conv_band(conv, b0, tb, m0, tm, *dense_k_range(k0, tk, nm))
        block = make_block(word * (ch1 - ch0), p1 - p0, word * conv.c)
        return word * (p0 * conv.c + ch0), block, word * (p1 - p0) * (ch1 - ch0)
    k_lo, k_hi = dense_k_range(k0, tk, nm)
    k_hi = min(k_hi, gemm.k)
    m, k = gemm.m, gemm.k
    block = make_block(word * (k_hi - k_lo), tm, word * k, tb, word * m * k)
    return word * (b0 * m * k + m0 * k + k_lo), block, word * tb * tm * (k_hi - k_lo)


def w_block(layer: Layer, origin: tuple[int, int, int], extent: tuple[int, int, int],
            word: int = 1) -> tuple[int, Block | None]:
    """``(offset, block)`` of the dense weights a ``(b0, k0, n0)`` tile of extent ``(tb, tk, tn)`` reads."""
    (b0, k0, n0), (tb, tk, tn) = origin, extent
    gemm = layer.gemm
    assert gemm is not None
    k, n = gemm.k, gemm.n
    return word * (b0 * k * n + k0 * n + n0), make_block(word * tn, tk, word * n, tb, word * k * n)


def out_block(layer: Layer, origin: tuple[int, int, int], extent: tuple[int, int, int],
              word: int = 1) -> tuple[int, Block | None]:
    """``(offset, block)`` of a ``(b0, m0, n0)`` output tile of extent ``(tb, tm, tn)`` in the output
    matrix, ``word`` bytes per element."""
    (b0, m0, n0), (tb, tm, tn) = origin, extent
    gemm = layer.gemm
    assert gemm is not None
    if layer.op is OpKind.CONV:  # m x (groups * n): group b owns columns b*n ..
        cols = gemm.batch * gemm.n
        return word * (m0 * cols + b0 * gemm.n + n0), make_block(word * tn, tm, word * cols, tb, word * gemm.n)
    m, n = gemm.m, gemm.n
    return word * (b0 * m * n + m0 * n + n0), make_block(word * tn, tm, word * n, tb, word * m * n)

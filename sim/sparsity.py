"""N:M structured sparsity: the bit-exact reference for pruning, the compressed format and sparse GEMM.

Re-exported by :mod:`sim.numerics` (import it from there). Everything is along the *reduction*
dimension ``K``: a weight matrix ``w (k x cols)`` is cut, per column, into groups of ``M``
consecutive elements ``w[g*M : g*M + M, j]`` (``G = ceil(k / M)`` groups; a last partial group is
read as if padded with zeros to ``M``); an N:M tensor has at most ``N`` non-zeros in every group.

The contract, stated once:

:func:`nm_prune` ``(w, n, m)``
    magnitude pruning: in every group keep the ``N`` elements of largest magnitude ``|v|`` and
    zero the rest. **Ties: the lower index wins** (a stable sort by decreasing magnitude), so the
    result is a function of ``w`` alone. A group with fewer than ``N`` non-zeros keeps all of them.
:func:`nm_check` ``(w, n, m)``
    True when every group has at most ``N`` non-zeros.
:func:`nm_compress` ``(w, n, m)``
    :func:`nm_prune`, then for every (group, column) the ``N`` kept positions **in ascending index
    order**, each as a value code and an in-group index ``0 <= idx < M``. The kept set is exactly
    the pruning's (so a group with fewer than ``N`` non-zeros also stores the lowest-index zeros it
    kept, with value 0). The indices of a group are therefore strictly increasing.
:func:`nm_decompress` ``(c)``
    the dense ``k x cols`` matrix back: ``nm_decompress(nm_compress(w)) == nm_prune(w)``, and
    ``== w`` when ``nm_check(w)`` holds.
:func:`nm_gemm` ``(x, c)``
    ``x (rows x k) @ decompress(c)`` computed on the compressed operand only: for every output, the
    stored entries are visited group by group and, within a group, slot by slot (ascending index),
    each a :func:`~sim.numerics.mac` of ``x[i, g*M + idx]`` and the value, so wrap and saturation
    act after every step exactly as :func:`~sim.numerics.systolic_tile` on the decompressed weights
    (a skipped zero product would not change a wrapped or a saturated accumulator).

The compressed bit layout
-------------------------
``B`` = value bits (the value format's width), ``L`` = :func:`nm_index_bits` ``(M)`` =
``ceil(log2 M)`` (2 for ``M = 4``, 3 for ``M = 8``).

*One group word* (the compressor's output beat per column, :func:`nm_pack_group`): ``N * (B + L)``
bits, the ``N`` values first, then the ``N`` indices, each field little-end first::

    bit  [s*B, (s+1)*B)              value of slot s   (two's complement if signed)
    bit  [N*B + s*L, N*B + (s+1)*L)  index of slot s   (unsigned, in [0, M))

This is Amaranth's ``StructLayout({"values": ArrayLayout(B, N), "indices": ArrayLayout(L, N)})``.

*Storage in memory* (:func:`nm_to_bytes`, sized by :func:`nm_compressed_bytes`): two regions, each
a little-endian bit stream padded with zero bits to a whole byte: first every value (``B`` bits
each), then every index (``L`` bits each), both in the same entry order: column by column, within a
column group by group, within a group slot by slot. Its size is
``ceil(E * B / 8) + ceil(E * L / 8)`` bytes for ``E = cols * ceil(k / M) * N`` stored entries.

A sparse weight-stationary tile (:mod:`rtl.sparse_systolic`) computes :func:`nm_gemm` of each
fold; its cycles are :func:`nm_tile_cycles`: the dense WS fold timing with the reduction length
``k`` replaced by :func:`nm_reduction_length` ``= N * ceil(k / M)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from accel.formats import INT8, INT32, NumberFormat, Overflow
from accel.hardware import Dataflow, Sparsity, SystolicArray

__all__ = [
    "NMCompressed",
    "nm_index_bits",
    "nm_prune",
    "nm_check",
    "nm_compress",
    "nm_decompress",
    "nm_pack_group",
    "nm_unpack_group",
    "nm_gemm",
    "nm_compressed_bytes",
    "nm_to_bytes",
    "nm_from_bytes",
    "pack_entries",
    "unpack_entries",
    "nm_reduction_length",
    "nm_tile_cycles",
]


def nm_index_bits(m: int) -> int:
    """Bits of one in-group index: ``ceil(log2 m)`` (``m >= 2``)."""
    if isinstance(m, bool) or not isinstance(m, int | np.integer) or m < 2:
        raise ValueError(f"N:M group size M must be an integer of at least 2, not {m!r}")
    return (int(m) - 1).bit_length()


@dataclass(frozen=True, eq=False)
class NMCompressed:
    """An N:M-compressed weight matrix of shape ``(k, cols)`` (reduction along ``k``).

    ``values`` and ``indices`` have shape ``(groups, n, cols)``: entry ``[g, s, j]`` is slot ``s`` of
    group ``g`` of column ``j``; a group's indices are strictly increasing in ``[0, m)``.
    """

    values: np.ndarray
    indices: np.ndarray
    n: int
    m: int
    k: int
    value_format: NumberFormat = INT8

    def __post_init__(self) -> None:
        Sparsity(self.n, self.m)
        groups = -(-self.k // self.m)
        if self.values.ndim != 3 or self.values.shape[:2] != (groups, self.n):
            raise ValueError(f"N:M values must have shape ({groups}, {self.n}, cols), not {self.values.shape}")
        if self.indices.shape != self.values.shape:
            raise ValueError(f"N:M indices must have the values' shape {self.values.shape}, not {self.indices.shape}")
        if self.indices.size and (self.indices.min() < 0 or self.indices.max() >= self.m
                                  or (self.n > 1 and np.any(np.diff(self.indices, axis=1) <= 0))):
            raise ValueError(f"N:M indices must be strictly increasing in [0, {self.m}) within each group")

    @property
    def groups(self) -> int:
        """``ceil(k / m)``."""
        return self.values.shape[0]

    @property
    def cols(self) -> int:
        return self.values.shape[2]

    @property
    def shape(self) -> tuple[int, int]:
        """The dense shape ``(k, cols)``."""
        return self.k, self.cols

    @property
    def index_bits(self) -> int:
        return nm_index_bits(self.m)

    def group_words(self) -> list[list[int]]:
        """``[g][j]``: the packed group word (:func:`nm_pack_group`) of group ``g`` of column ``j``."""
        return [[nm_pack_group(self.values[g, :, j], self.indices[g, :, j], m=self.m,
                               value_format=self.value_format) for j in range(self.cols)]
                for g in range(self.groups)]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NMCompressed):
            return NotImplemented
        return ((self.n, self.m, self.k, self.value_format) == (other.n, other.m, other.k, other.value_format)
                and np.array_equal(self.values, other.values) and np.array_equal(self.indices, other.indices))

    __hash__ = None  # type: ignore[assignment]  # holds arrays


def _groups(w: npt.ArrayLike, n: int, m: int, axis: int) -> tuple[np.ndarray, int]:
    """``w`` with ``axis`` moved first and cut into ``(G, m, ...)`` groups (zero-padded), and ``k``."""
    Sparsity(n, m)
    array = np.asarray(w)
    if array.dtype == np.bool_ or array.dtype.kind not in "iuO":
        raise ValueError(f"N:M tensors must hold integer codes, not dtype {array.dtype}")
    if array.ndim == 0:
        raise ValueError("N:M tensors need at least one axis to group")
    moved = np.moveaxis(array, axis, 0)
    k = moved.shape[0]
    groups = -(-k // m)
    padded = np.zeros((groups * m, *moved.shape[1:]), dtype=moved.dtype)
    padded[:k] = moved
    return padded.reshape(groups, m, *moved.shape[1:]), k


def _kept_positions(grouped: np.ndarray, n: int) -> np.ndarray:
    """For ``(G, m, ...)`` groups: the ``n`` kept in-group positions ``(G, n, ...)``, ascending.

    Largest magnitude first; a stable sort makes the lower index win a tie.
    """
    magnitude = np.abs(grouped.astype(object) if grouped.dtype == np.uint64 else grouped)
    order = np.argsort(-magnitude, axis=1, kind="stable")
    return np.sort(order[:, :n], axis=1)


def nm_prune(w: npt.ArrayLike, n: int, m: int, *, axis: int = 0) -> np.ndarray:
    """``w`` with all but the ``n`` largest magnitudes of every group of ``m`` along ``axis`` zeroed.

    Ties go to the lower index. Same shape and dtype as ``w``.
    """
    grouped, k = _groups(w, n, m, axis)
    kept = _kept_positions(grouped, n)
    pruned = np.zeros_like(grouped)
    np.put_along_axis(pruned, kept, np.take_along_axis(grouped, kept, axis=1), axis=1)
    dense = pruned.reshape(-1, *grouped.shape[2:])[:k]
    return np.moveaxis(dense, 0, axis)


def nm_check(w: npt.ArrayLike, n: int, m: int, *, axis: int = 0) -> bool:
    """True when every group of ``m`` along ``axis`` holds at most ``n`` non-zeros."""
    grouped, _ = _groups(w, n, m, axis)
    return bool(np.all(np.count_nonzero(grouped, axis=1) <= n))


def nm_compress(w: npt.ArrayLike, n: int, m: int, *, value_format: NumberFormat = INT8) -> NMCompressed:
    """Prune ``w (k x cols)`` to N:M along ``k`` (:func:`nm_prune`) and keep values and indices only.

    ``w`` must hold codes of ``value_format`` (``ValueError`` otherwise).
    """
    array = np.asarray(w)
    if array.ndim != 2:
        raise ValueError(f"nm_compress needs a weight matrix w (k x cols), not shape {array.shape}")
    _check_codes("w", array, value_format)
    grouped, k = _groups(array, n, m, 0)
    kept = _kept_positions(grouped, n)
    values = np.take_along_axis(grouped, kept, axis=1)
    return NMCompressed(values.astype(np.int64) if values.dtype != object else values,
                        kept.astype(np.int64), n, m, k, value_format)


def nm_decompress(c: NMCompressed) -> np.ndarray:
    """The dense ``(k, cols)`` matrix of ``c``: every stored value at its index, zeros elsewhere."""
    dense = np.zeros((c.groups, c.m, c.cols), dtype=c.values.dtype)
    np.put_along_axis(dense, c.indices, c.values, axis=1)
    return dense.reshape(c.groups * c.m, c.cols)[:c.k]


def nm_pack_group(values: npt.ArrayLike, indices: npt.ArrayLike, *, m: int,
                  value_format: NumberFormat = INT8) -> int:
    """One group word: the ``N`` values (``B`` bits each) from bit 0, then the ``N`` indices (``L`` bits each)."""
    values_l, indices_l = [int(v) for v in np.ravel(values)], [int(i) for i in np.ravel(indices)]
    if len(values_l) != len(indices_l):
        raise ValueError(f"a group needs as many indices as values, not {len(indices_l)} and {len(values_l)}")
    bits, index_bits = value_format.bits, nm_index_bits(m)
    word = 0
    for slot, value in enumerate(values_l):
        _check_codes("value", np.asarray(value), value_format)
        word |= (value & ((1 << bits) - 1)) << (slot * bits)
    base = len(values_l) * bits
    for slot, index in enumerate(indices_l):
        if not 0 <= index < m:
            raise ValueError(f"an N:M index must be in [0, {m}), not {index}")
        word |= index << (base + slot * index_bits)
    return word


def nm_unpack_group(word: int, *, n: int, m: int, value_format: NumberFormat = INT8) -> tuple[list[int], list[int]]:
    """``(values, indices)`` of a group word (the inverse of :func:`nm_pack_group`)."""
    bits, index_bits = value_format.bits, nm_index_bits(m)
    values = [_from_bits((int(word) >> (s * bits)) & ((1 << bits) - 1), value_format) for s in range(n)]
    base = n * bits
    indices = [(int(word) >> (base + s * index_bits)) & ((1 << index_bits) - 1) for s in range(n)]
    return values, indices


def nm_gemm(
    x: npt.ArrayLike,
    c: NMCompressed,
    *,
    a_format: NumberFormat = INT8,
    acc_format: NumberFormat = INT32,
    overflow: Overflow | None = None,
) -> np.ndarray:
    """``x (rows x k) @ nm_decompress(c)`` from the compressed operand, one :func:`mac` per stored entry.

    Entries are accumulated group by group, slot by slot (ascending ``k``), starting from 0; the
    weight format is ``c.value_format``. Bit-identical to
    ``systolic_tile(x, nm_decompress(c), dataflow="ws", ...)``.
    """
    from sim.numerics import dot

    x_v = np.asarray(x)
    if x_v.ndim != 2 or x_v.shape[1] != c.k:
        raise ValueError(f"nm_gemm needs x (rows x {c.k}) for compressed weights of shape {c.shape}, "
                         f"not shape {x_v.shape}")
    _check_codes("x", x_v, a_format)
    padded = np.zeros((x_v.shape[0], c.groups * c.m), dtype=x_v.dtype)
    padded[:, :c.k] = x_v
    # Position in k of entry (g, s, j), flattened to (cols, G * N) in accumulation order.
    positions = (np.arange(c.groups)[:, None, None] * c.m + c.indices).transpose(2, 0, 1).reshape(c.cols, -1)
    selected = padded[:, positions]  # (rows, cols, G * N): the activation each entry multiplies
    weights = c.values.transpose(2, 0, 1).reshape(1, c.cols, -1)
    return dot(selected, weights, a_format=a_format, b_format=c.value_format, acc_format=acc_format,
               overflow=overflow)


def nm_compressed_bytes(k: int, n_cols: int, n: int, m: int, value_bits: int) -> int:
    """Bytes of a ``k x n_cols`` N:M matrix as stored (:func:`nm_to_bytes`):
    ``ceil(E * value_bits / 8) + ceil(E * ceil(log2 m) / 8)`` for ``E = n_cols * ceil(k / m) * n``."""
    for name, value in (("k", k), ("n_cols", n_cols), ("value_bits", value_bits)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < (name == "value_bits"):
            raise ValueError(f"{name} must be a {'positive' if name == 'value_bits' else 'non-negative'} "
                             f"integer, not {value!r}")
    return Sparsity(n, m).compressed_bytes(int(n_cols) * -(-int(k) // m) * n, int(value_bits))


def _entry_order(array: np.ndarray) -> np.ndarray:
    """``array (G, N, cols)`` flattened column by column, group by group, slot by slot."""
    return array.transpose(2, 0, 1).ravel()


def nm_to_bytes(c: NMCompressed) -> bytes:
    """``c`` as stored in memory: the value region, then the index region (module docstring)."""
    return pack_entries(_entry_order(c.values), _entry_order(c.indices), value_bits=c.value_format.bits,
                        index_bits=c.index_bits).tobytes()


def nm_from_bytes(data: bytes, *, k: int, cols: int, n: int, m: int,
                  value_format: NumberFormat = INT8) -> NMCompressed:
    """The inverse of :func:`nm_to_bytes` for a ``k x cols`` N:M matrix."""
    size = nm_compressed_bytes(k, cols, n, m, value_format.bits)
    if len(data) != size:
        raise ValueError(f"a {k} x {cols} {n}:{m} matrix of {value_format.name} is stored in {size} bytes, "
                         f"not {len(data)}")
    groups = -(-k // m)
    values, indices = unpack_entries(np.frombuffer(data, dtype=np.uint8), cols * groups * n,
                                     value_bits=value_format.bits, index_bits=nm_index_bits(m),
                                     signed=value_format.signed)

    def shaped(flat: np.ndarray) -> np.ndarray:
        return np.asarray(flat, dtype=np.int64).reshape(cols, groups, n).transpose(1, 2, 0)

    return NMCompressed(shaped(values), shaped(indices), n, m, k, value_format)


def pack_entries(values: npt.ArrayLike, indices: npt.ArrayLike, *, value_bits: int, index_bits: int) -> np.ndarray:
    """Stored entries as bytes (vectorised): the value stream (``value_bits`` each, two's complement),
    then the index stream (``index_bits`` each), each little-endian and padded to a whole byte, in the
    order given (:func:`nm_to_bytes`' two regions for any run of entries)."""
    return np.concatenate([_bit_stream(np.ravel(values), value_bits), _bit_stream(np.ravel(indices), index_bits)])


def unpack_entries(data: npt.ArrayLike, count: int, *, value_bits: int, index_bits: int,
                   signed: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``(values, indices)`` of ``count`` entries stored by :func:`pack_entries` (``data``: exactly its bytes)."""
    raw = np.asarray(data, dtype=np.uint8)
    value_bytes = -(-count * value_bits // 8)
    size = value_bytes + -(-count * index_bits // 8)
    if raw.size != size:
        raise ValueError(f"{count} entries of {value_bits}-bit values and {index_bits}-bit indices are stored in "
                         f"{size} bytes, not {raw.size}")
    values = _from_bit_stream(raw[:value_bytes], count, value_bits)
    if signed:
        values = np.where(values >= 1 << (value_bits - 1), values - (1 << value_bits), values)
    return values, _from_bit_stream(raw[value_bytes:], count, index_bits)


def _bit_stream(codes: np.ndarray, bits: int) -> np.ndarray:
    unsigned = np.asarray(codes, dtype=_word_dtype(bits)) & ((1 << bits) - 1)
    if bits == 8:
        return unsigned.astype(np.uint8)
    planes = (unsigned[:, None] >> np.arange(bits)) & 1
    return np.packbits(planes.astype(np.uint8).ravel(), bitorder="little")


def _from_bit_stream(raw: np.ndarray, count: int, bits: int) -> np.ndarray:
    if bits == 8:
        return raw[:count].astype(np.int64)
    planes = np.unpackbits(raw, bitorder="little")[:count * bits].reshape(count, bits).astype(_word_dtype(bits))
    return (planes << np.arange(bits)).sum(axis=1)


def _word_dtype(bits: int) -> type:
    """int64 for fields that fit it with a sign to spare; Python integers beyond."""
    return np.int64 if bits <= 62 else object


def nm_reduction_length(k: int, n: int, m: int) -> int:
    """The reduction length an N:M tile streams for ``k``: ``n * ceil(k / m)`` stored entries."""
    return Sparsity(n, m).compressed_k(int(k))


def nm_tile_cycles(array: SystolicArray, m: int, k: int, n: int, *, sparsity: Sparsity | None,
                   fill: bool = True, drain: bool = True) -> int:
    """Cycles of the GEMM tile ``m x k @ k x n`` on a sparse weight-stationary tile.

    ``sparsity=None`` is the dense mode: :func:`accel.timing.gemm_tile_cycles` ``(array, WS, m, k, n)``.
    With ``Sparsity(N, M)`` the same with ``k`` replaced by :func:`nm_reduction_length`
    ``N * ceil(k / M)``: an ``R``-row array holds ``R / N`` groups (``R * M / N`` of ``k``) per fold,
    so folds are ``ceil(ceil(k / M) * N / R) * ceil(n / C)``, each ``2R + C + S - 2`` cycles.
    """
    from accel.timing import gemm_tile_cycles

    if sparsity is not None:
        k = nm_reduction_length(k, sparsity.n, sparsity.m)
    return gemm_tile_cycles(array, Dataflow.WS, m, k, n, fill=fill, drain=drain)


# -- helpers -------------------------------------------------------------------------------------

def _from_bits(raw: int, fmt: NumberFormat) -> int:
    return raw - (1 << fmt.bits) if fmt.signed and raw > fmt.max_int else raw


def _check_codes(name: str, array: np.ndarray, fmt: NumberFormat) -> None:
    if array.size:
        low, high = int(array.min()), int(array.max())
        if low < fmt.min_int or high > fmt.max_int:
            raise ValueError(f"{name} must hold codes of {fmt.name} in [{fmt.min_int}, {fmt.max_int}], "
                             f"not values in [{low}, {high}]")

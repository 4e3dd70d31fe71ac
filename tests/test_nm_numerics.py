"""N:M sparsity in sim.numerics: pruning, the compressed format, sparse GEMM and the stored size."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from accel.errors import ConfigError
from accel.formats import INT8, INT32, NumberFormat, Overflow
from accel.hardware import Sparsity, SystolicArray
from accel.timing import gemm_tile_cycles
from sim.numerics import (
    NMCompressed,
    nm_check,
    nm_compress,
    nm_compressed_bytes,
    nm_decompress,
    nm_from_bytes,
    nm_gemm,
    nm_index_bits,
    nm_pack_group,
    nm_prune,
    nm_reduction_length,
    nm_tile_cycles,
    nm_to_bytes,
    nm_unpack_group,
    systolic_tile,
)

PATTERNS = [(1, 2), (2, 4), (1, 4), (2, 8), (3, 8), (1, 3)]
UINT8 = NumberFormat(8, signed=False)
INT16_SAT = NumberFormat(16, overflow=Overflow.SATURATE)
INT18_WRAP = NumberFormat(18, overflow=Overflow.WRAP)


@st.composite
def weights(draw: st.DrawFn, fmt: NumberFormat = INT8) -> tuple[np.ndarray, int, int]:
    n, m = draw(st.sampled_from(PATTERNS))
    k = draw(st.integers(1, 3 * m + 1))
    cols = draw(st.integers(1, 4))
    # a small alphabet makes ties and all-zero groups common
    elements = st.one_of(st.integers(-3, 3), st.integers(fmt.min_int, fmt.max_int))
    w = draw(hnp.arrays(np.int64, (k, cols), elements=elements if fmt.signed else st.integers(0, fmt.max_int)))
    return w, n, m


def _groups(w: np.ndarray, m: int) -> list[np.ndarray]:
    return [w[g:g + m, j] for j in range(w.shape[1]) for g in range(0, w.shape[0], m)]


@given(weights())
def test_pruning_satisfies_nm_and_keeps_the_largest_magnitudes(case: tuple[np.ndarray, int, int]) -> None:
    w, n, m = case
    pruned = nm_prune(w, n, m)
    assert nm_check(pruned, n, m)
    for before, after in zip(_groups(w, m), _groups(pruned, m), strict=True):
        kept = np.flatnonzero(after)
        assert np.array_equal(after[kept], before[kept])  # kept values unchanged
        dropped = [i for i in range(len(before)) if i not in kept and before[i] != 0]
        if dropped:  # nothing dropped is larger than anything kept
            assert max(abs(int(before[i])) for i in dropped) <= min(abs(int(v)) for v in after[kept])
        assert len(kept) == min(n, np.count_nonzero(before))


@given(weights())
def test_pruning_is_idempotent_and_the_identity_on_nm_tensors(case: tuple[np.ndarray, int, int]) -> None:
    w, n, m = case
    pruned = nm_prune(w, n, m)
    assert np.array_equal(nm_prune(pruned, n, m), pruned)
    assert nm_check(w, n, m) == np.array_equal(pruned, w)


@given(weights())
def test_compress_decompress_round_trip(case: tuple[np.ndarray, int, int]) -> None:
    w, n, m = case
    c = nm_compress(w, n, m)
    assert np.array_equal(nm_decompress(c), nm_prune(w, n, m))
    assert np.array_equal(nm_decompress(nm_compress(nm_decompress(c), n, m)), nm_decompress(c))
    assert c.shape == w.shape and c.values.shape == (-(-w.shape[0] // m), n, w.shape[1])
    assert np.all(np.diff(c.indices, axis=1) > 0) and c.indices.min() >= 0 and c.indices.max() < m


@given(weights())
def test_group_words_round_trip_and_follow_the_documented_layout(case: tuple[np.ndarray, int, int]) -> None:
    w, n, m = case
    c = nm_compress(w, n, m)
    bits, index_bits = 8, nm_index_bits(m)
    for g, row in enumerate(c.group_words()):
        for j, word in enumerate(row):
            assert word < 1 << (n * (bits + index_bits))
            values, indices = nm_unpack_group(word, n=n, m=m)
            assert values == list(c.values[g, :, j]) and indices == list(c.indices[g, :, j])
            assert (word >> (n * bits)) & ((1 << index_bits) - 1) == c.indices[g, 0, j]  # slot 0's index
            assert word & 0xFF == int(c.values[g, 0, j]) & 0xFF  # slot 0's value


@given(weights(), st.sampled_from([INT8, UINT8]))
def test_stored_bytes_round_trip_and_have_the_documented_size(case: tuple[np.ndarray, int, int],
                                                             fmt: NumberFormat) -> None:
    w, n, m = case
    w = np.abs(w).clip(0, 127) if not fmt.signed else w
    c = nm_compress(w, n, m, value_format=fmt)
    data = nm_to_bytes(c)
    k, cols = w.shape
    assert len(data) == nm_compressed_bytes(k, cols, n, m, fmt.bits)
    entries = cols * -(-k // m) * n
    assert len(data) == -(-entries * 8 // 8) + -(-entries * nm_index_bits(m) // 8)
    assert nm_from_bytes(data, k=k, cols=cols, n=n, m=m, value_format=fmt) == c


@settings(max_examples=200)
@given(weights(), st.integers(1, 3), st.sampled_from([INT32, INT16_SAT, INT18_WRAP]), st.data())
def test_sparse_gemm_equals_dense_gemm_on_the_decompressed_weights(
        case: tuple[np.ndarray, int, int], rows: int, acc: NumberFormat, data: st.DataObject) -> None:
    w, n, m = case
    x = data.draw(hnp.arrays(np.int64, (rows, w.shape[0]), elements=st.one_of(
        st.sampled_from([-128, 127, 0]), st.integers(-128, 127))))
    c = nm_compress(w, n, m)
    expected = systolic_tile(x, nm_decompress(c), dataflow="ws", acc_format=acc)
    assert np.array_equal(nm_gemm(x, c, acc_format=acc), expected)


def test_ties_go_to_the_lower_index() -> None:
    w = np.array([[5, -5, 5, -5], [0, 0, 0, 0], [1, 2, -2, 1], [-128, 127, 127, -127]]).T
    c = nm_compress(w, 2, 4)
    assert c.indices[0].T.tolist() == [[0, 1], [0, 1], [1, 2], [0, 1]]
    assert c.values[0].T.tolist() == [[5, -5], [0, 0], [2, -2], [-128, 127]]
    assert nm_prune(np.array([3, -3, 3, 3, 0, 0, 0, 7]), 1, 4).tolist() == [3, 0, 0, 0, 0, 0, 0, 7]


def test_every_index_pattern_of_a_group_round_trips() -> None:
    for n, m in [(2, 4), (1, 4), (2, 8)]:
        for kept in itertools.combinations(range(m), n):
            w = np.zeros((m, 1), dtype=np.int64)
            w[list(kept), 0] = [-(s + 1) * 7 for s in range(n)]
            c = nm_compress(w, n, m)
            assert tuple(c.indices[0, :, 0]) == kept
            assert np.array_equal(nm_decompress(c), w)


def test_prune_along_another_axis() -> None:
    x = np.array([[1, 4, 2, 3], [9, 8, 7, 6]])
    assert nm_prune(x, 2, 4, axis=1).tolist() == [[0, 4, 0, 3], [9, 8, 0, 0]]
    assert nm_check(x, 2, 4, axis=0) and not nm_check(x, 2, 4, axis=1)


def test_compressed_size_formula_by_example() -> None:
    # 64 x 16 int8 at 2:4: 16 groups x 2 x 16 = 512 entries: 512 value bytes + 512 * 2 bits = 128 bytes
    assert nm_compressed_bytes(64, 16, 2, 4, 8) == 640
    assert nm_compressed_bytes(64, 16, 2, 8, 8) == 256 + 96
    assert nm_compressed_bytes(3, 1, 1, 4, 4) == 1 + 1  # one entry: 4 value bits, 2 index bits
    assert nm_compressed_bytes(0, 5, 2, 4, 8) == 0


def test_sparse_tile_cycles_are_the_dense_ws_timing_on_the_shrunk_reduction() -> None:
    array = SystolicArray(8, 4, sparsity=(Sparsity(2, 4),))
    assert nm_reduction_length(64, 2, 4) == 32 and nm_reduction_length(10, 2, 8) == 4
    assert nm_tile_cycles(array, 7, 64, 4, sparsity=None) == gemm_tile_cycles(array, array.dataflows[0], 7, 64, 4)
    # 2:4: 16 groups, 4 per fold of an 8-row array: 4 folds of 2*8 + 4 + 7 - 2
    assert nm_tile_cycles(array, 7, 64, 4, sparsity=Sparsity(2, 4)) == 4 * (16 + 4 + 7 - 2)
    assert nm_tile_cycles(array, 7, 64, 8, sparsity=Sparsity(1, 4)) == 2 * 2 * (16 + 4 + 7 - 2)


@pytest.mark.parametrize(("call", "message"), [
    (lambda: nm_prune(np.zeros(4, dtype=np.int64), 4, 4), r"^N:M sparsity needs integers 1 <= N < M, not 4:4$"),
    (lambda: nm_compress(np.zeros(4, dtype=np.int64), 2, 4), r"^nm_compress needs a weight matrix w \(k x cols\)"),
    (lambda: nm_compress(np.full((4, 1), 200), 2, 4), r"^w must hold codes of int8 in \[-128, 127\]"),
    (lambda: nm_gemm(np.zeros((1, 3), dtype=np.int64), nm_compress(np.zeros((4, 1), dtype=np.int64), 2, 4)),
     r"^nm_gemm needs x \(rows x 4\)"),
    (lambda: nm_index_bits(1), r"^N:M group size M must be an integer of at least 2, not 1$"),
    (lambda: nm_pack_group([1, 2], [0, 4], m=4), r"^an N:M index must be in \[0, 4\), not 4$"),
    (lambda: NMCompressed(np.zeros((1, 2, 1)), np.array([[[1], [1]]]), 2, 4, 4),
     r"^N:M indices must be strictly increasing"),
    (lambda: nm_from_bytes(b"", k=4, cols=1, n=2, m=4), r"^a 4 x 1 2:4 matrix of int8 is stored in 3 bytes, not 0$"),
])
def test_bad_input_is_refused(call: object, message: str) -> None:
    with pytest.raises((ValueError, ConfigError), match=message):
        call()

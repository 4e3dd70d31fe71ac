"""A matmul operand that views a stored tensor (reshapes, transposes) is found in closed form: the strides
``mapper.layout`` composes step by step are where numpy's views put every element."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from mapper.layout import _view_strides, from_storage


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


@st.composite
def _shape_of(draw, elements: int, most: int = 4) -> tuple[int, ...]:  # noqa: ANN001 - hypothesis' draw
    """A shape of ``elements`` elements in 1 to ``most`` dimensions."""
    dims, rest = [], elements
    for _ in range(draw(st.integers(0, most - 1))):
        dims.append(draw(st.sampled_from(_divisors(rest))))
        rest //= dims[-1]
    return (*dims, rest)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_strided_views_compose_as_numpy_views(data) -> None:  # noqa: ANN001
    shape = data.draw(st.lists(st.integers(1, 5), min_size=2, max_size=4).map(tuple))
    image = len(shape) == 4 and data.draw(st.booleans())  # stored channels-last
    position = from_storage(np.arange(math.prod(shape)), shape, image=image)  # each element's storage offset
    steps = []
    for _ in range(data.draw(st.integers(1, 4))):
        if data.draw(st.booleans()):
            perm = tuple(data.draw(st.permutations(range(position.ndim))))
            position = position.transpose(perm)
            steps.append((SimpleNamespace(attrs={"fn": "transpose", "perm": perm}), position.shape))
        else:
            position = position.reshape(data.draw(_shape_of(position.size)))
            steps.append((SimpleNamespace(attrs={"fn": "reshape"}), position.shape))
    matrix = data.draw(_shape_of(position.size, 3).filter(lambda s: len(s) == 3))
    strides = _view_strides(shape, image, steps, matrix)
    if strides is None:  # a reshape that numpy would have to copy: the mapper probes the elements instead
        return
    values = position.reshape(matrix)
    b, r, c = np.ix_(*(np.arange(size) for size in matrix))
    assert np.array_equal(values, b * strides[0] + r * strides[1] + c * strides[2])
    assert all(stride == 0 for size, stride in zip(matrix, strides, strict=True) if size == 1)


def test_a_transpose_of_row_major_heads_is_strided() -> None:
    # BERT's k heads: (1, 128, 12, 64) -> transpose (0, 2, 3, 1): 12 x 64 x 128 with rows of stride 1
    steps = [(SimpleNamespace(attrs={"fn": "reshape"}), (1, 128, 12, 64)),
             (SimpleNamespace(attrs={"fn": "transpose", "perm": (0, 2, 3, 1)}), (1, 12, 64, 128))]
    assert _view_strides((128, 768), False, steps, (12, 64, 128)) == [64, 1, 768]

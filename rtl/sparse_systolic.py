"""A weight-stationary N:M sparse systolic tile with a runtime dense mode (SAT-style).

:class:`SparseSystolicArray` is a grid of ``P x C`` :class:`~rtl.sparse_pe.SparsePE` cells, ``P =
rows / N``. Each PE holds one group of one column: ``N`` stored weights with their indices, and has
``N`` multipliers, so the tile has ``rows x C`` multipliers like a dense ``rows x C`` tile. Every
PE is ``N`` stages deep, so a column of ``P`` PEs times like ``rows`` dense PEs: the tile's
control, skew, de-skew and handshakes are those of :class:`rtl.systolic.SystolicArray` (WS), and so
is its fold timing, with the reduction dimension shrunk by ``M / N`` in sparse mode.

Ports (``R = rows``, ``C = cols``, ``P = R / N`` groups, ``L = ceil(log2 M)``)
-----------------------------------------------------------------------------
``weights``  In(stream of ``{data: C entries {value, index: L bits}, dense: 1}``): a fold starts with
             ``R`` beats; beat ``r = g * N + s`` loads slot ``s`` of group ``g`` of every column.
             Sparse: slot ``s`` of group ``g`` of the compressed weights (:func:`weight_beats`);
             dense: ``w[r, :]`` with any index (ignored). The first beat's ``dense`` bit sets the
             fold's mode.
``inputs``   In(stream of ``{data: P groups of M activations, last}``): then the fold's ``S`` input
             rows (:func:`input_lanes`). Sparse: the ``P * M`` activations ``x[t, 0 : P*M]`` of the
             fold, group ``g`` in lanes ``g*M .. g*M + M - 1``; dense: ``x[t, g*N + s]`` in lane
             ``g*M + s`` for ``s < N`` (other lanes are ignored).
``outputs``  Out(stream of ``{data: C accumulators, last}``): row ``t`` of the fold's result.

Results: a sparse fold is :func:`sim.numerics.nm_gemm` of its ``x (S x P*M)`` and its compressed
``P*M x C`` weights; a dense fold is :func:`sim.numerics.systolic_tile` ``(x (S x R), w (R x C), "ws")``,
the dense tile's result.

Cycle accounting (as :mod:`rtl.systolic`, in clock edges from accepting a fold's first weight beat
to emitting its last result, producer always valid, consumer always ready): every fold, sparse or
dense, takes **``2R + C + S - 2``** cycles (fill ``2R - 1``: ``R`` weight beats, ``R - 1`` of skew;
stream ``S``; drain ``C - 1``), folds run back to back, and a fold covers ``R * M / N`` of the
reduction in sparse mode and ``R`` in dense mode. For a GEMM tile ``m x k @ k x n`` that is:

* dense mode: ``accel.timing.gemm_tile_cycles(array, WS, m, k, n)``, exactly the dense tile;
* N:M mode: ``accel.timing.gemm_tile_cycles(array, WS, m, N * ceil(k / M), n)`` =
  ``ceil(ceil(k / M) / (R / N)) * ceil(n / C) * (2R + C + m - 2)``;

which :func:`sim.numerics.nm_tile_cycles` computes (:meth:`SparseSystolicArray.fold_cycles` for
one fold).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from amaranth.hdl import Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from accel.errors import ConfigError
from accel.formats import INT8, INT32, NumberFormat
from accel.hardware import Dataflow, Sparsity
from accel.hardware import SystolicArray as ArrayDescription
from rtl.fixed import shape_of
from rtl.nm_compressor import check_sparsity
from rtl.sparse_pe import SparsePE, weight_entry_layout
from rtl.systolic import SystolicArray, _Phase
from rtl.systolic_pe import check_mac_formats
from sim.numerics import NMCompressed, nm_tile_cycles

__all__ = ["SparseSystolicArray", "weight_beats", "input_lanes"]


class SparseSystolicArray(SystolicArray):
    """An ``rows x cols`` (multipliers) weight-stationary tile for N:M sparse weights, and dense ones.

    Parameters
    ----------
    rows, cols:
        Multipliers along the reduction and the output columns; ``rows`` must be a multiple of ``n``.
    n, m:
        The N:M pattern the hardware runs (elaboration parameters); dense mode is chosen per fold.
    a_format, b_format, acc_format:
        As :class:`rtl.systolic.SystolicArray`.

    It shares :class:`~rtl.systolic.SystolicArray`'s fold sequencer, latency (``R + C - 1``) and
    drain (``R + C - 2``); ``dataflow`` is always WS.
    """

    def __init__(self, rows: int, cols: int, n: int, m: int, *, a_format: NumberFormat = INT8,
                 b_format: NumberFormat = INT8, acc_format: NumberFormat = INT32) -> None:
        try:
            self._check(rows, cols, Dataflow.WS)
            check_sparsity(n, m)
            if rows % n:
                raise ConfigError(f"Sparse systolic array rows must be a multiple of N = {n}, not {rows}")
            check_mac_formats(a_format, b_format, acc_format)
        except ConfigError:
            self._MustUse__silence = True
            raise
        self.rows, self.cols, self.n, self.m = rows, cols, n, m
        self.dataflow = Dataflow.WS
        self.a_format, self.b_format, self.acc_format = a_format, b_format, acc_format
        a, acc = shape_of(a_format), shape_of(acc_format)
        wiring.Component.__init__(self, {
            "weights": In(stream.Signature(data.StructLayout({
                "data": data.ArrayLayout(weight_entry_layout(m, b_format), cols), "dense": 1}))),
            "inputs": In(stream.Signature(data.StructLayout({
                "data": data.ArrayLayout(data.ArrayLayout(a, m), self.groups), "last": 1}))),
            "outputs": Out(stream.Signature(data.StructLayout({"data": data.ArrayLayout(acc, cols), "last": 1}))),
        })

    @property
    def groups(self) -> int:
        """Sparse PE rows ``P = rows / n``: the groups of ``m`` one fold holds."""
        return self.rows // self.n

    @property
    def sparsity(self) -> Sparsity:
        return Sparsity(self.n, self.m)

    def fold_k(self, *, dense: bool) -> int:
        """The reduction length one fold covers: ``rows`` (dense) or ``rows * m / n`` (sparse)."""
        return self.rows if dense else self.groups * self.m

    @property
    def description(self) -> ArrayDescription:
        """This tile as the :class:`accel.hardware.SystolicArray` the simulator times."""
        return ArrayDescription(self.rows, self.cols, dataflows=(Dataflow.WS,), input_format=self.a_format,
                                weight_format=self.b_format, accumulator_format=self.acc_format,
                                sparsity=(self.sparsity,))

    def fold_cycles(self, stream_length: int, *, dense: bool = False) -> int:
        """Cycles of one fold streaming ``stream_length`` rows: :func:`sim.numerics.nm_tile_cycles`."""
        return nm_tile_cycles(self.description, stream_length, self.fold_k(dense=dense), self.cols,
                              sparsity=None if dense else self.sparsity) + self.extra_cycles

    @property
    def parameters(self) -> dict[str, object]:
        """The construction parameters as JSON-able values (for manifests and testbenches)."""
        return {"rows": self.rows, "cols": self.cols, "n": self.n, "m": self.m,
                "a_format": self.a_format.name, "b_format": self.b_format.name,
                "acc_format": self.acc_format.name, "overflow": self.acc_format.overflow.value}

    def elaborate(self, platform: object) -> Module:
        m = Module()
        n, groups, cols = self.n, self.groups, self.cols
        advance, fire, _ = self._control(m, self.inputs, preload=self.weights)

        # Preload: weight beat r goes to slot r % n of PE row r // n (beat 0 on the fold's first edge).
        row = Signal(range(self.rows + 1))
        m.d.comb += row.eq(0)
        with m.If(self._phase == _Phase.PRELOAD):
            m.d.comb += row.eq(self._count)
        weight_fire = self.weights.valid & self.weights.ready
        dense = Signal()  # the fold's mode, set by its first weight beat
        with m.If(weight_fire & (self._phase == _Phase.IDLE)):
            m.d.sync += dense.eq(self.weights.payload.dense)

        pes = [[SparsePE(n, self.m, a_format=self.a_format, b_format=self.b_format, acc_format=self.acc_format)
                for _ in range(cols)] for _ in range(groups)]
        for g in range(groups):
            # Input skew: group g meets multiplier row g * n, so it is delayed by g * n registers.
            x = self._skew(m, self.inputs.payload.data[g], g * n, advance, f"x_skew_{g}")
            in_group = (row >= g * n) & (row < (g + 1) * n)
            for j in range(cols):
                pe = pes[g][j]
                m.submodules[f"pe_{g}_{j}"] = pe
                m.d.comb += [
                    pe.enable.eq(advance),
                    pe.dense.eq(dense),
                    pe.load.eq(weight_fire & in_group),
                    pe.slot.eq(row - g * n),
                    pe.weight_in.eq(self.weights.payload.data[j]),
                    pe.x_in.eq(x if j == 0 else pes[g][j - 1].x_out),
                    pe.psum_in.eq(0 if g == 0 else pes[g - 1][j].psum_out),
                ]

        self._deskew(m, [pe.psum_out for pe in pes[groups - 1]], advance)
        self._result_valid(m, advance, fire, self.inputs.payload.last)
        return m


# -- what goes on the streams (layout only, no arithmetic) ---------------------------------------

def weight_beats(weights: NMCompressed | np.ndarray, *, rows: int, n: int) -> list[list[tuple[int, int]]]:
    """The ``rows`` weight beats of one fold of a ``rows``-row N:M tile, each ``cols`` ``(value, index)`` pairs.

    ``weights`` is the fold's compressed ``rows*m/n x cols`` matrix (sparse mode: beat ``g*n + s`` is
    slot ``s`` of group ``g``) or its dense ``rows x cols`` matrix (dense mode: beat ``r`` is row
    ``r``, index 0).
    """
    if isinstance(weights, NMCompressed):
        if weights.n != n or weights.groups * n != rows or weights.k != weights.groups * weights.m:
            raise ValueError(f"a sparse fold of {rows} rows needs {n}:M weights of {rows // n} whole groups, "
                             f"not {weights.n}:{weights.m} of shape {weights.shape}")
        return [[(int(weights.values[r // n, r % n, j]), int(weights.indices[r // n, r % n, j]))
                 for j in range(weights.cols)] for r in range(rows)]
    w = np.asarray(weights)
    if w.ndim != 2 or w.shape[0] != rows:
        raise ValueError(f"a dense fold needs weights of shape ({rows}, cols), not {w.shape}")
    return [[(int(v), 0) for v in w[r]] for r in range(rows)]


def input_lanes(x_row: Sequence[int], *, rows: int, n: int, m: int, dense: bool) -> list[list[int]]:
    """One input beat of a ``rows``-row N:M tile: ``rows / n`` groups of ``m`` lanes for the row
    ``x_row`` of a fold (``rows * m / n`` values sparse, ``rows`` dense; module docstring)."""
    values, groups = [int(v) for v in x_row], rows // n
    expected = rows if dense else groups * m
    if len(values) != expected:
        raise ValueError(f"a {'dense' if dense else 'sparse'} input row has {expected} values, not {len(values)}")
    if not dense:
        return [values[g * m:(g + 1) * m] for g in range(groups)]
    return [values[g * n:(g + 1) * n] + [0] * (m - n) for g in range(groups)]

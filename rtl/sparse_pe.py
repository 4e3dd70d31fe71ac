"""The sparse processing element: one N:M group of weights, N multiplexers, N multipliers.

:class:`SparsePE` is the cell of :class:`rtl.sparse_systolic.SparseSystolicArray`. It holds the
``N`` stored (value, index) pairs of one group of ``M`` weights of one column. Per group of ``M``
activations it selects, for every slot ``s``, the activation ``x[index_s]`` through an ``M``-way
multiplexer and feeds it to multiplier ``s``; the ``N`` products are added to the incoming partial
sum in slot order, each addition a :func:`sim.numerics.mac` step (wrap or saturate after every
step), so the PE computes exactly :func:`sim.numerics.nm_gemm`'s accumulation of its group.

In **dense mode** (``dense`` high) slot ``s`` ignores its index and takes activation ``x[s]``: the
same ``N`` multipliers then compute ``N`` consecutive dense MACs (SAT's dense mode on the sparse
hardware).

Pipelining: the PE is ``N`` systolic stages deep, one per multiplier, so that a column of ``P``
sparse PEs times exactly like a dense weight-stationary column of ``R = P * N`` PEs. With ``X``
the group on ``x_in`` and ``P_in`` the partial sum on ``psum_in`` at an enabled edge ``t``:

* stage 0 registers ``psum_0 <- mac(P_in, X[i_0], w_0)`` on edge ``t``;
* stage ``s`` registers ``psum_s <- mac(psum_{s-1}, X[i_s], w_s)`` on edge ``t + s``, where
  ``X[i_s]`` was selected on edge ``t`` and delayed by ``s`` registers;
* ``psum_out`` is ``psum_{N-1}``: the group's result ``N`` enabled edges after ``t``;
* ``x_out`` is ``x_in`` registered (to the PE on the right).

Nothing changes while ``enable`` is low. ``load`` with ``enable`` writes ``weight_in`` (a value and
an index) into slot ``slot``.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from accel.errors import ConfigError
from accel.formats import INT8, INT32, NumberFormat
from rtl.fixed import shape_of
from rtl.nm_compressor import check_sparsity
from rtl.systolic_pe import check_mac_formats, overflow_sum
from sim.numerics import nm_index_bits

__all__ = ["SparsePE", "weight_entry_layout"]


def weight_entry_layout(m: int, value_format: NumberFormat) -> data.StructLayout:
    """One stored weight: ``{value: value_format, index: unsigned(ceil(log2 m))}``."""
    return data.StructLayout({"value": shape_of(value_format), "index": unsigned(nm_index_bits(m))})


class SparsePE(wiring.Component):
    """An N:M sparse weight-stationary PE of ``n`` multipliers over a group of ``m`` activations.

    Members
    -------
    x_in : In(ArrayLayout(a_format, m))    the group of activations arriving from the left
    psum_in : In(acc_format)               the partial sum arriving from above (0 on the top row)
    weight_in : In({value, index})         the entry to store, into slot ``slot`` on ``load``
    slot : In(range(n))
    load : In(1)
    dense : In(1)                          dense mode: slot ``s`` multiplies ``x_in[s]``
    enable : In(1)                         the array's global advance
    x_out : Out(ArrayLayout(a_format, m))  ``x_in``, registered
    psum_out : Out(acc_format)             the partial sum after the ``n`` MACs (module docstring)
    """

    def __init__(self, n: int, m: int, *, a_format: NumberFormat = INT8, b_format: NumberFormat = INT8,
                 acc_format: NumberFormat = INT32) -> None:
        try:
            check_sparsity(n, m)
            check_mac_formats(a_format, b_format, acc_format)
        except ConfigError:
            self._MustUse__silence = True
            raise
        self.n, self.m = n, m
        self.a_format, self.b_format, self.acc_format = a_format, b_format, acc_format
        super().__init__({
            "x_in": In(data.ArrayLayout(shape_of(a_format), m)),
            "psum_in": In(shape_of(acc_format)),
            "weight_in": In(weight_entry_layout(m, b_format)),
            "slot": In(range(n)),
            "load": In(1),
            "dense": In(1),
            "enable": In(1),
            "x_out": Out(data.ArrayLayout(shape_of(a_format), m)),
            "psum_out": Out(shape_of(acc_format)),
        })

    @property
    def latency(self) -> int:
        """Enabled edges from a group on ``x_in``/``psum_in`` to its result on ``psum_out``: ``n``."""
        return self.n

    def elaborate(self, platform: object) -> Module:
        m = Module()
        n, a_shape = self.n, shape_of(self.a_format)
        entries = [Signal(weight_entry_layout(self.m, self.b_format), name=f"entry_{s}") for s in range(n)]
        with m.If(self.enable):
            m.d.sync += self.x_out.eq(self.x_in)
            with m.If(self.load):
                for s, entry in enumerate(entries):
                    with m.If(self.slot == s):
                        m.d.sync += entry.eq(self.weight_in)

        psum = self.psum_in
        for s, entry in enumerate(entries):
            # The multiplexer: index_s in sparse mode, s in dense mode.
            select = Signal(range(self.m), name=f"select_{s}")
            m.d.comb += select.eq(entry.index)
            with m.If(self.dense):
                m.d.comb += select.eq(s)
            activation = Signal(a_shape, name=f"activation_{s}")
            m.d.comb += activation.eq(self.x_in[select])
            # Delay the selected activation by s registers to meet the partial sum of stage s - 1.
            for stage in range(s):
                delayed = Signal(a_shape, name=f"activation_{s}_delay_{stage}")
                with m.If(self.enable):
                    m.d.sync += delayed.eq(activation)
                activation = delayed
            total = overflow_sum(m, psum, activation * entry.value, self.acc_format, f"psum_total_{s}")
            stage_psum = self.psum_out if s == n - 1 else Signal(shape_of(self.acc_format), name=f"psum_{s}")
            with m.If(self.enable):
                m.d.sync += stage_psum.eq(total)
            psum = stage_psum
        return m

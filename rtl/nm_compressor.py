"""An N:M weight compressor: dense groups in, N values and their indices out (SAT's pre-generation).

:class:`NMCompressor` takes one group of ``M`` consecutive weights along the reduction dimension per
lane per beat and emits, one cycle later, the group word :func:`sim.numerics.nm_compress` gives for
it, bit for bit: the ``N`` elements of largest magnitude (ties: the lower index wins), in ascending
index order, as ``N`` values then ``N`` indices (the layout documented in :mod:`sim.sparsity`).

Ports
-----
``dense``       In(stream of ``lanes`` groups of ``M`` weight codes); lane ``l`` is a group of any
                column (a weight matrix is sent group by group, e.g. ``lanes = cols`` columns at once)
``compressed``  Out(stream of ``lanes`` group words ``{values: N codes, indices: N x ceil(log2 M) bits}``)

Timing: a registered pipeline of one stage. A beat accepted on a rising edge is offered on
``compressed`` from that edge on and so emitted on the next edge at the earliest (latency 1,
counted as :mod:`rtl.systolic` counts); ``dense.ready`` is high whenever the output register is
empty or being read (``~compressed.valid | compressed.ready``), so the unit takes one beat per cycle
under no back-pressure and never depends on ``dense.valid`` for its ``ready``.

How it selects: element ``i`` is kept when fewer than ``N`` elements beat it, where ``j`` beats ``i``
if ``|w_j| > |w_i|``, or ``|w_j| == |w_i|`` and ``j < i`` (``M (M - 1) / 2`` magnitude comparators);
slot ``s`` of the output is the kept element with exactly ``s`` kept elements below it (a prefix
count and an ``M``-way multiplexer per slot).
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from accel.errors import ConfigError
from accel.formats import INT8, NumberFormat
from accel.hardware import Sparsity
from rtl.fixed import check_format, shape_of
from sim.numerics import nm_index_bits

__all__ = ["NMCompressor", "group_word_layout"]


def group_word_layout(n: int, m: int, value_format: NumberFormat) -> data.StructLayout:
    """The group word: ``{values: ArrayLayout(value, n), indices: ArrayLayout(unsigned(ceil(log2 m)), n)}``,
    bit-identical to :func:`sim.numerics.nm_pack_group`."""
    return data.StructLayout({
        "values": data.ArrayLayout(shape_of(value_format), n),
        "indices": data.ArrayLayout(unsigned(nm_index_bits(m)), n),
    })


def check_sparsity(n: object, m: object) -> Sparsity:
    """``Sparsity(n, m)``, or a :class:`ConfigError` naming what must hold."""
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (n, m)):
        raise ConfigError(f"N:M sparsity needs integers 1 <= N < M, not {n!r}:{m!r}")
    return Sparsity(n, m)


class NMCompressor(wiring.Component):
    """Compress ``lanes`` dense groups of ``m`` weights per beat to ``n`` values plus indices each.

    Parameters
    ----------
    n, m:
        The pattern (``1 <= n < m``).
    value_format:
        The weights' format (default ``int8``); magnitude is ``|code|`` (``-128`` beats ``127``).
    lanes:
        Groups per beat (default 1).

    Each output lane is :func:`sim.numerics.nm_compress` of its input group, packed as
    :func:`sim.numerics.nm_pack_group`.
    """

    latency: int = 1
    """Rising edges from accepting a dense beat to offering its compressed beat."""

    def __init__(self, n: int, m: int, *, value_format: NumberFormat = INT8, lanes: int = 1) -> None:
        try:
            check_sparsity(n, m)
            check_format("Weight format", value_format)
            if not isinstance(lanes, int) or isinstance(lanes, bool) or lanes < 1:
                raise ConfigError(f"Compressor lanes must be a positive integer, not {lanes!r}")
        except ConfigError:
            self._MustUse__silence = True
            raise
        self.n, self.m, self.value_format, self.lanes = n, m, value_format, lanes
        super().__init__({
            "dense": In(stream.Signature(data.ArrayLayout(data.ArrayLayout(shape_of(value_format), m), lanes))),
            "compressed": Out(stream.Signature(data.ArrayLayout(group_word_layout(n, m, value_format), lanes))),
        })

    @property
    def parameters(self) -> dict[str, object]:
        """The construction parameters as JSON-able values (for manifests and testbenches)."""
        return {"n": self.n, "m": self.m, "value_format": self.value_format.name, "lanes": self.lanes}

    def elaborate(self, platform: object) -> Module:
        m = Module()
        words = [self._compress_group(m, self.dense.payload[lane], f"lane{lane}") for lane in range(self.lanes)]

        m.d.comb += self.dense.ready.eq(~self.compressed.valid | self.compressed.ready)
        with m.If(self.dense.valid & self.dense.ready):
            m.d.sync += self.compressed.valid.eq(1)
            for lane, word in enumerate(words):
                m.d.sync += self.compressed.payload[lane].eq(word)
        with m.Elif(self.compressed.ready):
            m.d.sync += self.compressed.valid.eq(0)
        return m

    def _compress_group(self, m: Module, group: object, name: str) -> data.View:
        """The group word of ``group`` (combinational)."""
        n, size = self.n, self.m
        magnitude = [abs(group[i]) if self.value_format.signed else group[i] for i in range(size)]
        # beats[j][i]: element j ranks above element i (larger magnitude, or equal and lower index)
        kept = []
        for i in range(size):
            beaten_by = [(magnitude[j] >= magnitude[i]) if j < i else (magnitude[j] > magnitude[i])
                         for j in range(size) if j != i]
            rank = Signal(range(size), name=f"{name}_rank_{i}")
            m.d.comb += rank.eq(sum(beaten_by))
            keep = Signal(name=f"{name}_keep_{i}")
            m.d.comb += keep.eq(rank < n)
            kept.append(keep)
        word = Signal(group_word_layout(n, size, self.value_format), name=f"{name}_word")
        below = 0  # number of kept elements at lower indices
        for i in range(size):
            position = Signal(range(size + 1), name=f"{name}_position_{i}")
            m.d.comb += position.eq(below)
            for slot in range(min(n, i + 1)):
                with m.If(kept[i] & (position == slot)):
                    m.d.comb += [word.values[slot].eq(group[i]), word.indices[slot].eq(i)]
            below = position + kept[i]
        return word

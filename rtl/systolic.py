"""A parametric systolic tile whose cycle count is the simulator's, exactly.

:class:`SystolicArray` builds a ``rows x cols`` grid of single-cycle MAC PEs
(:mod:`rtl.systolic_pe`) for one dataflow, with input skewing, output de-skewing, weight preload
(WS) and ``amaranth.lib.stream`` valid/ready ports. Its results are :func:`sim.numerics.systolic_tile`
bit for bit, and its schedule is the one :func:`accel.timing.gemm_tile_cycles` charges.

Ports
-----
Weight-stationary (``R = rows`` is the reduction depth ``k``, ``C = cols`` the outputs ``n``):

``weights``  In(stream of ``C`` weights): a fold starts with ``R`` beats, beat ``i`` = weight row ``i``;
``inputs``   In(stream of ``{data: R inputs, last}``): then the ``S`` input rows ``x[t, :]``, ``last``
             on the final one;
``outputs``  Out(stream of ``{data: C accumulators, last}``): row ``t`` of ``x @ W``, in order.

Output-stationary (``R`` outputs rows ``m``, ``C`` output columns ``n``):

``operands`` In(stream of ``{a: R values, b: C values, last}``): reduction step ``s`` carries column
             ``s`` of ``A`` and row ``s`` of ``B``; ``last`` on step ``S - 1``;
``outputs``  Out(stream of ``R x C`` accumulators): the whole ``A @ B`` of the fold, one beat.

Handshake: ``ready`` never depends on the same stream's ``valid``; the whole array advances as one
(a global enable) on every clock edge unless the output holds a result the consumer is not ready
for, or an operand is due mid-fold and its ``valid`` is low. Operands are accepted while
``ready`` is high; a fold's first beat may wait indefinitely (the array keeps draining meanwhile).

Cycle accounting
----------------
Counted in clock edges: the cycle count of a fold is ``E_last - E_first``, the number of rising
edges after the one that accepts the fold's first operand up to and including the one that emits
its last result (a pipeline of ``L`` registers has latency ``L`` in this count). With the
producer always valid and the consumer always ready:

* WS: weight rows are accepted on edges ``0 .. R-1`` (preload, ``R``); input row ``t`` on edge
  ``R + t``; it reaches PE ``(i, j)`` on edge ``R + t + i + j`` (row ``i`` is skewed by ``i``
  registers, then one register per PE) and its psum leaves the bottom of column ``j`` registered on
  edge ``2R - 1 + t + j``; column ``j`` is de-skewed by ``C - 1 - j`` registers, so the whole output
  row ``t`` is in the output register after edge ``2R + C - 2 + t`` and emitted on the next.
  The last row (``t = S - 1``) is emitted on edge ``2R + C + S - 2``: **fill ``2R - 1`` + stream
  ``S`` + drain ``C - 1``**, :func:`accel.timing.fold_overhead` for WS.
* OS: operand step ``s`` is accepted on edge ``s`` and reaches PE ``(i, j)`` on edge ``s + i + j``
  (``a`` skewed by ``i`` and ``b`` by ``j`` registers); the last PE finishes on edge
  ``S - 1 + R - 1 + C - 1`` and the whole ``R x C`` result (every accumulator, read at once, which
  is the de-skew) is emitted on the next: ``R + C + S - 2``, **fill ``R - 1`` + stream ``S`` +
  drain ``C - 1``**.
* Folds run back to back exactly as the datasheet adds them: the first beat of the next fold is
  accepted on the same edge that emits the last result of the previous one (after a fold's last
  operand the array refuses operands for ``R + C - 2`` cycles: the weights are single-buffered
  and SCALE-Sim does not overlap folds). So ``F`` folds take ``F`` times the fold's cycles, and the
  array needs no extra cycles beyond :func:`accel.timing.gemm_tile_cycles`: its
  :attr:`~SystolicArray.extra_cycles` is 0.

A result leaves ``latency = R + C - 1`` edges after the operand that completes it was accepted (WS:
an input row; OS: the fold's last step).

Double-buffered weights (WS, ``weight_buffers=2``)
--------------------------------------------------
Every PE holds two weights (:class:`DoubleBufferedWeightPE`); each input carries a register-select
bit through the skew registers and the PEs, so a PE multiplies by the weight of the fold its input
belongs to and consecutive folds overlap in the array (TPU v1's "weights take effect with the
advancing wave"). ``weights`` and ``inputs`` are then independent streams: fold ``g + 1``'s weight
rows are accepted into the other register set while fold ``g`` streams, once fold ``g - 1`` (the
last user of that set) has crossed every column: from ``C`` edges after fold ``g``'s first input on,
one row per edge. Fold ``g + 1``'s first input is accepted on the edge after both its last weight
row and fold ``g``'s last input, so it starts ``max(S_g, R + C)`` edges after fold ``g``; there is no
drain phase. Counted from one fold's last result to the next one's, a following fold takes
``S + max(0, R + C - S_prev)`` edges: :func:`accel.timing.gemm_tile_cycles` with
``follows = S_prev`` on an array with ``weight_buffers = 2``. The whole array still advances as one
(a stall freezes the weight loader too, so no register a moving input still needs is overwritten).
"""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.wiring import In, Out

from accel.errors import ConfigError
from accel.formats import INT8, INT32, NumberFormat
from accel.hardware import Dataflow
from accel.hardware import SystolicArray as ArrayDescription
from rtl.fixed import shape_of
from rtl.systolic_pe import OutputStationaryPE, WeightStationaryPE, check_mac_formats, overflow_sum

__all__ = ["SystolicArray", "DoubleBufferedWeightPE", "SUPPORTED_DATAFLOWS"]

SUPPORTED_DATAFLOWS = (Dataflow.WS, Dataflow.OS)
"""Dataflows :class:`SystolicArray` builds."""


class _Phase(enum.Enum, shape=2):
    IDLE = 0  # waiting for a fold's first beat (the array keeps draining)
    PRELOAD = 1  # WS: weight rows 1 .. R-1
    STREAM = 2  # the fold's streaming beats, until ``last``
    DRAIN = 3  # R + C - 2 cycles in which no operand is accepted


class SystolicArray(wiring.Component):
    """A ``rows x cols`` systolic tile for one ``dataflow`` (``"ws"`` or ``"os"``).

    Parameters
    ----------
    rows, cols:
        The array's size (positive integers).
    dataflow:
        :class:`~accel.hardware.Dataflow` or its name; the ports depend on it (module docstring).
    a_format, b_format, acc_format:
        Formats of the streamed input / the weight (WS) or of ``a`` / ``b`` (OS), and of the
        accumulator, whose ``overflow`` (wrap or saturate) acts after every MAC step.
    weight_buffers:
        1, or 2 for a second weight register per PE (WS only): the next fold's weights load while
        the current fold computes (module docstring).

    The results are :func:`sim.numerics.systolic_tile` of each fold and a fold takes exactly
    :meth:`fold_cycles` (:func:`accel.timing.gemm_tile_cycles` of :attr:`description`) cycles.
    """

    extra_cycles: int = 0
    """Cycles this RTL needs beyond :func:`accel.timing.gemm_tile_cycles` per fold (none)."""

    weight_buffers: int = 1
    """Weight registers per PE (the constructor's parameter; subclasses without it have one)."""

    def __init__(self, rows: int, cols: int, dataflow: Dataflow | str, *, a_format: NumberFormat = INT8,
                 b_format: NumberFormat = INT8, acc_format: NumberFormat = INT32, weight_buffers: int = 1) -> None:
        try:
            self._check(rows, cols, dataflow)
            check_mac_formats(a_format, b_format, acc_format)
            if weight_buffers not in (1, 2) or isinstance(weight_buffers, bool):
                raise ConfigError(f"Systolic array weight_buffers must be 1 or 2, not {weight_buffers!r}")
            if weight_buffers == 2 and Dataflow.parse(str(getattr(dataflow, "value", dataflow))) is not Dataflow.WS:
                raise ConfigError("Systolic array weight_buffers = 2 needs the weight-stationary dataflow")
        except ConfigError:
            self._MustUse__silence = True  # never built, so do not also warn "created but never used"
            raise
        self.rows, self.cols = rows, cols
        self.dataflow = dataflow if isinstance(dataflow, Dataflow) else Dataflow.parse(dataflow)
        self.a_format, self.b_format, self.acc_format = a_format, b_format, acc_format
        self.weight_buffers = weight_buffers
        a, b, acc = shape_of(a_format), shape_of(b_format), shape_of(acc_format)
        if self.dataflow is Dataflow.WS:
            members = {
                "weights": In(stream.Signature(data.ArrayLayout(b, cols))),
                "inputs": In(stream.Signature(data.StructLayout({"data": data.ArrayLayout(a, rows), "last": 1}))),
                "outputs": Out(stream.Signature(data.StructLayout({"data": data.ArrayLayout(acc, cols),
                                                                   "last": 1}))),
            }
        else:
            members = {
                "operands": In(stream.Signature(data.StructLayout({
                    "a": data.ArrayLayout(a, rows), "b": data.ArrayLayout(b, cols), "last": 1}))),
                "outputs": Out(stream.Signature(data.ArrayLayout(data.ArrayLayout(acc, cols), rows))),
            }
        super().__init__(members)

    @staticmethod
    def _check(rows: object, cols: object, dataflow: object) -> None:
        for name, value in (("rows", rows), ("cols", cols)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"Systolic array {name} must be a positive integer, not {value!r}")
        parsed = dataflow if isinstance(dataflow, Dataflow) else Dataflow.parse(dataflow)
        if parsed not in SUPPORTED_DATAFLOWS:
            raise ConfigError(f"Systolic array dataflow must be one of 'ws', 'os', not {parsed.value!r}")

    # -- what the datasheet and the manifest read ------------------------------------------------

    @property
    def description(self) -> ArrayDescription:
        """This tile as the :class:`accel.hardware.SystolicArray` the simulator times."""
        return ArrayDescription(self.rows, self.cols, dataflows=(self.dataflow,), input_format=self.a_format,
                                weight_format=self.b_format, accumulator_format=self.acc_format,
                                weight_buffers=self.weight_buffers)

    @property
    def latency(self) -> int:
        """Edges from accepting the operand that completes a result to emitting it: ``R + C - 1``."""
        return self.rows + self.cols - 1

    @property
    def drain_cycles(self) -> int:
        """Cycles after a fold's last operand in which the array accepts nothing: ``R + C - 2``."""
        return self.rows + self.cols - 2

    def fold_cycles(self, stream_length: int, follows: int = 0) -> int:
        """Cycles of one fold streaming ``stream_length`` beats, from :func:`accel.timing.gemm_tile_cycles`
        (``follows``: the stream length of the fold it follows, with double-buffered weights)."""
        from accel.timing import gemm_tile_cycles

        r, c, s = self.rows, self.cols, stream_length
        m, k, n = (s, r, c) if self.dataflow is Dataflow.WS else (r, s, c)
        return gemm_tile_cycles(self.description, self.dataflow, m, k, n, follows=follows) + self.extra_cycles

    @property
    def parameters(self) -> dict[str, object]:
        """The construction parameters as JSON-able values (for manifests and testbenches)."""
        parameters: dict[str, object] = {
            "rows": self.rows, "cols": self.cols, "dataflow": self.dataflow.value, "a_format": self.a_format.name,
            "b_format": self.b_format.name, "acc_format": self.acc_format.name,
            "overflow": self.acc_format.overflow.value}
        if self.weight_buffers != 1:
            parameters["weight_buffers"] = self.weight_buffers
        return parameters

    # -- the hardware ----------------------------------------------------------------------------

    def elaborate(self, platform: object) -> Module:
        if self.dataflow is Dataflow.WS and self.weight_buffers == 2:
            return self._elaborate_ws_double()
        if self.dataflow is Dataflow.WS:
            return self._elaborate_ws()
        return self._elaborate_os()

    def _control(self, m: Module, operand: stream.Interface, *,
                 preload: stream.Interface | None = None) -> tuple[Signal, Signal, Signal]:
        """The fold sequencer shared by both dataflows.

        A fold starts with a beat of ``preload`` (WS's weights) or, without one, of ``operand``.
        Returns ``(advance, fire, first)``: the global enable, "an ``operand`` beat is accepted on
        this edge" and "the fold has not started yet" (so an accepted OS beat is its first step).
        """
        rows, drain = self.rows, self.drain_cycles
        phase = Signal(_Phase)
        count = Signal(range(max(rows, drain, 1) + 1))
        blocked = Signal()  # a result waits for a consumer that is not ready
        missing = Signal()  # an operand is due mid-fold but not valid
        advance = Signal()
        first_beat = Signal()
        m.d.comb += blocked.eq(self.outputs.valid & ~self.outputs.ready)

        starts_fold = preload if preload is not None else operand
        m.d.comb += first_beat.eq(phase == _Phase.IDLE)
        if preload is not None:
            m.d.comb += [
                preload.ready.eq(((phase == _Phase.IDLE) | (phase == _Phase.PRELOAD)) & ~blocked),
                operand.ready.eq((phase == _Phase.STREAM) & ~blocked),
                missing.eq(((phase == _Phase.PRELOAD) & ~preload.valid) | ((phase == _Phase.STREAM) & ~operand.valid)),
            ]
        else:
            m.d.comb += [
                operand.ready.eq(((phase == _Phase.IDLE) | (phase == _Phase.STREAM)) & ~blocked),
                missing.eq((phase == _Phase.STREAM) & ~operand.valid),
            ]
        m.d.comb += advance.eq(~blocked & ~missing)
        fire = Signal()
        m.d.comb += fire.eq(operand.valid & operand.ready)
        start = starts_fold.valid & starts_fold.ready

        def end_of_stream() -> None:
            if drain:
                m.d.sync += [phase.eq(_Phase.DRAIN), count.eq(0)]
            else:
                m.d.sync += phase.eq(_Phase.IDLE)

        with m.If(advance), m.Switch(phase):
            with m.Case(_Phase.IDLE), m.If(start):
                if preload is not None:
                    m.d.sync += [phase.eq(_Phase.PRELOAD if rows > 1 else _Phase.STREAM), count.eq(1)]
                else:
                    with m.If(operand.payload.last):
                        end_of_stream()
                    with m.Else():
                        m.d.sync += phase.eq(_Phase.STREAM)
            with m.Case(_Phase.PRELOAD):
                m.d.sync += count.eq(count + 1)
                with m.If(count == rows - 1):
                    m.d.sync += phase.eq(_Phase.STREAM)
            with m.Case(_Phase.STREAM), m.If(operand.payload.last):
                end_of_stream()
            with m.Case(_Phase.DRAIN):
                m.d.sync += count.eq(count + 1)
                with m.If(count == drain - 1):
                    m.d.sync += phase.eq(_Phase.IDLE)
        self._phase, self._count = phase, count
        return advance, fire, first_beat

    def _result_valid(self, m: Module, advance: Signal, completes: object, last: object) -> None:
        """``outputs.valid`` (and WS's ``last``): tags that leave :attr:`latency` edges after the beat
        that ``completes`` a result (WS: every input row; OS: a fold's last step) is accepted.

        A result the consumer takes on an edge on which the array does not advance (an input beat is
        due but not valid) clears its tag, so it is emitted once."""
        valid, tag_last = completes, completes & last
        for stage in range(self.latency):
            next_valid = Signal(name=f"result_valid_{stage}")
            next_last = Signal(name=f"result_last_{stage}")
            with m.If(advance):
                m.d.sync += [next_valid.eq(valid), next_last.eq(tag_last)]
            if stage == self.latency - 1:
                with m.Elif(self.outputs.ready):
                    m.d.sync += next_valid.eq(0)
            valid, tag_last = next_valid, next_last
        m.d.comb += self.outputs.valid.eq(valid)
        if self.dataflow is Dataflow.WS:
            m.d.comb += self.outputs.payload.last.eq(tag_last)

    def _elaborate_ws(self) -> Module:
        m = Module()
        rows, cols = self.rows, self.cols
        advance, fire, _ = self._control(m, self.inputs, preload=self.weights)

        # Preload: weight beat i goes to row i (row 0 on the fold's first beat).
        row = Signal(range(rows + 1))
        m.d.comb += row.eq(0)
        with m.If(self._phase == _Phase.PRELOAD):
            m.d.comb += row.eq(self._count)
        weight_fire = self.weights.valid & self.weights.ready

        pes = [[WeightStationaryPE(a_format=self.a_format, b_format=self.b_format, acc_format=self.acc_format)
                for _ in range(cols)] for _ in range(rows)]
        for i in range(rows):
            # Input skew: row i is delayed by i registers before it enters column 0.
            x = self._skew(m, self.inputs.payload.data[i], i, advance, f"x_skew_{i}")
            for j in range(cols):
                pe = pes[i][j]
                m.submodules[f"pe_{i}_{j}"] = pe
                m.d.comb += [
                    pe.enable.eq(advance),
                    pe.load.eq(weight_fire & (row == i)),
                    pe.weight_in.eq(self.weights.payload[j]),
                    pe.x_in.eq(x if j == 0 else pes[i][j - 1].x_out),
                    pe.psum_in.eq(0 if i == 0 else pes[i - 1][j].psum_out),
                ]

        self._deskew(m, [pe.psum_out for pe in pes[rows - 1]], advance)
        self._result_valid(m, advance, fire, self.inputs.payload.last)
        return m

    def _elaborate_ws_double(self) -> Module:
        """WS with two weight registers per PE: the schedule of the module docstring's last section."""
        m = Module()
        rows, cols = self.rows, self.cols
        blocked, missing, advance = Signal(), Signal(), Signal()
        streaming = Signal()  # mid-fold: the next input row is due
        loaded = Signal(range(3))  # folds whose weights are all in and whose stream has not begun
        in_bank = Signal()  # the register set of the fold streaming (or next to stream)
        w_bank = Signal()  # the register set being loaded
        w_row = Signal(range(rows))
        armed = Signal(init=1)  # the loader may start the next fold (the fold before it has started)
        wait = Signal(range(cols + 1))  # edges until the register set's last user has crossed the array
        m.d.comb += [
            blocked.eq(self.outputs.valid & ~self.outputs.ready),
            missing.eq(streaming & ~self.inputs.valid),
            advance.eq(~blocked & ~missing),
            self.inputs.ready.eq((streaming | (loaded != 0)) & ~blocked),
            self.weights.ready.eq(armed & (wait == 0) & advance),
        ]
        fire = Signal()
        weight_fire = Signal()
        m.d.comb += [fire.eq(self.inputs.valid & self.inputs.ready),
                     weight_fire.eq(self.weights.valid & self.weights.ready)]
        starts = fire & ~streaming  # a fold's first input row
        completes = weight_fire & (w_row == rows - 1)  # a fold's last weight row
        with m.If(advance):
            with m.If(fire):
                m.d.sync += streaming.eq(~self.inputs.payload.last)
                with m.If(self.inputs.payload.last):
                    m.d.sync += in_bank.eq(~in_bank)
            m.d.sync += loaded.eq(loaded + completes - starts)
            with m.If(weight_fire):
                m.d.sync += w_row.eq(Mux(completes, 0, w_row + 1))
            with m.If(completes):
                m.d.sync += [w_bank.eq(~w_bank), armed.eq(0)]
            with m.If(starts):
                m.d.sync += [armed.eq(1), wait.eq(cols - 1)]
            with m.Elif(wait != 0):
                m.d.sync += wait.eq(wait - 1)

        pes = [[DoubleBufferedWeightPE(a_format=self.a_format, b_format=self.b_format, acc_format=self.acc_format)
                for _ in range(cols)] for _ in range(rows)]
        for i in range(rows):
            x = self._skew(m, self.inputs.payload.data[i], i, advance, f"x_skew_{i}")
            sel = self._skew(m, in_bank, i, advance, f"sel_skew_{i}")
            for j in range(cols):
                pe = pes[i][j]
                m.submodules[f"pe_{i}_{j}"] = pe
                left = pes[i][j - 1] if j else None
                m.d.comb += [
                    pe.enable.eq(advance),
                    pe.load.eq(weight_fire & (w_row == i)),
                    pe.load_bank.eq(w_bank),
                    pe.weight_in.eq(self.weights.payload[j]),
                    pe.x_in.eq(left.x_out if left else x),
                    pe.sel_in.eq(left.sel_out if left else sel),
                    pe.psum_in.eq(0 if i == 0 else pes[i - 1][j].psum_out),
                ]
        self._deskew(m, [pe.psum_out for pe in pes[rows - 1]], advance)
        self._result_valid(m, advance, fire, self.inputs.payload.last)
        return m

    def _deskew(self, m: Module, bottom: list[Signal], advance: Signal) -> None:
        """Output de-skew: column j waits C - 1 - j registers so that a row leaves at once."""
        for j, psum in enumerate(bottom):
            column = self._skew(m, psum, self.cols - 1 - j, advance, f"deskew_{j}")
            m.d.comb += self.outputs.payload.data[j].eq(column)

    def _elaborate_os(self) -> Module:
        m = Module()
        rows, cols = self.rows, self.cols
        advance, fire, first = self._control(m, self.operands)
        payload = self.operands.payload

        pes = [[OutputStationaryPE(a_format=self.a_format, b_format=self.b_format, acc_format=self.acc_format)
                for _ in range(cols)] for _ in range(rows)]
        # Skew: a row i and its tags by i registers, b column j by j registers.
        a_in = [self._skew(m, payload.a[i], i, advance, f"a_skew_{i}") for i in range(rows)]
        valid_in = [self._skew(m, fire, i, advance, f"valid_skew_{i}") for i in range(rows)]
        first_in = [self._skew(m, first, i, advance, f"first_skew_{i}") for i in range(rows)]
        b_in = [self._skew(m, payload.b[j], j, advance, f"b_skew_{j}") for j in range(cols)]
        for i in range(rows):
            for j in range(cols):
                pe = pes[i][j]
                m.submodules[f"pe_{i}_{j}"] = pe
                left = pes[i][j - 1] if j else None
                m.d.comb += [
                    pe.enable.eq(advance),
                    pe.a_in.eq(left.a_out if left else a_in[i]),
                    pe.valid_in.eq(left.valid_out if left else valid_in[i]),
                    pe.first_in.eq(left.first_out if left else first_in[i]),
                    pe.b_in.eq(pes[i - 1][j].b_out if i else b_in[j]),
                    # De-skew: every accumulator is read at once, when the last one has finished.
                    self.outputs.payload[i][j].eq(pe.acc),
                ]
        self._result_valid(m, advance, fire & payload.last, Const(1))
        return m

    @staticmethod
    def _skew(m: Module, value: object, depth: int, advance: Signal, name: str) -> object:
        """``value`` delayed by ``depth`` registers that shift only when ``advance`` is high."""
        for stage in range(depth):
            register = Signal(value.shape(), name=f"{name}_{stage}")
            with m.If(advance):
                m.d.sync += register.eq(value)
            value = register
        return value


class DoubleBufferedWeightPE(wiring.Component):
    """A weight-stationary PE with two weight registers: ``psum_out <- overflow(psum_in + x_in *
    weight[sel_in])`` every enabled edge; ``weight[load_bank] <- weight_in`` when ``load``.

    ``sel_in`` travels with ``x_in`` (registered to ``sel_out``), so the PE uses the weight of the fold
    its input belongs to while the other register takes the next fold's weight. The arithmetic is
    :class:`rtl.systolic_pe.WeightStationaryPE`'s (:func:`rtl.systolic_pe.overflow_sum`).
    """

    def __init__(self, *, a_format: NumberFormat, b_format: NumberFormat, acc_format: NumberFormat) -> None:
        check_mac_formats(a_format, b_format, acc_format)
        self.a_format, self.b_format, self.acc_format = a_format, b_format, acc_format
        super().__init__({
            "x_in": In(shape_of(a_format)),
            "sel_in": In(1),
            "psum_in": In(shape_of(acc_format)),
            "weight_in": In(shape_of(b_format)),
            "load": In(1),
            "load_bank": In(1),
            "enable": In(1),
            "x_out": Out(shape_of(a_format)),
            "sel_out": Out(1),
            "psum_out": Out(shape_of(acc_format)),
        })

    def elaborate(self, platform: object) -> Module:
        m = Module()
        weights = [Signal(shape_of(self.b_format), name=f"weight_{b}") for b in range(2)]
        weight = Mux(self.sel_in, weights[1], weights[0])
        new_psum = overflow_sum(m, self.psum_in, self.x_in * weight, self.acc_format, "psum_total")
        with m.If(self.enable):
            m.d.sync += [self.x_out.eq(self.x_in), self.sel_out.eq(self.sel_in), self.psum_out.eq(new_psum)]
            with m.If(self.load):
                for b in range(2):
                    with m.If(self.load_bank == b):
                        m.d.sync += weights[b].eq(self.weight_in)
        return m

"""A pipelined requantizer: int32 accumulators to int8 (or any narrow format), TFLite's way.

:class:`Requantizer` computes, on every lane of every accepted beat, exactly
:func:`sim.numerics.requantize` ``(acc, multiplier, shift, zero_point, out_format=..., mode=...,
clamp_min=low, clamp_max=high)``: gemmlowp's double rounding (``SaturatingRoundingDoublingHighMul``
then ``RoundingDivideByPOT``) by default, TFLite's single rounding with ``mode="single"``. Every
lane carries its own multiplier, shift, zero point and bounds (per-channel quantization; ReLU is
``low = zero_point``).

Pipeline (one register after each stage, :attr:`Requantizer.latency` = 5):

======  ==========================================  ===========================================
stage   double rounding                             single rounding
======  ==========================================  ===========================================
1       ``x = int32(acc << max(shift, 0))``         ``x = acc``; ``total = 31 - shift``
2       ``p = x * multiplier`` (64 bits)            ``p = x * multiplier`` (64 bits)
3       SRDHM: ``(p + nudge) / 2**31`` toward 0     ``p + 2**(total - 1)``
4       RDBP by ``max(-shift, 0)``                  ``int32(that >> total)``
5       ``clamp(y + zero_point, low, high)``        the same
======  ==========================================  ===========================================

Handshake: ``amaranth.lib.stream`` on both sides; the pipeline advances as one whenever the
output register is empty or being read (``i.ready = ~o.valid | o.ready``, independent of
``i.valid``). With the consumer always ready, a beat accepted on edge ``E`` is emitted on edge
``E + 5``; ``n`` back-to-back beats take ``n - 1 + 5`` edges from the first accepted to the last
emitted, which is :func:`accel.timing.vector_cycles` for a vector unit of ``lanes`` lanes and
``latency_cycles = latency - 1`` (:attr:`Requantizer.vector_latency_cycles`, the value in the
``fpga-small`` preset).
"""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from accel.errors import ConfigError
from accel.formats import INT8, NumberFormat
from rtl.fixed import check_format, shape_of

__all__ = ["Requantizer", "requant_lane_layout"]

_INT32_MIN = -(1 << 31)
_INT32_MAX = (1 << 31) - 1
_MODES = ("double", "single")


def requant_lane_layout(out_format: NumberFormat) -> data.StructLayout:
    """One lane of a :class:`Requantizer` input beat.

    ``acc`` (int32), ``multiplier`` (int32, non-negative), ``shift`` (signed 6 bits, -31 .. 30),
    ``zero_point``, ``low`` and ``high`` (codes of ``out_format``; the clamp bounds).
    """
    out = shape_of(out_format)
    return data.StructLayout({"acc": signed(32), "multiplier": signed(32), "shift": signed(6),
                              "zero_point": out, "low": out, "high": out})


class Requantizer(wiring.Component):
    """``lanes`` requantizers in one 5-stage pipeline with stream ports.

    Parameters
    ----------
    out_format:
        The output format (default ``int8``); at most 32 bits.
    mode:
        ``"double"`` (gemmlowp, the default) or ``"single"`` (``TFLITE_SINGLE_ROUNDING``).
    lanes:
        Accumulators per beat (default 1).

    Members
    -------
    i : In(stream of ``lanes`` x :func:`requant_lane_layout`)
    o : Out(stream of ``lanes`` x ``out_format``)
    """

    latency: int = 5
    """Edges from accepting a beat to emitting its result (the consumer ready)."""

    def __init__(self, *, out_format: NumberFormat = INT8, mode: str = "double", lanes: int = 1) -> None:
        try:
            check_format("Output format", out_format)
            if out_format.bits > 32:
                raise ConfigError(f"Output format must be at most 32 bits wide, not {out_format.bits}")
            if mode not in _MODES:
                raise ConfigError(f"Requantizer mode must be 'double' or 'single', not {mode!r}")
            if not isinstance(lanes, int) or isinstance(lanes, bool) or lanes < 1:
                raise ConfigError(f"Requantizer lanes must be a positive integer, not {lanes!r}")
        except ConfigError:
            self._MustUse__silence = True
            raise
        self.out_format, self.mode, self.lanes = out_format, mode, lanes
        super().__init__({
            "i": In(stream.Signature(data.ArrayLayout(requant_lane_layout(out_format), lanes))),
            "o": Out(stream.Signature(data.ArrayLayout(shape_of(out_format), lanes))),
        })

    @property
    def vector_latency_cycles(self) -> int:
        """The ``[vector] latency_cycles`` that makes :func:`accel.timing.vector_cycles` predict this unit."""
        return self.latency - 1

    @property
    def parameters(self) -> dict[str, object]:
        return {"out_format": self.out_format.name, "mode": self.mode, "lanes": self.lanes}

    def elaborate(self, platform: object) -> Module:
        m = Module()
        advance = Signal()
        m.d.comb += [advance.eq(~self.o.valid | self.o.ready), self.i.ready.eq(advance)]

        # The valid bit of each stage.
        valid = [Signal(name=f"valid_{stage}") for stage in range(1, self.latency + 1)]
        with m.If(advance):
            m.d.sync += valid[0].eq(self.i.valid)
            m.d.sync += [valid[k].eq(valid[k - 1]) for k in range(1, self.latency)]
        m.d.comb += self.o.valid.eq(valid[-1])

        for lane in range(self.lanes):
            result = self._lane(m, self.i.payload[lane], advance, f"lane{lane}")
            m.d.comb += self.o.payload[lane].eq(result)
        return m

    def _lane(self, m: Module, beat: data.View, advance: Signal, name: str) -> Signal:
        """The five stages of one lane; returns its output register."""
        out = shape_of(self.out_format)

        def stage(shape: object, value: object, label: str) -> Signal:
            register = Signal(shape, name=f"{name}_{label}")
            with m.If(advance):
                m.d.sync += register.eq(value)
            return register

        def carry(value: object, label: str, stages: int) -> list[Signal]:
            """``value`` registered at stages 1 .. ``stages`` (side data travelling with the beat)."""
            registers = []
            for k in range(stages):
                value = stage(value.shape(), value, f"{label}_{k + 1}")
                registers.append(value)
            return registers

        zero_point = carry(beat.zero_point, "zero_point", 4)[-1]
        low = carry(beat.low, "low", 4)[-1]
        high = carry(beat.high, "high", 4)[-1]

        if self.mode == "double":
            # Stage 1: the left shift, wrapping to int32 as C++'s int32 multiply by 2**left_shift does.
            left = Mux(beat.shift > 0, beat.shift, 0)[:5]
            x = stage(signed(32), (beat.acc << left)[:32].as_signed(), "x")
            multiplier = stage(signed(32), beat.multiplier, "multiplier")
            right = carry(Mux(beat.shift > 0, 0, -beat.shift)[:5], "right", 3)
            # Stage 2: the exact 64-bit product (and gemmlowp's one overflowing case).
            product = stage(signed(64), x * multiplier, "product")
            overflow = stage(1, (x == _INT32_MIN) & (multiplier == _INT32_MIN), "overflow")
            # Stage 3: SaturatingRoundingDoublingHighMul: (p + nudge) / 2**31, truncating toward zero.
            nudged = Signal(signed(66), name=f"{name}_nudged")
            m.d.comb += nudged.eq(product + Mux(product >= 0, 1 << 30, 1 - (1 << 30)))
            toward_zero = Mux(nudged < 0, (nudged + ((1 << 31) - 1)) >> 31, nudged >> 31)
            high_mul = stage(signed(32), Mux(overflow, _INT32_MAX, toward_zero[:32].as_signed()), "srdhm")
            # Stage 4: RoundingDivideByPOT: mask, remainder, threshold, as gemmlowp writes it.
            exponent = right[2]
            mask = Signal(signed(33), name=f"{name}_mask")
            remainder = Signal(signed(33), name=f"{name}_remainder")
            threshold = Signal(signed(33), name=f"{name}_threshold")
            m.d.comb += [
                mask.eq((Const(1, 33) << exponent) - 1),
                remainder.eq(high_mul & mask),
                threshold.eq((mask >> 1) + (high_mul < 0)),
            ]
            scaled = stage(signed(32), (high_mul >> exponent) + (remainder > threshold), "scaled")
        else:
            # Stage 1: total_shift = 31 - shift (1 .. 62).
            x = stage(signed(32), beat.acc, "x")
            multiplier = stage(signed(32), beat.multiplier, "multiplier")
            total = carry((31 - beat.shift)[:6], "total_shift", 3)
            # Stage 2: the exact 64-bit product.
            product = stage(signed(64), x * multiplier, "product")
            # Stage 3: add the rounding constant 2**(total_shift - 1).
            rounded = stage(signed(66), product + (Const(1, 63) << (total[1] - 1)[:6]), "rounded")
            # Stage 4: one arithmetic shift, cast to int32.
            scaled = stage(signed(32), (rounded >> total[2])[:32].as_signed(), "scaled")

        # Stage 5: add the zero point exactly, clamp to [low, high].
        biased = Signal(signed(34), name=f"{name}_biased")
        m.d.comb += biased.eq(scaled + zero_point)
        clamped = Mux(biased < low, low, Mux(biased > high, high, biased))
        return stage(out, clamped, "out")

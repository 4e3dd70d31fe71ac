"""SystolicArray in Amaranth's simulator: bit-exact against sim.numerics, cycle-exact against accel.timing.

A fold is driven as one beat per cycle (the producer is always valid, the consumer always
ready, except where a test stalls them on purpose); the measured count is the number of edges
from the one accepting the first operand to the one emitting the last result.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np
import pytest
from amaranth.hdl import Shape
from amaranth.sim import Simulator

from accel.errors import ConfigError
from accel.formats import INT8, INT32, NumberFormat, Overflow
from accel.hardware import Dataflow
from rtl.systolic import SystolicArray
from rtl.verilog import generate
from sim.numerics import systolic_tile, systolic_tile_cycles

INT20_SAT = NumberFormat(20, overflow=Overflow.SATURATE)


@dataclass
class Run:
    accepted: list[int] = field(default_factory=list)  # edges accepting an operand beat (any stream)
    emitted: list[int] = field(default_factory=list)  # edges emitting a result beat
    results: list[np.ndarray] = field(default_factory=list)


def fold_beats(dut: SystolicArray, x: np.ndarray, w: np.ndarray) -> list[tuple[str, object]]:
    """The beats of one fold, in order: (stream name, payload)."""
    if dut.dataflow is Dataflow.WS:
        stream_length = x.shape[0]
        return ([("weights", [int(v) for v in w[i]]) for i in range(dut.rows)]
                + [("inputs", {"data": [int(v) for v in x[t]], "last": t == stream_length - 1})
                   for t in range(stream_length)])
    stream_length = x.shape[1]
    return [("operands", {"a": [int(v) for v in x[:, s]], "b": [int(v) for v in w[s]],
                          "last": s == stream_length - 1}) for s in range(stream_length)]


def expected_beats(dut: SystolicArray, x: np.ndarray, w: np.ndarray) -> list[np.ndarray]:
    tile = systolic_tile(x, w, dataflow=dut.dataflow, a_format=dut.a_format, b_format=dut.b_format,
                         acc_format=dut.acc_format)
    return list(tile) if dut.dataflow is Dataflow.WS else [tile]


def run(dut: SystolicArray, folds: list[tuple[np.ndarray, np.ndarray]], *, stall_every: int = 0,
        tail: int = 40, gaps: random.Random | None = None) -> Run:
    """Drive ``folds`` back to back; with ``stall_every``, hold the producer and the consumer idle
    on every ``stall_every``-th cycle. With ``gaps``, the producer offers a new beat with probability
    0.7 and the consumer is ready with probability 0.6, independently (an offered beat stays offered
    until it is taken)."""
    out = Run()
    beats = [beat for x, w in folds for beat in fold_beats(dut, x, w)]

    def result(ctx) -> np.ndarray:
        payload = ctx.get(dut.outputs.payload)
        if dut.dataflow is Dataflow.WS:
            return np.array([int(v) for v in payload.data])
        return np.array([[int(v) for v in row] for row in payload])

    async def testbench(ctx) -> None:
        cycle, index, offered = 0, 0, False
        while index < len(beats) or cycle < (out.accepted[-1] if out.accepted else 0) + tail:
            stalled = stall_every and cycle % stall_every == stall_every - 1
            ready = not stalled and (gaps is None or gaps.random() < 0.6)
            offer = not stalled and (gaps is None or offered or gaps.random() < 0.7)
            ctx.set(dut.outputs.ready, ready)
            for name in ("weights", "inputs", "operands"):
                if hasattr(dut, name):
                    ctx.set(getattr(dut, name).valid, 0)
            current = None
            if index < len(beats) and offer:
                name, payload = beats[index]
                current = getattr(dut, name)
                ctx.set(current.payload, payload)
                ctx.set(current.valid, 1)
            if ctx.get(dut.outputs.valid) and ctx.get(dut.outputs.ready):
                out.emitted.append(cycle)
                out.results.append(result(ctx))
            offered = current is not None and not ctx.get(current.ready)
            if current is not None and ctx.get(current.ready):
                out.accepted.append(cycle)
                index += 1
            await ctx.tick()
            cycle += 1

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return out


def random_fold(dut: SystolicArray, rng: np.random.Generator, stream_length: int) -> tuple[np.ndarray, np.ndarray]:
    a, b = dut.a_format, dut.b_format
    if dut.dataflow is Dataflow.WS:
        shapes = (stream_length, dut.rows), (dut.rows, dut.cols)
    else:
        shapes = (dut.rows, stream_length), (stream_length, dut.cols)
    return (rng.integers(a.min_int, a.max_int + 1, shapes[0]), rng.integers(b.min_int, b.max_int + 1, shapes[1]))


@pytest.mark.parametrize("dataflow", ["ws", "os"])
@pytest.mark.parametrize(("rows", "cols"), [(1, 1), (2, 2), (3, 4), (4, 2)])
def test_folds_match_numerics_and_the_datasheet(dataflow: str, rows: int, cols: int) -> None:
    dut = SystolicArray(rows, cols, dataflow)
    rng = np.random.default_rng(rows * 10 + cols)
    lengths = [5, 1, 3]
    folds = [random_fold(dut, rng, s) for s in lengths]
    observed = run(dut, folds)
    expected = [beat for x, w in folds for beat in expected_beats(dut, x, w)]
    assert len(observed.results) == len(expected)
    assert all(np.array_equal(got, want) for got, want in zip(observed.results, expected, strict=True))
    per_fold = [dut.fold_cycles(s) for s in lengths]
    m_k_n = [(s, rows, cols) if dataflow == "ws" else (rows, s, cols) for s in lengths]
    assert per_fold == [systolic_tile_cycles(dut.description, dataflow, *mkn) for mkn in m_k_n]
    assert observed.emitted[-1] - observed.accepted[0] == sum(per_fold)


@pytest.mark.parametrize("dataflow", ["ws", "os"])
def test_one_fold_is_exactly_the_scalesim_count(dataflow: str) -> None:
    dut = SystolicArray(3, 5, dataflow)
    observed = run(dut, [random_fold(dut, np.random.default_rng(3), 7)])
    fill = 2 * 3 - 1 if dataflow == "ws" else 3 - 1
    assert observed.emitted[-1] - observed.accepted[0] == fill + 7 + (5 - 1)


@pytest.mark.parametrize("dataflow", ["ws", "os"])
def test_stalls_on_both_sides_keep_results_exact(dataflow: str) -> None:
    dut = SystolicArray(3, 3, dataflow, acc_format=INT20_SAT)
    rng = np.random.default_rng(7)
    folds = [random_fold(dut, rng, 20) for _ in range(2)]
    observed = run(dut, folds, stall_every=3, tail=120)
    expected = [beat for x, w in folds for beat in expected_beats(dut, x, w)]
    assert all(np.array_equal(got, want) for got, want in zip(observed.results, expected, strict=True))
    assert len(observed.results) == len(expected)


def test_saturating_accumulator_clamps_after_every_step() -> None:
    dut = SystolicArray(4, 1, "ws", acc_format=NumberFormat(16, overflow=Overflow.SATURATE))
    x = np.array([[127, 127, 127, -128]])
    w = np.array([[127], [127], [127], [127]])
    observed = run(dut, [(x, w)])
    assert [int(r[0]) for r in observed.results] == [16511]


def test_signature_is_the_contract() -> None:
    ws = SystolicArray(2, 3, "ws")
    members = dict(ws.signature.members)
    assert set(members) == {"weights", "inputs", "outputs"}
    assert Shape.cast(ws.inputs.payload.shape()).width == 2 * 8 + 1
    assert Shape.cast(ws.outputs.payload.shape()).width == 3 * 32 + 1
    os_ = SystolicArray(2, 3, Dataflow.OS)
    assert set(dict(os_.signature.members)) == {"operands", "outputs"}
    assert Shape.cast(os_.outputs.payload.shape()).width == 2 * 3 * 32
    assert ws.latency == 4 and ws.extra_cycles == 0 and ws.drain_cycles == 3
    assert ws.parameters == {"rows": 2, "cols": 3, "dataflow": "ws", "a_format": "int8", "b_format": "int8",
                             "acc_format": "int32", "overflow": "wrap"}
    assert "module systolic_ws(" in generate(ws, "systolic_ws")
    assert "module systolic_os(" in generate(os_, "systolic_os")


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
@pytest.mark.parametrize(("args", "kwargs", "message"), [
    ((0, 4, "ws"), {}, r"^Systolic array rows must be a positive integer, not 0$"),
    ((4, 4, "is"), {}, r"^Systolic array dataflow must be one of 'ws', 'os', not 'is'$"),
    ((4, 4, "xs"), {}, r"^Dataflow must be one of 'ws', 'os', 'is', not 'xs'$"),
    ((4, 4, "ws"), {"acc_format": NumberFormat(12)},
     r"^Accumulator format must be at least 16 bits wide to hold a int8 x int8 product, not 12$"),
])
def test_bad_parameters_are_refused(args: tuple, kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        SystolicArray(*args, **kwargs)
    assert INT8.bits == 8 and INT32.bits == 32


def test_results_taken_while_the_array_waits_for_input_are_emitted_once():
    """Independent gaps on inputs and back-pressure on outputs: the consumer may take a result on an
    edge when the array is frozen for a missing input row."""
    for seed in range(12):
        dut = SystolicArray(4, 2, "ws")
        rng = np.random.default_rng(seed)
        folds = [(rng.integers(-128, 128, (s, 4)), rng.integers(-128, 128, (4, 2))) for s in (4, 3, 8)]
        observed = run(dut, folds, gaps=random.Random(seed), tail=200)
        expected = [beat for x, w in folds for beat in expected_beats(dut, x, w)]
        assert [list(r) for r in observed.results] == [list(e) for e in expected], f"seed {seed}"


def test_double_buffered_weights_are_ws_only_and_time_as_the_datasheet():
    with pytest.raises(ConfigError, match="weight_buffers = 2 needs the weight-stationary dataflow"):
        SystolicArray(4, 4, "os", weight_buffers=2)
    with pytest.raises(ConfigError, match="weight_buffers must be 1 or 2, not 3"):
        SystolicArray(4, 4, "ws", weight_buffers=3)
    dut = SystolicArray(4, 8, "ws", weight_buffers=2)
    assert dut.description.weight_buffers == 2 and dut.parameters["weight_buffers"] == 2
    assert dut.fold_cycles(10) == 2 * 4 + 8 + 10 - 2  # a first fold pays its fill and drain
    assert dut.fold_cycles(10, follows=10) == 10 + (4 + 8 - 10)  # a following one waits for its weights only
    assert "weight_buffers" not in SystolicArray(4, 8, "ws").parameters  # manifests of one buffer unchanged

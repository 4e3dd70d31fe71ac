"""The NPU's vector unit computes quantized adds, clamps (ReLUs, copies) and pools as the host's table says.

A residual block (1x1 conv -> ReLU -> 1x1 conv -> add of the block's input, the ReLUs folded into the
convolution's store and the add's output range by onnxruntime's quantizer; 1x1 convolutions because
the NPU's array reads its GEMM operands as laid out, with no im2col feeder, and a 1x1 convolution's
input band is its im2col matrix) is built, exported to ONNX, quantized by
``quantize_static`` with int8 activations, imported and mapped by the real mapper onto fpga-small.
:func:`rtl.npu.golden.requant_table` is the host's table of the plan: the convolutions' stores
requantize, and the add's Vector commands get their zero points and TFLite rescales
(:class:`~accel.encoding.VectorStep`). rtl.npu.golden with that table must end with sim.execute's
DRAM image byte for byte, through DRAM (``none`` allocator) and with the ILP keeping tensors on chip;
on Icarus, the NPU with the table written through its ``rq_*`` port must end with golden's DRAM and
every command's start and end must be the simulator's. A hand-written program clamps (a ReLU and a
copy) and adds with a hand-written table; a table with a wrong rescale must fail on the data only.

A 2x4x12x12 1x1 conv -> 3x3 stride-2 max pool with padding 1 -> 2x2 max pool -> global average pool,
quantized the same way, is mapped onto fpga-small with a 4 KiB scratchpad: through DRAM the first
pool's chunks are whole images; with the ILP keeping the later pools' tensors on chip they are bands
of rows inside an image (their input bands starting mid-image); the second pool's chunk spans both
images and the average pool's is both images' 8 channels; its pool steps
(:class:`~accel.encoding.VectorStep` ``max`` and ``avg``: the sum's bias and the TFLite rescale of
sim.reference.global_avg_codes' float32 scale) make golden end with sim.execute's DRAM (through DRAM
and resident), golden agrees with sim.reference.maxpool_codes on a hand-written band, and on Icarus
the NPU ends with golden's DRAM and the simulator's every start and end; a step with a wrong left
padding must fail on the data only.

A 2x4x8x8 1x1 conv -> 3x3 stride-2 depthwise convolution with padding 1 (on the vector unit, as the
mapper puts it) gets a ``depthwise`` step with its channels' entries in the channel table; golden
with it ends with sim.execute's DRAM, and so does the NPU on Icarus, cycle-exact; a step whose
channel entries are one off must fail on the data only.
"""

from __future__ import annotations

import dataclasses
import random
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from npu_bench import quantized_graph, run_programs, table_words

from accel.commands import Block, Buffer, Compute, Load, Store, Vector
from accel.encoding import RequantTable, VectorStep, encode_program
from accel.errors import ConfigError
from accel.formats import Requantization
from mapper import MapOptions, map_graph
from mapper.plan import Plan
from rtl.npu.core import refusal
from rtl.npu.golden import execute, requant_table
from sim.execute import dram_images
from sim.numerics import tflite_add_multipliers
from workloads.builder import GraphBuilder

pytest.importorskip("onnxruntime")

SPAD = Buffer.SCRATCHPAD
MOVE_LATENCY = 8
"""``activation.latency_cycles`` of the design (Moves requantize, as in test_npu_requant_cocotb.py)."""


def design(rows: int = 4):  # noqa: ANN201
    """fpga-small (4x4, or ``rows x rows``; tflite-double, vector unit of 4 lanes and 4 cycles of latency)
    with Moves through the requantizer (the testbench derives the same from its parameters)."""
    from accel.config import load

    arch = load("fpga-small")
    assert arch.array.requant is Requantization.TFLITE_DOUBLE and arch.array.rows == 4
    assert (arch.vector.lanes, arch.vector.latency_cycles) == (4, 4)
    if rows != 4:
        arch = dataclasses.replace(arch, name=f"fpga-small-{rows}x{rows}",
                                   array=dataclasses.replace(arch.array, rows=rows, cols=rows))
    return dataclasses.replace(arch, activation=dataclasses.replace(arch.activation, latency_cycles=MOVE_LATENCY))


@cache
def residual_graph():  # noqa: ANN201
    """(graph, input codes of its device part) of a 1x4x4x4 residual block (4 -> 8 -> 4 channels), quantized with
    int8 activations."""
    b = GraphBuilder("qres")
    x = b.input("x", (1, 4, 4, 4))
    h = b.conv(x, 8, 1, name="conv1")
    h = b.activation(h, "relu", "conv1.relu")
    h = b.conv(h, 4, 1, name="conv2")
    b.activation(b.add(h, x, name="add"), "relu", "add.relu")
    return quantized_graph(b)


@cache
def residual_block(allocator: str = "none") -> tuple[Plan, dict]:
    """The mapper's plan of the residual block (``allocator``) and its input codes."""
    graph, inputs = residual_graph()
    return map_graph(graph, design(), MapOptions(allocator=allocator)), inputs


RESIDUAL = {"residual_block": lambda: residual_block("none"), "residual_block_resident": lambda: residual_block("ilp")}
"""The mapper's plans of the residual block by name (npu_tb.py has a cocotb test of each)."""


@pytest.mark.parametrize("name", RESIDUAL)
def test_golden_with_the_hosts_table_adds_as_sim_execute(name: str) -> None:
    """Golden, given the plan's table, ends with sim.execute's DRAM image, every byte; without the add's
    vector steps (timing only, as before) it does not."""
    plan, inputs = RESIDUAL[name]()
    table = requant_table(plan)
    vectors = [c for c in plan.commands if isinstance(c, Vector)]
    assert vectors and all(c.layer == "add" for c in vectors)
    assert [s.command for s in table.vector] == [c.id for c in vectors]
    assert all(s.function == "add" and s.a_multiplier and s.b_multiplier and s.y_multiplier for s in table.vector)
    before, after = dram_images(plan, inputs)
    assert execute(plan.arch, plan.commands, before, requant=table).dram == bytearray(after)
    timed_only = dataclasses.replace(table, vector=())
    assert execute(plan.arch, plan.commands, before, requant=timed_only).dram != bytearray(after)


def test_golden_adds_as_sim_execute_in_tflites_single_rounding_too() -> None:
    """On a tflite-single design the table's rescales and golden's add round as sim.execute's (an
    add in float32-half-even rounds floats, which the table refuses: below)."""
    graph, inputs = residual_graph()
    arch = design()
    arch = dataclasses.replace(arch, array=dataclasses.replace(arch.array, requant=Requantization.TFLITE_SINGLE))
    plan = map_graph(graph, arch, MapOptions(allocator="none"))
    table = requant_table(plan)
    before, after = dram_images(plan, inputs)
    assert execute(plan.arch, plan.commands, before, requant=table).dram == bytearray(after)


def test_the_adds_step_is_tflites_rescale_of_its_tensors() -> None:
    plan, _ = residual_block()
    graph = plan.graph
    add = graph.layer("add")
    (a, b), y = (graph.tensors[t].quant for t in add.inputs), graph.tensors[add.outputs[0]].quant
    step = requant_table(plan).vector[0]
    assert step.multipliers == tflite_add_multipliers(a.scale[0], b.scale[0], y.scale[0])
    assert (step.a_zero_point, step.b_zero_point, step.y_zero_point) == (a.zero_point[0], b.zero_point[0],
                                                                         y.zero_point[0])
    assert (step.low, step.high) == (-128, 127)


def test_vector_steps_are_refused_for_what_the_vector_unit_cannot_compute() -> None:
    plan, _ = residual_block()
    vector = next(c for c in plan.commands if isinstance(c, Vector))
    blocked = dataclasses.replace(vector, output_block=Block(rows=1, row_bytes=vector.elements, row_stride=0))
    commands = tuple(blocked if c.id == vector.id else c for c in plan.commands)
    with pytest.raises(ConfigError, match=rf"^Command {vector.id} \(Vector, layer 'add'\): the NPU's vector unit "
                                          r"reads and writes packed runs, not blocks$"):
        requant_table(dataclasses.replace(plan, commands=commands))
    half = dataclasses.replace(vector, elements=vector.extent // 2)
    commands = tuple(half if c.id == vector.id else c for c in plan.commands)
    with pytest.raises(ConfigError, match=rf"^Command {vector.id} \(Vector, layer 'add'\): the NPU's vector unit "
                                          rf"computes a chunk's elements, {vector.extent}, not {half.elements}$"):
        requant_table(dataclasses.replace(plan, commands=commands))
    arch = dataclasses.replace(plan.arch, array=dataclasses.replace(plan.arch.array,
                                                                    requant=Requantization.FLOAT32_HALF_EVEN))
    with pytest.raises(ConfigError, match=r"^fpga-small: the NPU's requantizer rounds as tflite-double or "
                                          r"tflite-single, not the design's float32-half-even$"):
        requant_table(dataclasses.replace(plan, arch=arch))


def test_a_multiply_on_the_vector_unit_is_refused() -> None:
    graph, _ = residual_graph()
    plan, _ = residual_block()
    add = graph.layer("add")
    mul = dataclasses.replace(add, attrs={**add.attrs, "fn": "mul"}, source_op="Mul")
    layers = tuple(mul if layer.name == "add" else layer for layer in graph.layers)
    plan = dataclasses.replace(plan, graph=dataclasses.replace(graph, layers=layers))
    vector = next(c for c in plan.commands if isinstance(c, Vector))
    with pytest.raises(ConfigError, match=rf"^Command {vector.id} \(Vector, layer 'add'\): the NPU's vector unit "
                                          r"computes quantized adds of two activations, ReLUs and copies, not Mul$"):
        requant_table(plan)


POOL_SPAD_BYTES = 4096
"""The pool network's scratchpad: through DRAM the first pool's chunks are whole images; with the ILP
keeping the pools' tensors on chip, the rest of it takes bands of rows of one image."""


def pool_design(rows: int = 4):  # noqa: ANN201
    """:func:`design` with a scratchpad of :data:`POOL_SPAD_BYTES` (the testbench's ``scratchpad_bytes``)."""
    arch = design(rows)
    return dataclasses.replace(arch, scratchpad=dataclasses.replace(arch.scratchpad, size_bytes=POOL_SPAD_BYTES))


@cache
def pool_graph():  # noqa: ANN201
    """(graph, input codes of its device part) of a 2x4x12x12 1x1 conv (8 channels) -> 3x3 stride-2 max pool
    with padding 1 -> 2x2 max pool -> global average pool, quantized with int8 activations."""
    b = GraphBuilder("qpool")
    x = b.input("x", (2, 4, 12, 12))
    h = b.conv(x, 8, 1, name="conv")
    h = b.pool(h, "max", 3, 2, 1, name="pool1")
    h = b.pool(h, "max", 2, name="pool2")
    b.global_pool(h, "avg", name="gap")
    return quantized_graph(b)


def test_the_mapper_splits_no_fold_on_the_npus_array() -> None:
    """On 8x8 the best order for the pool network's 4-channel 1x1 conv keeps a weight fold stationary
    over chunks of ``m`` (Computes with ``fill`` or ``drain`` false) where the array can split a fold;
    fpga-small's cannot (``array.split_folds = false``, as the NPU refuses such Computes), so the mapper
    emits whole folds and the NPU runs every command."""
    graph, _ = pool_graph()
    arch = pool_design(8)
    assert not arch.array.split_folds
    splitting = dataclasses.replace(arch, array=dataclasses.replace(arch.array, split_folds=True))
    computes = [c for c in map_graph(graph, splitting, MapOptions(allocator="none")).commands if isinstance(c, Compute)]
    assert any(not (c.fill and c.drain) for c in computes)
    plan = pool_network("none", 8)[0]
    assert [refusal(arch, c) for c in plan.commands] == [None] * len(plan.commands)


@cache
def pool_network(allocator: str = "none", rows: int = 4) -> tuple[Plan, dict]:
    """The mapper's plan of the pool network on :func:`pool_design` (``allocator``, ``rows``) and its
    input codes."""
    graph, inputs = pool_graph()
    return map_graph(graph, pool_design(rows), MapOptions(allocator=allocator)), inputs


POOLS = {"max_pool": lambda rows=4: pool_network("none", rows),
         "max_pool_resident": lambda rows=4: pool_network("ilp", rows)}
"""The mapper's plans of the pool network by name (npu_tb.py has a cocotb test of each)."""

POOL1_CHUNKS = {"max_pool": [(0, 0)] * 2, "max_pool_resident": [(0, 0), (3, 5), (0, 0), (3, 5)]}
"""``(first_row, band_row)`` of the first pool's chunks in each plan: whole images, or halves of each
image (the second half's windows from output row 3, its input band from row 5)."""


@pytest.mark.parametrize("name", POOLS)
def test_golden_with_the_hosts_table_pools_as_sim_execute(name: str) -> None:
    """Golden, given the plan's table, ends with sim.execute's DRAM image, every byte; the first pool's
    chunks are whole images or bands of rows inside one (:data:`POOL1_CHUNKS`), the second's both
    images, the global average pool's both images' 8 channels; the resident plan keeps the second
    pool's input and output and the average pool's input on chip; without the pools' steps golden
    does not end with sim.execute's image."""
    plan, inputs = POOLS[name]()
    table = requant_table(plan)
    vectors = [c for c in plan.commands if isinstance(c, Vector)]
    pool1 = len(POOL1_CHUNKS[name])
    assert [c.layer for c in vectors] == ["pool1"] * pool1 + ["pool2", "gap"]
    steps = {s.command: s for s in table.vector}
    assert [steps[c.id].function for c in vectors] == ["max"] * (pool1 + 1) + ["avg"]
    moved = {c.tensor for c in plan.commands if isinstance(c, (Load, Store)) and c.layer in ("pool2", "gap")}
    assert moved == ({"gap_QuantizeLinear_Output"} if name == "max_pool_resident" else
                     {f"{t}_QuantizeLinear_Output" for t in ("pool1", "pool2", "gap")})
    gap = plan.graph.tensors[plan.graph.layer("gap").inputs[0]].quant
    assert steps[vectors[-1].id].bias == -9 * int(gap.zero_point[0]) and steps[vectors[-1].id].y_multiplier
    assert [(steps[c.id].first_row, steps[c.id].band_row) for c in vectors if c.layer == "pool1"] == \
        POOL1_CHUNKS[name]
    assert [(steps[c.id].first_row, steps[c.id].band_row) for c in vectors if c.layer == "pool2"] == [(0, 0)]
    before, after = dram_images(plan, inputs)
    assert execute(plan.arch, plan.commands, before, requant=table).dram == bytearray(after)
    timed_only = dataclasses.replace(table, vector=())
    assert execute(plan.arch, plan.commands, before, requant=timed_only).dram != bytearray(after)


@cache
def depthwise_graph():  # noqa: ANN201
    """(graph, input codes of its device part) of a 2x4x8x8 1x1 conv (8 channels) -> 3x3 stride-2 depthwise
    convolution with padding 1 -> ReLU, quantized with int8 activations."""
    b = GraphBuilder("qdw")
    x = b.input("x", (2, 4, 8, 8))
    h = b.conv(x, 8, 1, name="conv")
    h = b.conv(h, 8, 3, 2, 1, groups=8, name="dw")
    b.activation(h, "relu", "dw.relu")
    return quantized_graph(b)


@cache
def depthwise_network(allocator: str = "none", rows: int = 4) -> tuple[Plan, dict]:
    """The mapper's plan of the depthwise network on :func:`pool_design` (``allocator``, ``rows``) and its
    input codes."""
    graph, inputs = depthwise_graph()
    return map_graph(graph, pool_design(rows), MapOptions(allocator=allocator)), inputs


@pytest.mark.parametrize("allocator", ["none", "ilp"])
def test_golden_with_the_hosts_table_convolves_depthwise_as_sim_execute(allocator: str) -> None:
    """The depthwise convolution's Vector command gets a ``depthwise`` step (its window, zero points and
    its 8 channel-table entries after the 1x1 conv's 8); golden then ends with sim.execute's DRAM
    image, every byte, and without the step it does not."""
    plan, inputs = depthwise_network(allocator)
    table = requant_table(plan)
    (vector,) = [c for c in plan.commands if isinstance(c, Vector)]
    (step,) = table.vector
    assert (step.command, step.function, step.first_channel, len(table.channels)) == (vector.id, "depthwise", 8, 16)
    assert (step.kernel_h, step.stride_h, step.pad_top, step.channel_groups, step.out_h) == (3, 2, 1, 2, 4)
    before, after = dram_images(plan, inputs)
    assert execute(plan.arch, plan.commands, before, requant=table).dram == bytearray(after)
    timed_only = dataclasses.replace(table, vector=())
    assert execute(plan.arch, plan.commands, before, requant=timed_only).dram != bytearray(after)


def test_golden_max_pools_as_sim_reference_on_a_hand_written_band() -> None:
    """A hand-written ``max`` step over output rows 2..3 of a 5 x 7 x 8 image's 3x2 stride-(2, 3) windows
    with padding (2, 1) (the last row's windows reach below the image), its band input rows 2..4: the
    codes are sim.reference.maxpool_codes' of the image."""
    from sim.reference import maxpool_codes

    rng = np.random.default_rng(5)
    image = rng.integers(-128, 128, size=(1, 8, 5, 7))
    b = GraphBuilder("hand")
    b.input("x", (1, 8, 5, 7))
    b.pool("x", "max", (3, 2), (2, 3), (2, 1, 2, 1), name="p")
    layer = b.build().layer("p")
    expected = maxpool_codes(layer, image, (1, 8, 4, 3))[0, :, 2:4].transpose(1, 2, 0).reshape(-1)
    step = VectorStep(command=1, function="max", kernel_h=3, kernel_w=2, stride_h=2, stride_w=3, pad_top=2,
                      pad_left=1, band_row=2, channel_groups=2, out_w=3, in_h=5, in_w=7, out_h=4, first_row=2)
    band = image[0].transpose(1, 2, 0)[2:].astype(np.int8).tobytes()  # rows 2..4, channels-last
    commands = (Load(id=0, layer="p", tensor="x", size_bytes=len(band), addr=8, dram_addr=0),
                Vector(id=1, layer="p", deps=(0,), op="MaxPool", elements=2 * 3 * 8 * 6, input_addr=8,
                       output_addr=400, origin=2, extent=2),
                Store(id=2, layer="p", deps=(1,), tensor="y", size_bytes=48, buffer=SPAD, addr=400, dram_addr=512))
    mem = execute(design(), commands, band + bytes(1024 - len(band)), requant=RequantTable(vector=(step,)))
    assert list(np.frombuffer(bytes(mem.dram[512:560]), np.int8)) == list(expected)


def test_pools_the_vector_unit_cannot_compute_are_refused() -> None:
    graph, _ = pool_graph()
    plan, _ = pool_network()
    vector = next(c for c in plan.commands if isinstance(c, Vector))
    pool1 = graph.layer("pool1")
    avg = dataclasses.replace(pool1, attrs={**pool1.attrs, "kind": "avg"}, source_op="AveragePool")
    layers = tuple(avg if layer.name == "pool1" else layer for layer in graph.layers)
    with pytest.raises(ConfigError, match=rf"^Command {vector.id} \(Vector, layer 'pool1'\): the NPU's vector unit "
                                          r"pools windowed max pools chunked in bands of output rows and global "
                                          r"average pools, not AveragePool \(avg pool, bands chunks\)$"):
        requant_table(dataclasses.replace(plan, graph=dataclasses.replace(graph, layers=layers)))
    half = dataclasses.replace(vector, elements=vector.elements // 2)
    with pytest.raises(ConfigError, match=rf"^Command {vector.id} \(Vector, layer 'pool1'\): the NPU's vector unit "
                                          r"computes a chunk's 6 output rows of 6 x 8 codes, 9 taps each \(2592 "
                                          r"elements\), not 1296$"):
        requant_table(dataclasses.replace(plan, commands=tuple(half if c.id == vector.id else c
                                                               for c in plan.commands)))
    gap = next(c for c in plan.commands if isinstance(c, Vector) and c.layer == "gap")
    for wrong, message in ((dataclasses.replace(gap, extent=6, elements=6 * 2 * 3 * 3),
                            "average-pools whole groups of 4 channels, not a chunk of 6"),
                           (dataclasses.replace(gap, elements=gap.elements - 4),
                            r"computes a chunk's 8 channels of 2 images of 3 x 3 \(144 elements\), not 140")):
        with pytest.raises(ConfigError, match=rf"^Command {gap.id} \(Vector, layer 'gap'\): the NPU's vector unit "
                                              rf"{message}$"):
            requant_table(dataclasses.replace(plan, commands=tuple(wrong if c.id == gap.id else c
                                                                   for c in plan.commands)))


def vector_ops() -> tuple[tuple, RequantTable]:
    """Two 23-byte operands loaded; a ReLU (clamp from zero point -5), a copy clamped to [-20, 90], a timed-only
    vector command, and an add of the two (23 elements: a partial last beat, unaligned addresses) with its
    hand-written rescales; everything stored."""
    n = 23
    commands = (
        Load(id=0, layer="v", tensor="a", size_bytes=n, addr=1, dram_addr=0),
        Load(id=1, layer="v", tensor="b", size_bytes=n, addr=70, dram_addr=32),
        Vector(id=2, layer="v", deps=(0,), op="relu", elements=n, input_addr=1, output_addr=130, extent=n),
        Vector(id=3, layer="v", deps=(1,), op="copy", elements=n, input_addr=70, output_addr=203, extent=n),
        Vector(id=4, layer="v", deps=(0, 1), op="timed", elements=9, input_addr=1, output_addr=300, extent=9),
        Vector(id=5, layer="v", deps=(0, 1), op="add", elements=n, input_addr=1, second_addr=70, output_addr=257,
               extent=n),
        Store(id=6, layer="v", deps=(2,), tensor="relu", size_bytes=n, buffer=SPAD, addr=130, dram_addr=64),
        Store(id=7, layer="v", deps=(3,), tensor="copy", size_bytes=n, buffer=SPAD, addr=203, dram_addr=96),
        Store(id=8, layer="v", deps=(5,), tensor="sum", size_bytes=n, buffer=SPAD, addr=257, dram_addr=128),
    )
    (ma, sa), (mb, sb), (my, sy) = tflite_add_multipliers(0.05, 0.031, 0.07)
    table = RequantTable(vector=(
        VectorStep(command=2, function="clamp", low=-5),
        VectorStep(command=3, function="clamp", low=-20, high=90),
        VectorStep(command=5, function="add", a_zero_point=3, b_zero_point=-11, y_zero_point=-2, a_multiplier=ma,
                   a_shift=sa, b_multiplier=mb, b_shift=sb, y_multiplier=my, y_shift=sy)))
    return commands, table


def vector_ops_dram() -> bytes:
    """:func:`vector_ops`' DRAM: random bytes (its operands at 0 and 32)."""
    rng = random.Random(11)
    return bytes(rng.randrange(256) for _ in range(256))


def test_hand_written_vector_commands_clamp_and_add() -> None:
    commands, table = vector_ops()
    dram = vector_ops_dram()
    mem = execute(design(), commands, dram, requant=table)
    a, b = (np.frombuffer(dram[at:at + 23], np.int8).astype(int) for at in (0, 32))
    relu, copy, total = (np.frombuffer(bytes(mem.dram[at:at + 23]), np.int8).astype(int) for at in (64, 96, 128))
    assert list(relu) == [max(v, -5) for v in a] and list(copy) == [min(max(v, -20), 90) for v in b]
    real = 0.05 * (a - 3) + 0.031 * (b + 11)
    assert np.abs(np.clip(real / 0.07 - 2, -128, 127) - total).max() <= 1  # TFLite's rescale, within a code
    assert not mem.scratchpad[300:309].strip(b"\0")  # the timed-only command writes nothing


def wrong_rescale(table: RequantTable) -> RequantTable:
    """``table`` with its first add's output multiplier nine tenths of its own."""
    first = table.vector[0]
    wrong = dataclasses.replace(first, y_multiplier=first.y_multiplier * 9 // 10)
    return dataclasses.replace(table, vector=(wrong, *table.vector[1:]))


def _programs() -> dict[str, dict]:
    """The testbench's ``programs``: image, DRAM and table of each, in npu_tb.py's order."""
    out = {}
    for name, make in RESIDUAL.items():
        plan, inputs = make()
        out[name] = {"image": encode_program(plan.commands).hex(), "dram": dram_images(plan, inputs)[0].hex(),
                     "requant": table_words(requant_table(plan))}
    commands, table = vector_ops()
    out["vector_ops"] = {"image": encode_program(commands).hex(), "dram": vector_ops_dram().hex(),
                         "requant": table_words(table)}
    original = requant_table(residual_block()[0])
    out["wrong_rescale"] = {**out["residual_block"], "requant": table_words(wrong_rescale(original)),
                            "reference_requant": out["residual_block"]["requant"]}
    return out


@pytest.mark.rtl
@pytest.mark.slow
def test_npu_adds_and_clamps_bit_and_cycle_exact_on_icarus(tmp_path: Path) -> None:
    """The residual block's programs and the hand-written one match golden (hence sim.execute for the
    mapper's) and the simulator's trace; the wrong rescale fails on the data only."""
    programs = _programs()
    channels = max(len(p["requant"]["channels"]) // 4 for p in programs.values())
    by_name = run_programs(design(), programs, tmp_path, requant_channels=channels,
                           activation_latency=MOVE_LATENCY)
    for name in ("residual_block", "residual_block_resident", "vector_ops"):
        assert by_name[name].passed, f"{name}: {by_name[name].message}"
    wrong = by_name["wrong_rescale"]
    assert not wrong.passed, "a table with a wrong rescale must not match golden of the right one"
    assert "DRAM differed from rtl.npu.golden.execute" in wrong.message and "ran [" not in wrong.message


def wrong_pool_step(table: RequantTable) -> RequantTable:
    """``table`` with its first max step's left padding 0 (every window one column to the right)."""
    first = next(s for s in table.vector if s.function == "max")
    wrong = dataclasses.replace(first, pad_left=0)
    return dataclasses.replace(table, vector=tuple(wrong if s is first else s for s in table.vector))


def _pool_programs(rows: int, names: tuple[str, ...]) -> dict[str, dict]:
    """The testbench's ``programs`` of the residual block, the max-pool and the depthwise networks on
    :func:`pool_design` (``rows``) named in ``names``, in npu_tb.py's order (the corrupted ones after
    their originals).
    Golden with each plan's table ends with sim.execute's DRAM (checked here, so the bench's comparison
    with golden is one with sim.execute on every design)."""

    def spec(plan: Plan, inputs: dict) -> dict:
        assert not [c.id for c in plan.commands if refusal(plan.arch, c)], plan.graph_name
        before, after = dram_images(plan, inputs)
        table = requant_table(plan)
        assert execute(plan.arch, plan.commands, before, requant=table).dram == bytearray(after), plan.graph_name
        return {"image": encode_program(plan.commands).hex(), "dram": before.hex(), "requant": table_words(table)}

    out = {}
    if "residual_block" in names:  # mapped on this design (test_npu_adds_and_clamps runs the 4x4 one's)
        graph, inputs = residual_graph()
        out["residual_block"] = spec(map_graph(graph, pool_design(rows), MapOptions(allocator="none")), inputs)
    for name, make in POOLS.items():
        if name in names or (name == "max_pool" and "wrong_pool_step" in names):
            out[name] = spec(*make(rows))
    if "wrong_pool_step" in names:
        original = requant_table(pool_network("none", rows)[0])
        out["wrong_pool_step"] = {**out["max_pool"], "requant": table_words(wrong_pool_step(original)),
                                  "reference_requant": out["max_pool"]["requant"]}
    plan, inputs = depthwise_network("none", rows)
    out["depthwise"] = spec(plan, inputs)
    table = requant_table(plan)
    (step,) = table.vector
    shifted = dataclasses.replace(table, vector=(dataclasses.replace(step, first_channel=step.first_channel - 1),))
    out["wrong_depthwise_channels"] = {**out["depthwise"], "requant": table_words(shifted),
                                       "reference_requant": out["depthwise"]["requant"]}
    return {name: out[name] for name in names}


POOL_DESIGNS = {
    "4x4": (4, ("max_pool", "max_pool_resident", "wrong_pool_step", "depthwise", "wrong_depthwise_channels")),
    "8x8": (8, ("residual_block", "max_pool_resident", "depthwise", "wrong_depthwise_channels")),
}
"""The array's rows (and columns) and the programs each build runs. (The 8x8 NPU simulates several
times slower per cycle: it runs the residual block through DRAM, the pool chain once, with the ILP
keeping its tensors on chip, the first pool's chunks bands inside an image, and the depthwise
network and its corrupted step.)"""


@pytest.mark.rtl
@pytest.mark.slow
@pytest.mark.parametrize("design_name", POOL_DESIGNS)
def test_npu_max_pools_bit_and_cycle_exact_on_icarus(design_name: str, tmp_path: Path) -> None:
    """The pool network's programs (through DRAM and resident) match golden (hence sim.execute) and the
    simulator's trace, and so does the depthwise network's; the corrupted pool step and the depthwise
    step of channel-table entries one off fail on the data only."""
    rows, names = POOL_DESIGNS[design_name]
    programs = _pool_programs(rows, names)
    channels = max(len(p["requant"]["channels"]) // 4 for p in programs.values())
    by_name = run_programs(pool_design(rows), programs, tmp_path, requant_channels=channels,
                           activation_latency=MOVE_LATENCY)
    for name in names:
        if not name.startswith("wrong_"):
            assert by_name[name].passed, f"{design_name} {name}: {by_name[name].message}"
    for name in (n for n in names if n.startswith("wrong_")):
        wrong = by_name[name]
        assert not wrong.passed, f"{name}: a table with a wrong step must not match golden of the right one"
        assert "DRAM differed from rtl.npu.golden.execute" in wrong.message and "ran [" not in wrong.message


@pytest.mark.parametrize("mode", ["double", "single"])
def test_the_vector_units_rescale_is_sim_numerics_mbqm(mode: str) -> None:
    """The vector datapath's combinational MBQM (rtl.npu.core._mbqm) equals
    sim.numerics.multiply_by_quantized_multiplier on random int32 values, multipliers and every shift."""
    from amaranth.hdl import Module, Signal, signed
    from amaranth.sim import Simulator

    from rtl.npu.core import _mbqm
    from sim.numerics import multiply_by_quantized_multiplier

    m = Module()
    x, multiplier, shift = Signal(signed(32)), Signal(32), Signal(signed(8))
    y = Signal(signed(32))
    m.d.comb += y.eq(_mbqm(x, multiplier, shift, mode))
    rng = random.Random(7)
    cases = [(rng.choice([rng.randrange(-(1 << 31), 1 << 31), rng.randrange(-(1 << 12), 1 << 12), -(1 << 31),
                          (1 << 31) - 1]), rng.choice([rng.randrange(1 << 30, 1 << 31), rng.randrange(1 << 31)]),
              s) for s in range(-31, 31) for _ in range(6)]
    got = []

    async def bench(ctx) -> None:  # noqa: ANN001
        for value, mult, s in cases:
            ctx.set(x, value)
            ctx.set(multiplier, mult)
            ctx.set(shift, s)
            got.append(ctx.get(y))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    expected = [multiply_by_quantized_multiplier(v, mult, s, mode=mode) for v, mult, s in cases]
    wrong = [(c, g, e) for c, g, e in zip(cases, got, expected, strict=True) if g != e]
    assert not wrong, f"{len(wrong)} of {len(cases)} differ, e.g. {wrong[:3]}"

"""The NPU's store path requantizes as the host's table says: quantized layers, bit-exact with sim.execute.

A quantized graph (built, exported to ONNX, quantized by onnxruntime's quantize_static with int8
activations, imported) is mapped by the real mapper onto fpga-small; :func:`rtl.npu.golden.requant_table`
is the host's requantization table of the plan (per-channel folded bias, multiplier and shift, output
zero point, fused ReLU). rtl.npu.golden with that table must end with sim.execute's DRAM image byte
for byte; on Icarus, the NPU with the table written through its ``rq_*`` port must end with golden's
DRAM and every command's start and end must be the simulator's. The design's accumulator read path
has ``activation.latency_cycles = 8`` (the requantizer's pipeline, which a Move cannot hide and the
datasheet charges it), so Moves requantize too: the ILP keeps a quantized MLP's intermediates on
chip. A table with a wrong multiplier must fail.
"""

from __future__ import annotations

import dataclasses
import random
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from npu_bench import quantized_graph, run_programs, table_words

from accel.commands import Buffer, Compute, Load, Move, Store
from accel.config import load
from accel.encoding import RequantChannel, RequantStep, RequantTable, encode_program
from accel.errors import ConfigError
from accel.formats import Requantization
from accel.hardware import Dataflow
from mapper import MapOptions, map_graph
from mapper.plan import Plan
from rtl.npu.golden import execute, requant_table
from sim.execute import dram_images
from sim.numerics import quantize_multiplier, requantize
from workloads.builder import GraphBuilder

pytest.importorskip("onnxruntime")

ACC = Buffer.ACCUMULATOR


MOVE_LATENCY = 8
"""``activation.latency_cycles`` of the design: a Move's step read, its channels' entries, the requantizer."""


def design():  # noqa: ANN201
    """fpga-small (4x4, tflite-double requantization, DMA 2 + DRAM 20 cycles of latency) with Moves
    through the requantizer (the testbench derives the same from its parameters)."""
    arch = load("fpga-small")
    assert arch.array.requant is Requantization.TFLITE_DOUBLE
    return dataclasses.replace(arch, activation=dataclasses.replace(arch.activation, latency_cycles=MOVE_LATENCY))


@cache
def quantized_gemm() -> tuple[Plan, dict]:
    """A 16x32 @ 32x16 fully connected layer with a bias, per-channel weight scales: the mapper's plan
    and its input codes."""
    b = GraphBuilder("qfc")
    b.linear(b.input("x", (16, 32)), 16, name="fc")
    graph, inputs = quantized_graph(b, per_channel=True)
    return map_graph(graph, design(), MapOptions(allocator="none")), inputs


@cache
def quantized_mlp() -> tuple[Plan, dict]:
    """Three fully connected layers (8x32 -> 16 -> 16 -> 8, ReLUs between; per-tensor scales), through DRAM."""
    b = GraphBuilder("qmlp")
    hidden = b.input("x", (8, 32))
    for name, width in (("fc1", 16), ("fc2", 16), ("fc3", 8)):
        hidden = b.linear(hidden, width, name=name)
        if name != "fc3":
            hidden = b.activation(hidden, "relu", f"{name}.relu")
    graph, inputs = quantized_graph(b)
    return map_graph(graph, design(), MapOptions(allocator="none")), inputs


@cache
def quantized_mlp_resident() -> tuple[Plan, dict]:
    """Three fully connected layers (8x32 -> 32 -> 32 -> 16) mapped with the ILP allocator in a 4 KiB
    scratchpad: ``fc1`` and ``fc2`` go from the accumulator to the scratchpad (requantizing Moves)."""
    b = GraphBuilder("qmlp3")
    hidden = b.input("x", (8, 32))
    for name, width in (("fc1", 32), ("fc2", 32), ("fc3", 16)):
        hidden = b.linear(hidden, width, name=name)
    graph, inputs = quantized_graph(b)
    return map_graph(graph, design(), MapOptions(allocator="ilp", scratchpad_bytes=4096)), inputs


def with_relu(plan: Plan) -> Plan:
    """``plan`` with a ReLU fused into every requantizing store (``Store.activation``)."""
    commands = tuple(dataclasses.replace(c, activation="relu") if isinstance(c, Store) and c.buffer is ACC
                     and not c.raw else c for c in plan.commands)
    return dataclasses.replace(plan, commands=commands)


QUANTIZED = {
    "quantized_gemm": lambda: quantized_gemm(),
    "quantized_gemm_relu": lambda: (with_relu(quantized_gemm()[0]), quantized_gemm()[1]),
    "quantized_mlp": lambda: quantized_mlp(),
    "quantized_mlp_resident": lambda: quantized_mlp_resident(),
}
"""The mapper's quantized plans by name (npu_tb.py has a cocotb test of each), with their input codes."""


@pytest.mark.parametrize("name", QUANTIZED)
def test_golden_with_the_hosts_table_ends_with_sim_executes_dram(name: str) -> None:
    """Golden, given the plan's requantization table, ends with the DRAM image sim.execute ends with,
    every byte; without the table (unit scale) it does not."""
    plan, inputs = QUANTIZED[name]()
    table = requant_table(plan)
    before, after = dram_images(plan, inputs)
    configured = [c.id for c in plan.commands if isinstance(c, Store) and c.buffer is ACC or isinstance(c, Move)]
    assert sorted(s.command for s in table.steps) == configured
    assert any(c.bias for c in table.channels) and all(c.multiplier for c in table.channels)
    multipliers = {c.multiplier for c in table.channels}
    assert len(multipliers) == (16 if name.startswith("quantized_gemm") else 3)  # per channel; per layer
    assert any(isinstance(c, Move) for c in plan.commands) == name.endswith("resident")
    assert execute(plan.arch, plan.commands, before, requant=table).dram == bytearray(after)
    assert execute(plan.arch, plan.commands, before).dram != bytearray(after)


def test_the_mlps_layers_take_their_own_channels_and_the_relu_its_clamp() -> None:
    """Each layer of the MLP gets its n channel entries once; every tile's store starts at its layer's
    entry of the tile's first column; a fused ReLU raises the clamp to the zero point."""
    plan, _ = quantized_mlp()
    table = requant_table(plan)
    assert len(table.channels) == 16 + 16 + 8
    bases = {"fc1": 0, "fc2": 16, "fc3": 32}
    computes = {c.output_addr: c for c in plan.commands if isinstance(c, Compute)}  # the last tile at each
    for cmd in plan.commands:
        if isinstance(cmd, Compute):
            computes[cmd.output_addr] = cmd
        elif isinstance(cmd, Store) and cmd.buffer is ACC:
            step, tile = table.step(cmd.id), computes[cmd.addr]
            assert (step.first_channel, step.columns) == (bases[cmd.layer] + tile.origin[3], tile.n)
    relu = requant_table(with_relu(quantized_gemm()[0]))
    assert all(s.low == s.zero_point for s in relu.steps) and any(s.zero_point > -128 for s in relu.steps)


def test_the_table_is_refused_for_what_the_requantizer_cannot_round() -> None:
    plan, _ = quantized_gemm()
    arch = dataclasses.replace(plan.arch, array=dataclasses.replace(plan.arch.array,
                                                                    requant=Requantization.FLOAT32_HALF_EVEN))
    with pytest.raises(ConfigError, match=r"^fpga-small: the NPU's requantizer rounds as tflite-double or "
                                          r"tflite-single, not the design's float32-half-even$"):
        requant_table(dataclasses.replace(plan, arch=arch))


def raw_partial_sums() -> tuple[tuple, RequantTable]:
    """A 4x8 @ 8x6 tile stored raw (its 24 int32 words), then requantized by a hand-written table (two
    channels of different biases, multipliers and shifts alternating along the row), moved at unit
    scale into the scratchpad and stored from there, and moved requantized (three channels, from the
    tile's second column) and stored."""
    shape = dict(m=4, k=8, n=6, input_addr=0, weight_addr=64)
    commands = (
        Load(id=0, layer="t", tensor="x", size_bytes=32, addr=0, dram_addr=0),
        Load(id=1, layer="t", tensor="w", size_bytes=48, addr=64, dram_addr=64),
        Compute(id=2, layer="t", deps=(0, 1), dataflow=Dataflow.WS, output_addr=0, **shape),
        Store(id=3, layer="t", deps=(2,), tensor="partial", size_bytes=96, buffer=ACC, addr=0, dram_addr=256,
              raw=True),
        Store(id=4, layer="t", deps=(2,), tensor="y", size_bytes=24, buffer=ACC, addr=0, dram_addr=384),
        Move(id=5, layer="t", deps=(2,), tensor="z", size_bytes=24, src_addr=0, addr=512),
        Store(id=6, layer="t", deps=(5,), tensor="z", size_bytes=24, buffer=Buffer.SCRATCHPAD, addr=512,
              dram_addr=448),
        Move(id=7, layer="t", deps=(2,), tensor="u", size_bytes=24, src_addr=0, addr=600),
        Store(id=8, layer="t", deps=(7,), tensor="u", size_bytes=24, buffer=Buffer.SCRATCHPAD, addr=600,
              dram_addr=512),
    )
    (m0, s0), (m1, s1) = quantize_multiplier(0.0123), quantize_multiplier(0.31)
    table = RequantTable(steps=(RequantStep(command=4, first_channel=1, columns=2, zero_point=-3, low=-3,
                                            high=90),
                                RequantStep(command=7, first_channel=0, columns=3, zero_point=4)),
                         channels=(RequantChannel(0, *quantize_multiplier(1 / 300)), RequantChannel(-700, m0, s0),
                                   RequantChannel(2100, m1, s1)))
    return commands, table


def test_raw_stores_copy_the_words_and_the_table_requantizes_only_its_commands() -> None:
    commands, table = raw_partial_sums()
    rng = random.Random(5)
    dram = bytes(rng.randrange(256) for _ in range(1024))
    mem = execute(design(), commands, dram, requant=table)
    assert mem.dram[256:352] == mem.accumulator[0:96]
    words = np.frombuffer(bytes(mem.accumulator[:96]), "<i4")
    assert words.min() < -128 and words.max() > 127  # the raw words are not byte codes
    y, z, u = (np.frombuffer(bytes(mem.dram[a:a + 24]), np.int8) for a in (384, 448, 512))
    assert np.array_equal(z, np.clip(words, -128, 127))  # the unconfigured Move: unit scale (saturation)
    assert y.min() >= -3 and y.max() <= 90 and not np.array_equal(y, z)
    m, shift = quantize_multiplier(1 / 300)  # channel 0: no bias, 1/300, zero point 4
    assert list(u[0::3]) == [requantize(int(w), m, shift, 4) for w in words[0::3]]
    assert len(set(u[0::3])) > 4 and not np.array_equal(u, z)


def wrong_multiplier(table: RequantTable) -> RequantTable:
    """``table`` with channel 5's multiplier three quarters of its own."""
    channels = list(table.channels)
    channels[5] = dataclasses.replace(channels[5], multiplier=channels[5].multiplier * 3 // 4)
    return dataclasses.replace(table, channels=tuple(channels))


def _programs() -> dict[str, dict]:
    """The testbench's ``programs``: image, DRAM and requantization table of each, in npu_tb.py's order."""
    out = {}
    for name, make in QUANTIZED.items():
        plan, inputs = make()
        out[name] = {"image": encode_program(plan.commands).hex(), "dram": dram_images(plan, inputs)[0].hex(),
                     "requant": table_words(requant_table(plan))}
    rng = random.Random(5)
    dram = bytes(rng.randrange(256) for _ in range(1024)).hex()
    commands, table = raw_partial_sums()
    out["raw_partial_sums"] = {"image": encode_program(commands).hex(), "dram": dram, "requant": table_words(table)}
    gemm = out["quantized_gemm"]
    original = requant_table(quantized_gemm()[0])
    out["wrong_multiplier"] = {**gemm, "requant": table_words(wrong_multiplier(original)),
                               "reference_requant": gemm["requant"]}
    order = ("quantized_gemm", "quantized_gemm_relu", "quantized_mlp", "quantized_mlp_resident", "raw_partial_sums",
             "wrong_multiplier")
    return {name: out[name] for name in order}


@pytest.mark.rtl
def test_npu_requantizes_quantized_layers_bit_and_cycle_exact_on_icarus(tmp_path: Path) -> None:
    """Every quantized program and the raw one match golden (hence sim.execute) and the simulator's
    trace; the wrong multiplier fails on the data only."""
    by_name = run_programs(design(), _programs(), tmp_path, requant_channels=128, activation_latency=MOVE_LATENCY)
    for name in ("quantized_gemm", "quantized_gemm_relu", "quantized_mlp", "quantized_mlp_resident",
                 "raw_partial_sums"):
        assert by_name[name].passed, f"{name}: {by_name[name].message}"
    wrong = by_name["wrong_multiplier"]
    assert not wrong.passed, "a table with a wrong multiplier must not match golden of the right one"
    assert "DRAM differed from rtl.npu.golden.execute" in wrong.message and "ran [" not in wrong.message

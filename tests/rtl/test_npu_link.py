"""NPULink (UART + the whole NPU + a DRAM model) on Icarus through cocotb, driven by the real host driver:
the mapper's programs of a quantized 3x3 convolution with padding 1 (the driver writes its
requantization table and the array's input feeder table with 'Q', so its computes gather im2col rows)
and of a quantized fully connected layer (int8, per-channel scales, a ReLU fused into its stores) on
fpga-small, bit-exact against rtl.npu.golden and sim.execute's outputs and cycle-exact (total and
trace) against sim.simulate, all through the rx/tx pins; a corrupted input byte and a corrupted
feeder step on the wire fail the comparison."""

from __future__ import annotations

import dataclasses
from functools import cache
from pathlib import Path

import pytest
from npu_bench import quantized_graph, table_words

from accel.commands import Buffer, Compute, Load, Store
from accel.config import load
from accel.encoding import encode_feeder_table, encode_program, encode_requant_table
from accel.hardware import Dataflow
from mapper import map_graph
from mapper.plan import Plan
from rtl.cocotb_runner import run_cocotb
from rtl.fpga.driver import NPULinkDriver, fc_layer, program_tensors, random_inputs
from rtl.fpga.npu_link import NPULink
from rtl.npu.core import refusal
from rtl.npu.golden import feeder_table, requant_table
from sim.engine import simulate
from sim.execute import dram_images
from workloads.builder import GraphBuilder

TESTBENCH = Path(__file__).with_name("npu_link_tb.py")
DIVISOR = 3
"""UART clock cycles a bit (the link bench's time is mostly the wire's: 10 bits a byte)."""
SCENARIOS = ("quantized_conv_bit_and_cycle_exact", "quantized_layer_bit_and_cycle_exact",
             "unaligned_beats_bit_and_cycle_exact", "corrupted_input_byte_fails", "corrupted_feeder_step_fails",
             "refused_commands_answer_error")
PASSING = ("quantized_conv_bit_and_cycle_exact", "quantized_layer_bit_and_cycle_exact",
           "unaligned_beats_bit_and_cycle_exact", "refused_commands_answer_error")


def unaligned() -> tuple:
    """A 5x6 @ 6x7 tile whose operands and results sit at DRAM addresses that are not multiples of 4
    (and sizes that are not either): x at 3, w at 101, y (from the accumulator) at 206, x back out at 301."""
    return (
        Load(id=0, layer="u", tensor="x", size_bytes=30, addr=0, dram_addr=3),
        Load(id=1, layer="u", tensor="w", size_bytes=42, addr=64, dram_addr=101),
        Compute(id=2, layer="u", deps=(0, 1), dataflow=Dataflow.WS, m=5, k=6, n=7, input_addr=0, weight_addr=64,
                output_addr=0),
        Store(id=3, layer="u", deps=(2,), tensor="y", size_bytes=35, buffer=Buffer.ACCUMULATOR, addr=0,
              dram_addr=206),
        Store(id=4, layer="u", deps=(0,), tensor="x_copy", size_bytes=30, buffer=Buffer.SCRATCHPAD, addr=0,
              dram_addr=301),
    )


@cache
def quantized_layer() -> tuple[Plan, bytes, bytes]:
    """The mapper's plan on fpga-small of a 16x32 @ 32x16 fully connected layer with a bias, quantized with
    int8 activations and per-channel weight scales, a ReLU fused into its stores (``Store.activation``,
    as :mod:`mapper.fuse` marks them: onnxruntime folds a ReLU after the layer into its output scale, so
    the fusion is stated on the plan), and the DRAM images before and after ``sim.execute`` runs it."""
    pytest.importorskip("onnxruntime")
    b = GraphBuilder("qfc_relu")
    b.linear(b.input("x", (16, 32)), 16, name="fc")
    graph, inputs = quantized_graph(b, per_channel=True)
    plan = map_graph(graph, load("fpga-small"))
    plan = dataclasses.replace(plan, commands=tuple(
        dataclasses.replace(c, activation="relu") if isinstance(c, Store) and c.buffer is Buffer.ACCUMULATOR else c
        for c in plan.commands))
    before, after = dram_images(plan, inputs)
    return plan, bytes(before), bytes(after)


@cache
def quantized_conv() -> tuple[Plan, bytes, bytes]:
    """The mapper's plan on fpga-small of a 3x3 convolution (4 -> 8 channels, 6x6, padding 1) quantized
    with int8 activations, and the DRAM images before and after ``sim.execute`` runs it."""
    pytest.importorskip("onnxruntime")
    b = GraphBuilder("qconv")
    b.conv(b.input("x", (1, 4, 6, 6)), 8, 3, padding=1, name="conv")
    graph, inputs = quantized_graph(b)
    plan = map_graph(graph, load("fpga-small"))
    before, after = dram_images(plan, inputs)
    return plan, bytes(before), bytes(after)


def check_the_quantized_conv() -> None:
    """The convolution is one the bench's NPU runs and its feeder reads the padding: no command the NPU
    refuses, 12 commands (the NPU's 16 hold them), every compute gathers through the feeder, whose
    padding reads the input's zero point (not 0). (Called by the bench, not a test of its own: the
    quantization costs seconds, paid once.)"""
    plan, before, after = quantized_conv()
    table = feeder_table(plan)
    assert all(refusal(plan.arch, c) is None for c in plan.commands) and len(plan.commands) <= 16
    assert sorted(s.command for s in table.steps) == [c.id for c in plan.commands if isinstance(c, Compute)]
    assert all(s.zero_point != 0 and s.pt == s.pl == 1 for s in table.steps)
    (addr, size), = program_tensors(plan.commands)[1].values()
    assert len(set(after[addr:addr + size])) > 8


def test_the_quantized_layer_is_one_the_npu_runs_and_its_table_requantizes_it() -> None:
    """Per-channel multipliers, a bias, a ReLU clamp above the int8 minimum, no command the NPU refuses."""
    plan, before, after = quantized_layer()
    table = requant_table(plan)
    assert all(refusal(plan.arch, c) is None for c in plan.commands)
    assert len({c.multiplier for c in table.channels}) == 16 and any(c.bias for c in table.channels)
    assert all(s.low == s.zero_point for s in table.steps) and any(s.zero_point > -128 for s in table.steps)
    _, outputs = program_tensors(plan.commands)
    (addr, size), = outputs.values()
    assert len(set(after[addr:addr + size])) > 8 and after[addr:addr + size] != before[addr:addr + size]


def test_the_driver_sends_the_quantized_plans_table_and_expects_sim_executes_outputs() -> None:
    """Given the plan, the driver writes :func:`rtl.npu.golden.requant_table`'s words ('Q'), and its
    expectation is sim.execute's output bytes (here against the protocol's Python model)."""
    from test_cli_fpga_npu import FakeNPULink

    plan, before, after = quantized_layer()
    board = FakeNPULink(plan.arch, requant_channels=64)
    run = NPULinkDriver(board).run_program(plan, before)
    steps, channels = encode_requant_table(requant_table(plan))
    assert board.tables[0][:len(steps)] == list(steps) and board.tables[1][:len(channels)] == list(channels)
    (name, (addr, size)), = program_tensors(plan.commands)[1].items()
    assert run.expected == run.outputs == {name: after[addr:addr + size]}


def test_the_layers_tensors_are_its_loads_and_stores() -> None:
    """What the bench sends and reads back: x and the weights in, the layer's output out."""
    plan = fc_layer(load("fpga-small"))
    inputs, outputs = program_tensors(plan.commands)
    assert inputs == {"x": (0, 512), "fc.weight": (2048, 512)}
    assert outputs == {"fc": (4096, 256)}


@pytest.mark.rtl
def test_npu_link_runs_a_mapped_layer_through_the_uart_pins(tmp_path: Path) -> None:
    check_the_quantized_conv()
    arch = load("fpga-small")
    parameters = {"rows": arch.array.rows, "cols": arch.array.cols, "divisor": DIVISOR, "dram_bytes": 8192,
                  "max_commands": 16, "program_words": 512,
                  "unaligned": {"image": encode_program(unaligned()).hex(),  # full-range bytes: saturating stores
                                "inputs": {name: data.hex() for name, data in
                                           random_inputs(unaligned(), seed=4, low=-128, high=128).items()}}}
    for key, (plan, before, after) in (("conv", quantized_conv()), ("quantized", quantized_layer())):
        _, outputs = program_tensors(plan.commands)
        parameters[key] = {"image": encode_program(plan.commands).hex(), "dram": before.hex(),
                           "requant": table_words(requant_table(plan)),
                           "feeder": list(encode_feeder_table(feeder_table(plan))),
                           "cycles": simulate(plan).total_cycles,
                           "expected": {name: after[a:a + n].hex() for name, (a, n) in outputs.items()}}
    link = NPULink(arch, parameters["divisor"], dram_bytes=parameters["dram_bytes"],
                   max_commands=parameters["max_commands"], program_words=parameters["program_words"])
    result = run_cocotb(toplevel="npu_link", component=link, test_module=TESTBENCH, build_dir=tmp_path,
                        parameters=parameters, check=False)
    by_name = {case.name: case for case in result.cases}
    assert set(by_name) == set(SCENARIOS), result.summary()
    for name in PASSING:
        assert by_name[name].passed, f"{name}: {by_name[name].message}"
    corrupted = by_name["corrupted_input_byte_fails"]
    assert not corrupted.passed, "a corrupted input byte must make the comparison with golden fail"
    # x's first byte is flipped: the copy of x differs in that byte, and so do results of x's first row
    assert "output 'x_copy' differs from rtl.npu.golden.execute in 1 of 30 bytes" in corrupted.message, \
        corrupted.message
    assert "output 'y' differs from rtl.npu.golden.execute" in corrupted.message, corrupted.message
    assert "cycles" not in corrupted.message, "the data must differ, not the timing"
    feeder = by_name["corrupted_feeder_step_fails"]
    assert not feeder.passed, "a feeder step whose zero point is corrupted on the wire must fail the comparison"
    # only the padding reads the zero point: outputs at the image's border differ, the cycles do not
    assert "output 'conv_QuantizeLinear_Output' differs from rtl.npu.golden.execute" in feeder.message, \
        feeder.message
    assert "the board took" not in feeder.message, feeder.message
